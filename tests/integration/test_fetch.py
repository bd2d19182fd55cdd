"""`bot check --stages fetch` against a real public-inbox archive, with real b4."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.demo.writer import Patch, Revision, SeriesWriter
from tests.conftest import run_bot
from tests.mailgen import rmap_with

V4_PATCH3 = "20250214093015.51024-4-21cnbao@gmail.com"


def check(config: Path, target: str, *extra: str) -> dict:
    proc = run_bot("check", target, "--config", str(config), "--stages", "fetch", "--json", *extra,
                   cwd=config.parent)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def versions(out: dict) -> dict[int, str]:
    return {r["version"]: r["found_by"] for r in out["series"]["revisions"]}


def test_barry_v4_found_with_its_patches_in_order(config: Path) -> None:
    out = check(config, f"<{V4_PATCH3}>")
    (rev,) = out["revisions"]
    assert rev["version"] == 4
    assert rev["message_id"] == "20250214093015.51024-1-21cnbao@gmail.com"
    assert rev["subject"] == "[PATCH v4 0/4] mm: batched unmap lazyfree large folios during reclamation"
    assert rev["author"] == "Barry Song <21cnbao@gmail.com>"
    assert rev["date"] == "2025-02-14T22:30:11+13:00"
    assert [p["index"] for p in rev["patches"]] == [1, 2, 3, 4]
    assert rev["patches"][2]["message_id"] == V4_PATCH3
    assert rev["patches"][3]["subject"].startswith("[PATCH v4 4/4] mm: Avoid splitting pmd")
    assert rev["stages"]["fetch"]["status"] == "ok"
    assert rev["found_by"] == ["requested"]
    for name in ("apply", "walkdiff", "report"):
        assert rev["stages"][name] == {"status": "not_run", "detail": "not run"}
    vdir = config.parent / "patchsets" / out["series"]["slug"] / "v4"
    mbx = (vdir / "series.mbx").read_text()
    # b4 put the patches in order and collected the trailers from the replies in the thread
    assert [line for line in mbx.splitlines() if line.startswith("Subject:")][0].startswith("Subject: [PATCH v4 1/4]")
    assert mbx.count("\nFrom ") + mbx.startswith("From ") == 4
    assert "Acked-by: David Hildenbrand <david@redhat.com>" in mbx
    thread = (vdir / "thread.mbox").read_bytes()
    assert thread.count(b"Message-ID: <a694398c-9f03-4737-81b9-7e49c857fcbe@redhat.com>") + thread.count(
        b"Message-Id: <a694398c-9f03-4737-81b9-7e49c857fcbe@redhat.com>") == 1
    assert json.loads((vdir / "result.json").read_text()) == rev


@pytest.mark.parametrize("form", [
    "{id}", "<{id}>", "https://lore.kernel.org/linux-mm/{id}/", "https://lore.kernel.org/all/{id}/T/#u",
])
def test_message_id_forms(config: Path, form: str) -> None:
    out = check(config, form.format(id="20250214093015.51024-1-21cnbao@gmail.com"))
    assert [r["version"] for r in out["revisions"]] == [4]


def test_a_reply_leads_to_its_series(config: Path) -> None:
    out = check(config, "<a694398c-9f03-4737-81b9-7e49c857fcbe@redhat.com>")
    assert [(r["version"], len(r["patches"])) for r in out["revisions"]] == [(4, 4)]


def two_patches(tag: str, cond: str) -> list[Patch]:
    return [
        Patch(f"mm/rmap: exit the walk when {cond}", files={"mm/rmap.c": rmap_with(cond)}),
        Patch(f"mm: note for {tag}", files={"mm/note.c": f"/* {tag} */\n"}),
    ]


def test_threaded_revisions(config: Path, writer: SeriesWriter, post) -> None:
    v1 = writer.write(Revision(1, "mm: threaded series", two_patches("t1", "nr_pages > 1"))).messages()
    v2 = writer.write(Revision(2, "mm: threaded series", two_patches("t2", "nr_pages == 4"),
                               reply_to=writer.msgid(1, 0))).messages()
    post(v1 + v2)
    out = check(config, writer.msgid(2, 2))
    assert versions(out) == {1: "threading", 2: "requested"}
    assert [r["message_id"] for r in out["revisions"]] == [writer.msgid(1, 0), writer.msgid(2, 0)]


def test_unthreaded_revisions_found_by_search(config: Path, writer: SeriesWriter, post) -> None:
    for v, cond in ((1, "nr_pages > 1"), (2, "nr_pages > 2"), (3, "nr_pages == 4")):
        post(writer.write(Revision(v, "mm: searched series", two_patches(f"s{v}", cond))).messages())
    out = check(config, writer.msgid(2, 0))
    assert versions(out) == {1: "search:subject+author", 2: "requested", 3: "search:subject+author"}
    slug = out["series"]["slug"]
    for v in (1, 2, 3):
        assert (config.parent / "patchsets" / slug / f"v{v}" / "series.mbx").exists()


def test_change_id_search(config: Path, writer: SeriesWriter, post) -> None:
    post(writer.write(Revision(1, "mm: old name", two_patches("c1", "x"), change_id="20250601-abc-1234")).messages())
    post(writer.write(Revision(2, "mm: new name", two_patches("c2", "y"), change_id="20250601-abc-1234")).messages())
    out = check(config, writer.msgid(2, 1))
    assert versions(out) == {1: "search:change-id", 2: "requested"}


def test_changelog_links_follow_renamed_unthreaded_revisions(config: Path, writer: SeriesWriter, post) -> None:
    post(writer.write(Revision(1, "mm: first name", two_patches("l1", "a"))).messages())
    post(writer.write(Revision(2, "mm: second name", two_patches("l2", "b"), blurb=(
        "Changes since v1:\n - renamed\n"
        f"v1: https://lore.kernel.org/linux-mm/{writer.msgid(1, 0)}/\n"))).messages())
    post(writer.write(Revision(3, "mm: third name", two_patches("l3", "c"), blurb=(
        "v2 -> v3: renamed again,\n"
        f"  https://lore.kernel.org/all/{writer.msgid(2, 0)}/T/#u\n"))).messages())
    out = check(config, writer.msgid(3, 0))
    assert versions(out) == {1: "changelog-link from v2", 2: "changelog-link from v3", 3: "requested"}
    subjects = [r["subject"] for r in out["revisions"]]
    assert subjects == ["[PATCH 0/2] mm: first name", "[PATCH v2 0/2] mm: second name",
                        "[PATCH v3 0/2] mm: third name"]


def test_patch_without_version_is_v1(config: Path, writer: SeriesWriter, post) -> None:
    post(writer.write(Revision(1, "", [Patch("mm: lone patch", files={"mm/rmap.c": rmap_with("q")})], cover=False,
                               prefix="PATCH")).messages())
    out = check(config, writer.msgid(1, 1))
    (rev,) = out["revisions"]
    assert rev["version"] == 1
    assert rev["subject"] == "[PATCH 1/1] mm: lone patch"
    assert rev["message_id"] == writer.msgid(1, 1)


def test_rerun_reuses_the_fetched_series_unless_refetch(config: Path, writer: SeriesWriter, post) -> None:
    post(writer.write(Revision(1, "mm: reused", two_patches("r1", "a"))).messages())
    first = check(config, writer.msgid(1, 0))
    post(writer.write(Revision(2, "mm: reused", two_patches("r2", "b"))).messages())
    proc = run_bot("check", writer.msgid(1, 0), "--config", str(config), "--stages", "fetch", cwd=config.parent)
    assert proc.returncode == 0 and "reusing" in proc.stderr
    again = check(config, writer.msgid(1, 0))
    assert again == first  # from disk: v2 is not looked for
    fresh = check(config, writer.msgid(1, 0), "--refetch")
    assert sorted(versions(fresh)) == [1, 2]
