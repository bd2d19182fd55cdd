"""Every revision from any one of them: series posted the way authors post (threaded and unthreaded, renamed,
`[PATCHv2]`/`[PATCH v2]`/`[RFC PATCH v2]`, changelogs as `vN -> vM:` lines and as bare lore URLs, with and
without cover letters), served by a real public-inbox and fetched by the real `bot check --stages fetch`."""

from __future__ import annotations

import email.utils
import json
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.demo.localinbox import LocalInbox
from bot.demo.writer import AUTHOR, LORE, TO, Patch, Revision, SeriesWriter
from tests.conftest import run_bot, write_config
from tests.mailgen import rmap_with, toy_writer

FOUND_BY = ("requested", "threading", "search:subject+author", "search:change-id")


def deliver(inbox: LocalInbox, msgs: list[EmailMessage]) -> None:
    for msg in msgs:
        inbox.deliver(msg)
    for msg in msgs:
        inbox.wait_searchable(str(msg["Message-ID"]).strip("<>"))


def check(tmp_path: Path, inbox: LocalInbox, target: str, discovery: str = "") -> dict:
    """`bot check <target> --stages fetch --json` with a config (and b4 cache) of its own."""
    work = tmp_path / f"check-{abs(hash((target, discovery)))}"
    work.mkdir()
    config = write_config(work / "config.toml", inbox.url)  # type: ignore[attr-defined]
    if discovery:
        config.write_text(config.read_text() + f"[discovery]\n{discovery}\n")
    proc = run_bot("check", target, "--config", str(config), "--stages", "fetch", "--json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def found(out: dict) -> dict[int, str]:
    return {r["version"]: r["found_by"] for r in out["series"]["revisions"]}


def patch(v: int, tag: str) -> list[Patch]:
    return [Patch(f"mm/rmap: exit the walk early ({tag})", files={"mm/rmap.c": rmap_with(f"nr_pages > {v}")}),
            Patch(f"mm: note for {tag} v{v}", files={"mm/note.c": f"/* {tag} {v} */\n"})]


def assert_found_by(by: dict[int, str]) -> None:
    for how in by.values():
        assert how in FOUND_BY or how.startswith(("link-from:v", "changelog-link from v")), how


@pytest.fixture(scope="module")
def covers(inbox: LocalInbox, tmp_path_factory: pytest.TempPathFactory) -> SeriesWriter:
    """Renamed twice, three subject prefixes, cover letters; v1..v3 unthreaded, v4 threaded onto v3."""
    w = toy_writer(tmp_path_factory.mktemp("covers"), "disc-covers")
    revs = [
        Revision(1, "mm: lazyfree walk exits", patch(1, "c")),
        Revision(2, "mm: lazyfree walk exit cleanups", patch(2, "c"), prefix="PATCHv{v}", changelog="plain",
                 changes="renamed"),
        Revision(3, "mm/rmap: walk exits of the lazyfree unmap", patch(3, "c"), prefix="RFC PATCH v{v}",
                 changelog="arrow", changes="renamed again"),
        Revision(4, "mm/rmap: walk exits of the lazyfree unmap", patch(4, "c"), prefix="PATCH v{v}",
                 changelog="arrow", changes="no longer RFC", reply_to=w.msgid(3, 0)),
    ]
    for rev in revs:
        deliver(inbox, w.write(rev).messages())
    return w


@pytest.mark.parametrize("start", [(1, 0), (2, 0), (2, 2), (3, 0), (4, 0), (4, 1)])
def test_any_revision_with_cover_letters_finds_all_four(covers: SeriesWriter, inbox: LocalInbox, tmp_path: Path,
                                                         start: tuple[int, int]) -> None:
    out = check(tmp_path, inbox, covers.msgid(*start))
    by = found(out)
    assert sorted(by) == [1, 2, 3, 4]
    assert by[start[0]] == "requested"
    assert_found_by(by)
    assert [r["message_id"] for r in out["revisions"]] == [covers.msgid(v, 0) for v in (1, 2, 3, 4)]
    assert out["series"]["ignored"] == []


@pytest.fixture(scope="module")
def lone(inbox: LocalInbox, tmp_path_factory: pytest.TempPathFactory) -> SeriesWriter:
    """One patch per posting, no cover letter: the changelog below the `---`; `[PATCH]`, `[PATCH v2]`,
    `[PATCHv3]` (renamed)."""
    w = toy_writer(tmp_path_factory.mktemp("lone"), "disc-lone")
    one = [Patch("mm/rmap: stop the walk after a whole batch", files={"mm/rmap.c": rmap_with("nr_pages > 1")})]
    renamed = [Patch("mm/rmap: leave the walk once the folio is unmapped",
                     files={"mm/rmap.c": rmap_with("nr_pages == 8")})]
    revs = [
        Revision(1, "", one, cover=False, numbered=False, prefix="PATCH"),
        Revision(2, "", one, cover=False, numbered=False, prefix="PATCH v{v}", changelog="plain", changes="x"),
        Revision(3, "", renamed, cover=False, numbered=False, prefix="PATCHv{v}", changelog="arrow",
                 changes="renamed"),
    ]
    for rev in revs:
        deliver(inbox, w.write(rev).messages())
    return w


@pytest.mark.parametrize("version", [1, 2, 3])
def test_any_revision_without_cover_letters_finds_all_three(lone: SeriesWriter, inbox: LocalInbox, tmp_path: Path,
                                                            version: int) -> None:
    by = found(check(tmp_path, inbox, lone.msgid(version, 1)))
    assert sorted(by) == [1, 2, 3] and by[version] == "requested"
    assert_found_by(by)


def test_link_back_from_the_first_revision_is_recorded(covers: SeriesWriter, inbox: LocalInbox,
                                                       tmp_path: Path) -> None:
    by = found(check(tmp_path, inbox, covers.msgid(1, 0)))
    assert by[2] == "link-from:v1"  # renamed and unthreaded: only its changelog's link back to v1 finds it


def test_change_id_across_renames_from_the_first(writer: SeriesWriter, inbox: LocalInbox, tmp_path: Path) -> None:
    for v, title in ((1, "mm: old name"), (2, "mm: new name"), (3, "mm: newest name")):
        deliver(inbox, writer.write(Revision(v, title, patch(v, "cid"), change_id="20250601-cid-77")).messages())
    by = found(check(tmp_path, inbox, writer.msgid(1, 0)))
    assert by == {1: "requested", 2: "search:change-id", 3: "search:change-id"}


# ---- bad input: links to elsewhere, to nothing, in a circle; searches with too many hits


def test_a_link_to_another_series_of_the_author_is_not_merged(writer: SeriesWriter, inbox: LocalInbox,
                                                              tmp_path: Path) -> None:
    other = toy_writer(tmp_path / "other", "disc-other-series")
    deliver(inbox, other.write(Revision(1, "mm: unrelated helper", patch(1, "o"))).messages())
    deliver(inbox, writer.write(Revision(1, "mm: lazy series", patch(1, "l"))).messages())
    deliver(inbox, writer.write(Revision(
        2, "mm: lazy series, renamed", patch(2, "l"), changelog="plain", changes="rebased",
        blurb=f"Depends on: {LORE}/{other.msgid(1, 0)}/\n")).messages())
    for start in (writer.msgid(1, 0), writer.msgid(2, 0)):
        out = check(tmp_path, inbox, start)
        assert [r["message_id"] for r in out["revisions"]] == [writer.msgid(1, 0), writer.msgid(2, 0)]
        (ignored,) = out["series"]["ignored"]
        assert other.msgid(1, 0) in ignored and "another series" in ignored and "Depends on" in ignored


def test_a_link_to_a_message_not_on_the_archive_is_reported(writer: SeriesWriter, inbox: LocalInbox,
                                                            tmp_path: Path) -> None:
    writer.write(Revision(1, "mm: first, never posted", patch(1, "n")))
    deliver(inbox, writer.write(Revision(2, "mm: second", patch(2, "n"), changelog="plain", changes="x")).messages())
    out = check(tmp_path, inbox, writer.msgid(2, 0))
    assert sorted(found(out)) == [2]
    assert f"v2 links <{writer.msgid(1, 0)}>, which is not on the archive" in out["series"]["notes"]


def test_a_link_cycle_ends(writer: SeriesWriter, inbox: LocalInbox, tmp_path: Path) -> None:
    ahead = f"v2 (sent next week): {LORE}/{writer.msgid(2, 0)}/\n"  # a cover letter that links forward
    deliver(inbox, writer.write(Revision(1, "mm: cycle one", patch(1, "y"), blurb=ahead)).messages())
    deliver(inbox, writer.write(Revision(2, "mm: cycle two", patch(2, "y"), changelog="plain",
                                         changes="x")).messages())
    for v in (1, 2):
        out = check(tmp_path, inbox, writer.msgid(v, 0))
        assert sorted(found(out)) == [1, 2]


def mention(i: int, msgid: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = AUTHOR, TO, f"notes on lazyfree, part {i}"
    msg["Date"] = email.utils.formatdate()
    msg["Message-ID"] = f"<mention-{i}-{msgid}>"
    msg.set_content(f"As posted in {LORE}/{msgid}/ the walk stops early.\n")
    return msg


def test_searches_are_bounded_and_the_bound_reported(writer: SeriesWriter, inbox: LocalInbox, tmp_path: Path) -> None:
    deliver(inbox, writer.write(Revision(1, "mm: much discussed", patch(1, "m"))).messages())
    deliver(inbox, [mention(i, writer.msgid(1, 0)) for i in range(6)])
    out = check(tmp_path, inbox, writer.msgid(1, 0), "max_hits = 3")
    assert sorted(found(out)) == [1]
    assert any("answered 6 messages; only the first 3 were read" in n for n in out["series"]["notes"])
    out = check(tmp_path, inbox, writer.msgid(1, 0), "max_searches = 1")
    assert any("search budget used up ([discovery] max_searches = 1)" in n for n in out["series"]["notes"])


def test_bad_discovery_bounds_are_a_usage_error(tmp_path: Path, inbox: LocalInbox) -> None:
    config = write_config(tmp_path / "config.toml", inbox.url)  # type: ignore[attr-defined]
    config.write_text(config.read_text() + "[discovery]\nmax_searches = 0\n")
    proc = run_bot("check", "x@example.org", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 2 and "[discovery] max_searches must be at least 1" in proc.stderr

