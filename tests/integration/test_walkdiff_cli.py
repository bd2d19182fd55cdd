"""`bot walkdiff <msgid>`: every revision's walk-exit changes, and for a fix the exits against the patch its
`Fixes:` line names, found on a real public-inbox archive by its subject. No kernel tree here: hunks mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.demo.localinbox import LocalInbox
from bot.demo.writer import Patch, Revision, SeriesWriter
from tests.conftest import run_bot
from tests.mailgen import rmap_with, toy_writer

FIXED = "mm/rmap: stop the walk after a whole batch"


def deliver(inbox: LocalInbox, msgs: list) -> None:
    for msg in msgs:
        inbox.deliver(msg)
    inbox.wait_searchable(str(msgs[-1]["Message-ID"]).strip("<>"))


def walkdiff(config: Path, target: str, *extra: str) -> str:
    proc = run_bot("walkdiff", target, "--config", str(config), *extra, cwd=config.parent)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def exit_changes(stage: dict) -> list[tuple[str, str, str | None, str | None]]:
    return [(e["change"], e["target"], (e["before"] or {}).get("condition"), (e["after"] or {}).get("condition"))
            for f in stage["functions"] if f["name"] == "try_to_unmap_one" for e in f["exits"]
            if e["change"] != "unchanged"]


def test_every_revision_as_json_and_text(config: Path, writer: SeriesWriter, inbox: LocalInbox) -> None:
    for v, cond in ((1, "nr_pages > 1"), (2, "nr_pages == folio_nr_pages(folio)")):
        deliver(inbox, writer.write(Revision(v, "mm: walkdiff cli", [
            Patch("mm/rmap: exit the walk early", files={"mm/rmap.c": rmap_with(cond)})])).messages())
    out = json.loads(walkdiff(config, writer.msgid(1, 0), "--json"))
    assert set(out) == {"series", "revisions"} and [r["version"] for r in out["series"]["revisions"]] == [1, 2]
    assert [(r["version"], sorted(r)) for r in out["revisions"]] == [(1, ["version", "walkdiff"]),
                                                                      (2, ["version", "walkdiff"])]
    v1, v2 = (r["walkdiff"] for r in out["revisions"])
    assert (v1["against"], v1["mode"], v1["hunks_because"]) == ("base", "hunks", "this revision did not apply")
    assert exit_changes(v2) == [("changed", "walk_done", "nr_pages > 1", "nr_pages == folio_nr_pages(folio)")]
    text = walkdiff(config, writer.msgid(2, 0))
    assert f"v2 <{writer.msgid(2, 0)}>\ntry_to_unmap_one(): walk exits v1 -> v2\n" in text
    assert "~ goto walk_done   if (nr_pages > 1)   ->   if (nr_pages == folio_nr_pages(folio))" in text


@pytest.fixture(scope="module")
def fixed_series(inbox: LocalInbox, tmp_path_factory: pytest.TempPathFactory) -> SeriesWriter:
    """The series the fix is for: its patch FIXED posted in v1 (`nr_pages > 2`) and v2 (`nr_pages > 1`)."""
    w = toy_writer(tmp_path_factory.mktemp("fixed"), "fixed-series")
    for v, cond in ((1, "nr_pages > 2"), (2, "nr_pages > 1")):
        deliver(inbox, w.write(Revision(v, "mm: batched lazyfree unmap", [
            Patch(FIXED, files={"mm/rmap.c": rmap_with(cond)}),
            Patch("mm: a note", files={"mm/note.c": f"/* {v} */\n"})])).messages())
    return w


def fix(tmp_path: Path, tag: str, fixes: str) -> SeriesWriter:
    """A writer whose tree already has v2 of FIXED (as the fix's author's tree would), posting a fix."""
    w = SeriesWriter.on_files({"mm/rmap.c": rmap_with("nr_pages > 1")}, tmp_path / f"repo-{tag}",
                              author="Bob Fixer <bob@example.org>", msgid=lambda v, i: f"{tag}.v{v}.{i}@example.org")
    w.fix = Revision(1, "", [Patch(f"mm/rmap: stop the walk only after the whole folio ({tag})",  # type: ignore[attr-defined]
                                   body=f"A batch may end at a page table.\n\n{fixes}\n",
                                   files={"mm/rmap.c": rmap_with("nr_pages == folio_nr_pages(folio)")})],
                     cover=False, numbered=False, prefix="PATCH")
    return w


def test_a_fix_is_diffed_against_the_patch_it_fixes(config: Path, fixed_series: SeriesWriter, inbox: LocalInbox,
                                                    tmp_path: Path) -> None:
    w = fix(tmp_path, "fix-found", f'Fixes: 0123456789ab ("{FIXED}")')
    deliver(inbox, w.write(w.fix).messages())  # type: ignore[attr-defined]
    out = json.loads(walkdiff(config, w.msgid(1, 1), "--json"))
    (rev,) = out["revisions"]
    (against,) = rev["walkdiff"]["fixes"]
    assert (against["status"], against["source"], against["against"]) == ("ok", "archive", "fixes:0123456789ab")
    assert (against["found"], against["version"]) == (fixed_series.msgid(2, 1), 2)  # the latest revision of it
    assert exit_changes(against) == [("changed", "walk_done", "nr_pages > 1", "nr_pages == folio_nr_pages(folio)")]
    assert rev["walkdiff"]["against"] == "base"  # the normal diff is still there, beside it
    text = walkdiff(config, w.msgid(1, 1))
    assert f'against the patch it fixes: Fixes: 0123456789ab ("{FIXED}") (v2' in text
    assert "try_to_unmap_one(): walk exits fixes:0123456789ab -> v1" in text


def test_a_fixed_patch_that_is_nowhere_and_a_malformed_line(config: Path, inbox: LocalInbox,
                                                            tmp_path: Path) -> None:
    # b4 itself drops a Fixes: line that does not start with a hash; one without its quoted subject stays
    w = fix(tmp_path, "fix-missing", 'Fixes: 89abcdef0123 ("mm: a patch nobody posted")\nFixes: 456789abcdef (mm: x)')
    deliver(inbox, w.write(w.fix).messages())  # type: ignore[attr-defined]
    (rev,) = json.loads(walkdiff(config, w.msgid(1, 1), "--json"))["revisions"]
    missing, bad = rev["walkdiff"]["fixes"]
    assert missing["status"] == "skipped" and "was not found" in missing["detail"]
    assert bad["status"] == "failed" and "malformed 'Fixes: 456789abcdef (mm: x)'" in bad["detail"]
    lines = walkdiff(config, w.msgid(1, 1)).splitlines()
    assert sum(line.startswith("against the patch it fixes: Fixes: ") for line in lines) == 2
