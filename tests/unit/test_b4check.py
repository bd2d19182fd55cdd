"""bot/b4check without processes: reading b4's message, finding its revision, results -> b4's entries (what each
patch row of `b4 review` shows), and when a revision counts as reviewed. The real b4 runner drives the CLI in
tests/integration/test_b4check.py."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bot import b4check
from bot.b4check import entries, lookup, message
from bot.config import Config, DaemonConfig, PathsConfig, ReportConfig
from bot.results import (
    ApplyResult,
    BootResult,
    BuildResult,
    CompilerWarning,
    FetchResult,
    FileCoverage,
    Finding,
    PatchInfo,
    PatchRef,
    ReportResult,
    RevisionRef,
    RevisionResult,
    Scenario,
    SeriesSummary,
    StressResult,
    WalkdiffResult,
    save_revision,
    write_json_atomic,
)

PATCH = b"""From: =?utf-8?q?Troll=0ABcc:_x?= <t@example.org>
Subject: [PATCH v2 1/2] mm/rmap: stop early
Message-ID:
 <p1@example.org>

Explain.
---
diff --git a/mm/rmap.c b/mm/rmap.c
index 1111111..2222222 100644
--- a/mm/rmap.c
+++ b/mm/rmap.c
@@ -10,7 +10,7 @@ static bool try_to_unmap_one(struct folio *folio, struct vm_area_struct *vma,
-\t\tif (a)
+\t\tif (b)
diff --git a/mm/note.c b/mm/note.c
new file mode 100644
--- /dev/null
+++ b/mm/note.c
@@ -0,0 +1 @@
+/* note */
"""
CHANGED = {"change": "changed", "kind": "goto", "target": "walk_done",
           "before": {"target": "walk_done", "condition": "nr_pages > 1", "comment": "", "feeds": []},
           "after": {"target": "walk_done", "condition": "nr_pages == folio_nr_pages(folio)", "comment": "",
                     "feeds": []}}


def revision(**stages: object) -> RevisionResult:
    r = RevisionResult("cover@example.org", 2, "[PATCH v2 0/2] mm: x", "Ada <ada@example.org>", "2025-06-01",
                       [PatchInfo(1, "[PATCH v2 1/2] a", "p1@example.org"),
                        PatchInfo(2, "[PATCH v2 2/2] b", "p2@example.org")], ["requested"])
    r.stages.fetch = FetchResult("ok", "2 patches")
    r.stages.apply = ApplyResult("ok", "2 patch(es) applied on base-commit abc")
    for name, value in stages.items():
        r.stages.set(name, value)  # type: ignore[arg-type]
    return r


def test_message_read_is_lenient_about_headers_and_strict_about_the_id() -> None:
    m = message.read(PATCH)
    assert m.message_id == "p1@example.org"  # folded onto a continuation line
    assert "\n" not in m.author and m.author.endswith("<t@example.org>")  # the encoded CR/LF is data
    assert m.files == ["mm/rmap.c", "mm/note.c"]
    assert m.functions == {"mm/rmap.c": {"try_to_unmap_one"}}
    with pytest.raises(message.BadMessage, match="no Message-ID"):
        message.read(b"Subject: x\n\nbody\n")
    with pytest.raises(message.BadMessage, match="not an RFC 2822 message"):
        message.read(b"just some words\n")
    assert message.read(b"Subject: x\n\nbody\n", need_id=False).message_id == ""


def test_a_warning_shows_on_its_own_patch_and_a_failed_boot_on_every_patch() -> None:
    warning = CompilerWarning("mm/rmap.c", 12, "try_to_unmap_one", "warning", "unused variable 'x'",
                              patch=PatchRef(1, "a"))
    r = revision(build={"x86_64": BuildResult("ok", "built", new_warnings=[warning]),
                        "arm64": BuildResult("failed", "build failed", error=None, log_tail=["make: *** [x] Error 1"])},
                 boot={"x86_64": BootResult("ok", "booted"), "arm64": BootResult("skipped", "not built")},
                 stress={"x86_64": StressResult("failed", "1 failed", failing=["pte-table-crossing"],
                                                scenarios=[Scenario("pte-table-crossing", "fail", "lost 74")])})
    one = {e["tool"]: e for e in entries.build_entries(r, 1, ["mm/rmap.c"]) + entries.runtime_entries(r)}
    two = {e["tool"]: e for e in entries.build_entries(r, 2, ["mm/note.c"])}
    assert one["mm-bot/build-x86_64"]["status"] == "warn"
    assert one["mm-bot/build-x86_64"]["summary"] == "1 new warning: mm/rmap.c:12: unused variable 'x'"
    assert two["mm-bot/build-x86_64"] == {**two["mm-bot/build-x86_64"], "status": "pass",
                                          "summary": "no new warnings (1 in the series, from other patches)"}
    assert one["mm-bot/build-arm64"]["status"] == two["mm-bot/build-arm64"]["status"] == "fail"
    assert "make: *** [x] Error 1" in one["mm-bot/build-arm64"]["details"]
    assert one["mm-bot/boot-x86_64"]["status"] == "fail"
    assert one["mm-bot/boot-x86_64"]["summary"] == "reclaim stress FAIL: pte-table-crossing"
    assert "mm-bot/boot-arm64" not in one  # skipped: the failed build says why


def test_untouched_compiled_coverage_and_findings() -> None:
    r = revision(build={"x86_64": BuildResult("ok", "built", coverage=[FileCoverage("mm/note.c", False, "CONFIG_X")])},
                 boot={"x86_64": BootResult("ok", "booted", findings=[
                     Finding("WARNING", "WARNING: at mm/rmap.c:1", "w", "", preexisting=True),
                     Finding("BUG", "BUG: Bad page state", "b", "", preexisting=False)])},
                 stress={"x86_64": StressResult("ok", "all passed",
                                                scenarios=[Scenario("lazyfree-pageout", "pass", "")])})
    (note,) = entries.build_entries(r, 2, ["mm/note.c"])
    assert note["status"] == "warn" and "mm/note.c" in note["summary"]  # never "no new warnings" unbuilt
    assert entries.build_entries(r, 1, ["mm/rmap.c"])[0]["status"] == "pass"
    (boot,) = entries.runtime_entries(r)
    assert boot["status"] == "fail" and boot["summary"] == "1 new console finding(s): BUG: Bad page state"
    assert "pre-existing (the base shows it too): WARNING: at mm/rmap.c:1" in boot["details"]


def test_walk_exits_per_patch_and_apply_failure_rows() -> None:
    walk = WalkdiffResult("ok", "1 changed", against="v1", revision="v2", mode="tree", partial=False,
                          functions=[{"name": "try_to_unmap_one", "file": "mm/rmap.c", "exits": [CHANGED]}])
    r = revision(walkdiff=walk)
    mine = message.read(PATCH)
    other = dataclasses.replace(mine, files=["mm/note.c"], functions={}, body="+/* note */\n")
    e = entries.walk_entry(r, mine)
    assert e is not None and e["status"] == "warn"
    assert e["summary"] == ("1 walk exit(s) changed v1 -> v2: try_to_unmap_one(): goto walk_done "
                            "if (nr_pages > 1) -> if (nr_pages == folio_nr_pages(folio))")
    assert entries.walk_entry(r, other) == entries.entry("mm-bot/walk-exits", "pass", "touches no walk function")
    base = dataclasses.replace(walk, against="base", revision="v1")
    assert entries.walk_entry(revision(walkdiff=base), mine)["status"] == "pass"  # type: ignore[index]
    failed = revision(apply=ApplyResult("failed", "patch 2 'b' does not apply at mm/rmap.c",
                                        patch=PatchRef(2, "b"), file="mm/rmap.c"))
    assert [entries.apply_entry(failed, k)["status"] for k in (1, 2, None)] == ["pass", "fail", "fail"]  # type: ignore[index]


def test_reviewed_means_the_review_exists_or_the_daemon_is_done() -> None:
    config = Config()
    assert not lookup.reviewed(config, revision())
    assert lookup.reviewed(config, revision(report=ReportResult("skipped", "superseded by v3")))
    quiet = dataclasses.replace(config, daemon=DaemonConfig(stages=["fetch", "apply", "walkdiff"]))
    assert not lookup.reviewed(quiet, revision())  # walkdiff not run yet
    done = revision(walkdiff=WalkdiffResult("skipped", "no walk function"))
    assert lookup.reviewed(quiet, done)
    assert not lookup.reviewed(quiet, revision(walkdiff=WalkdiffResult("error", "timeout")))  # retried


def test_answer_finds_the_patch_and_gives_the_review_and_url(tmp_path: Path) -> None:
    config = Config(paths=PathsConfig(patchsets=tmp_path), report=ReportConfig(dashboard_url="https://b.example/"))
    outbox = tmp_path / "outbox" / "new" / "reply"
    outbox.parent.mkdir(parents=True)
    outbox.write_bytes(b"Subject: Re: x\nContent-Type: text/plain\n\nmm-review-bot: v2 applied,\n  not built\n\nmore\n")
    r = revision(report=ReportResult("ok", "dry-run", outbox=str(outbox)))
    save_revision(tmp_path / "s-1" / "v2" / "result.json", r)
    write_json_atomic(tmp_path / "s-1" / "series.json", SeriesSummary(
        "s-1", "x", "a", "cover@example.org", [RevisionRef(2, "cover@example.org", "requested")],
        message_ids=["cover@example.org", "p1@example.org", "p2@example.org"]).to_json())
    got, code, note = b4check.answer(config, PATCH)
    assert code == 0 and note == ""
    review = got[0]
    assert review["tool"] == "mm-bot" and review["summary"] == "mm-review-bot: v2 applied, not built"
    assert review["details"].startswith("mm-review-bot: v2 applied,\n  not built\n\nmore")
    assert {e["url"] for e in got} == {"https://b.example/series/s-1/index.html"}
    assert json.loads(json.dumps(got)) == got
    # the message moved to cur/ once sent: still found
    (tmp_path / "outbox" / "cur").mkdir()
    outbox.rename(tmp_path / "outbox" / "cur" / "reply:2,S")
    assert b4check.answer(config, PATCH)[0][0]["details"] == review["details"]
    assert b4check.answer(config, PATCH.replace(b"p1@", b"elsewhere@"))[:2] == ([], 0)


def test_without_a_cover_letter_patch_1_is_a_patch_not_the_series(tmp_path: Path) -> None:
    r = revision()
    r.message_id = "p1@example.org"  # no cover letter: patch 1 is the root
    save_revision(tmp_path / "s" / "v2" / "result.json", r)
    write_json_atomic(tmp_path / "s" / "series.json", SeriesSummary(
        "s", "x", "a", "p1@example.org", [RevisionRef(2, "p1@example.org", "requested")],
        message_ids=["p1@example.org", "p2@example.org"]).to_json())
    found = lookup.find(tmp_path, "p1@example.org")
    assert found is not None and found.patch == 1
    assert lookup.find(tmp_path, "p3@example.org") is None
