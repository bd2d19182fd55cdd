"""`bot check` end to end on the generated multi-revision series, on the real Debian kernel tree:
fetched from the test public-inbox, applied, and walk exits diffed revision against revision."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bot.demo import series as testseries
from tests.conftest import run_bot, write_config
from tests.kernel.conftest import KERNEL_TREE, git, restored_tree

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def run(inbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """v1..v8 posted to the archive, then `bot check <v3 cover> --stages fetch,apply,walkdiff --json`."""
    with restored_tree("review/*"):
        yield from _check(inbox, tmp_path_factory)


def _check(inbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("pipeline")
    generated = testseries.generate(KERNEL_TREE, work / "series")
    for g in generated:
        inbox.deliver_mbox(work / "series" / g.path)
    config = write_config(work / "config.toml", inbox.url, kernel_tree=KERNEL_TREE)
    v3 = next(g for g in generated if g.kind == "fix")
    proc = run_bot("check", v3.cover_msgid, "--config", str(config), "--stages", "fetch,apply,walkdiff", "--json",
                   cwd=work, timeout=900)
    assert proc.returncode == 0, proc.stderr
    yield {"out": json.loads(proc.stdout), "generated": generated, "work": work, "config": config,
           "target": v3.cover_msgid}


def rev(run: dict[str, Any], kind: str) -> dict[str, Any]:
    version = next(g.version for g in run["generated"] if g.kind == kind)
    return next(r for r in run["out"]["revisions"] if r["version"] == version)


def test_every_revision_is_found(run: dict[str, Any]) -> None:
    found = {r["version"]: r["found_by"] for r in run["out"]["series"]["revisions"]}
    assert sorted(found) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert found[3] == "requested"


def test_applied_revisions_record_base_and_commits(run: dict[str, Any]) -> None:
    base = git("rev-parse", "debian/7.2.13-1").strip()
    for kind in ("clean", "bug", "fix", "warning", "coverage-warning", "coverage-error", "selftest-bug"):
        r = rev(run, kind)
        assert r["stages"]["apply"]["status"] == "ok", r["stages"]["apply"]
        assert r["base"] == {"commit": base, "source": "base-commit"}
        commits = r["stages"]["apply"]["commits"]
        assert [c["index"] for c in commits] == [p["index"] for p in r["patches"]]
        assert git("rev-parse", r["stages"]["apply"]["branch"]).strip() == commits[-1]["commit"]


def test_broken_revision_names_patch_and_hunk(run: dict[str, Any]) -> None:
    apply = rev(run, "broken")["stages"]["apply"]
    assert apply["status"] == "failed"
    assert apply["patch"]["index"] == 2 and apply["file"] == "mm/rmap.c" and apply["hunk"]


def exits(r: dict[str, Any], function: str = "try_to_unmap_one") -> list[dict[str, Any]]:
    funcs = {f["name"]: f for f in r["stages"]["walkdiff"]["functions"]}
    return funcs[function]["exits"]


def test_walkdiff_shows_the_walk_done_condition_change(run: dict[str, Any]) -> None:
    fix = rev(run, "fix")
    stage = fix["stages"]["walkdiff"]
    assert stage["status"] == "ok" and stage["mode"] == "tree" and stage["against"] == "v2"
    changed = [e for e in exits(fix) if e["change"] == "changed" and e["target"] == "walk_done"
               and e["before"]["condition"] == "nr_pages > 1"]
    assert [e["after"]["condition"] for e in changed] == ["nr_pages == folio_nr_pages(folio)"]


def test_walkdiff_shows_walk_done_to_walk_abort(run: dict[str, Any]) -> None:
    moved = [e for e in exits(rev(run, "fix")) if e["change"] == "changed"
             and e["before"]["target"] == "walk_done" and e["after"]["target"] == "walk_abort"]
    assert len(moved) == 1


def test_revision_that_does_not_apply_gets_a_hunk_walkdiff(run: dict[str, Any]) -> None:
    stage = rev(run, "broken")["stages"]["walkdiff"]
    assert stage["mode"] == "hunks" and stage["partial"] is True
    assert stage["hunks_because"] == "this revision did not apply"


def test_a_repeat_check_reuses_every_result(run: dict[str, Any]) -> None:
    args = ("check", run["target"], "--config", str(run["config"]), "--stages", "fetch,apply,walkdiff")
    proc = run_bot(*args, cwd=run["work"], timeout=900)
    assert proc.returncode == 0, proc.stderr
    reused = 2 * len(run["generated"])  # apply and walkdiff of every revision (v5's failed apply is final too)
    assert proc.stderr.count("reused (inputs unchanged)") == reused
    assert f"reused: {reused} stage results" in proc.stdout
    again = run_bot(*args, "--json", cwd=run["work"], timeout=900)
    assert json.loads(again.stdout) == run["out"]
