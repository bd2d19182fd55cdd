"""Fixes:-aware walk diffs: the exits as the fixed patch left them vs as the fix leaves them. The fixed commit
from a small synthetic git tree (the git path), or handed in as the archive lookup would find it (its real
lookup: tests/integration/test_walkdiff_cli.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import walkdiff
from bot.config import Config, PathsConfig
from bot.errors import OperationalError
from bot.patches import fixes_tags
from bot.report import render_text
from bot.results import (
    ApplyResult,
    Base,
    FixedPatch,
    RevisionResult,
    SeriesSummary,
    StageContext,
    WalkdiffResult,
    revision_dir,
)
from tests.unit.gitrepo import commit, git
from tests.unit.test_walkdiff import BASE, V1, V2, git_diff

FIXED = "mm/rmap: stop the walk after a whole batch"


def test_fixes_lines_are_read_from_the_commit_message_only() -> None:
    body = ('mm: x\n\nFixes: 0123456789ab ("mm/rmap: say "why" (really)")\nFixes: zz\nfixes: abcdef1\n'
            "Signed-off-by: A <a@x>\n---\nFixes: 111111111111 (\"below the cut\")\n")
    tags = fixes_tags(body)
    assert [(t.sha, t.subject) for t in tags] == [("0123456789ab", 'mm/rmap: say "why" (really)'), (None, None),
                                                   (None, None)]
    assert tags[1].problem and "malformed 'Fixes: zz'" in tags[1].problem
    assert tags[2].problem and "'Fixes: abcdef1'" in tags[2].problem  # a sha without its subject


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Config, str, Path]:
    """base -> F (the fixed commit: `nr_pages > 1`) in kernel-tree; the fix (`nr_pages == folio_nr_pages()`,
    with a Fixes: line naming F) on review/s/v1, also written as its am-ready mbox."""
    root = tmp_path / "kernel-tree"
    root.mkdir()
    git(root, "init", "-q", "-b", "master")
    commit(root, {"mm/rmap.c": BASE}, "base")
    fixed = commit(root, {"mm/rmap.c": V1}, FIXED)
    git(root, "checkout", "-q", "-b", "review/s/v1")
    commit(root, {"mm/rmap.c": V2}, f'mm/rmap: stop only after the whole folio\n\nFixes: {fixed[:12]} ("{FIXED}")')
    cfg = Config(paths=PathsConfig(kernel_tree=root, patchsets=tmp_path / "p", cache=tmp_path / "c"))
    rdir = revision_dir(cfg.paths.patchsets, "s", 1)
    rdir.mkdir(parents=True)
    (rdir / "series.mbx").write_text(git(root, "format-patch", "-1", "--stdout", "HEAD"))
    git(root, "checkout", "-q", "--detach", "master")
    return cfg, fixed, rdir


def run(cfg: Config, rdir: Path, applied: bool, base: str, find=lambda _s: None) -> WalkdiffResult:
    result = RevisionResult("fix@x", 1, "[PATCH] fix", "A <a@x>", "2025-01-01", [], ["requested"],
                            base=Base(base, "base-commit"))
    result.stages.apply = ApplyResult("ok", "", branch="review/s/v1") if applied else ApplyResult("failed", "no")
    ctx = StageContext(cfg, SeriesSummary("s", "fix", "A <a@x>", "fix@x"), result, rdir, None, ["x86_64"], 1)
    stage = walkdiff.run_stage(ctx, find)["walkdiff"]
    assert isinstance(stage, WalkdiffResult)
    return stage


def exits(stage: WalkdiffResult) -> list[tuple[str, str, str]]:
    f = next(f for f in stage.functions or [] if f["name"] == "try_to_unmap_one")
    return [(e["change"], e["before"]["condition"], e["after"]["condition"]) for e in f["exits"]
            if e["change"] == "changed"]


def test_git_path_compares_the_fixed_commit_with_this_revision(tree: tuple[Config, str, Path]) -> None:
    cfg, fixed, rdir = tree

    def not_asked(subject: str) -> FixedPatch:
        raise AssertionError(f"the archive is not asked when the tree has the commit ({subject})")

    (fix,) = run(cfg, rdir, True, fixed, not_asked).fixes or []
    assert (fix.status, fix.source, fix.found, fix.mode, fix.against) == ("ok", "git", fixed, "tree",
                                                                           f"fixes:{fixed[:12]}")
    assert exits(fix) == [("changed", "nr_pages > 1", "nr_pages == folio_nr_pages(folio)")]
    (hunks,) = run(cfg, rdir, False, fixed, not_asked).fixes or []  # did not apply: the commit's diff as hunks
    assert (hunks.source, hunks.mode) == ("git", "hunks")
    assert exits(hunks) == [("changed", "nr_pages > 1", "nr_pages == folio_nr_pages(folio)")]


def test_archive_path_when_the_tree_lacks_the_commit(tree: tuple[Config, str, Path]) -> None:
    cfg, fixed, rdir = tree
    asked: list[str] = []
    body = f"Explain.\n---\n{git_diff('mm/rmap.c', BASE, V1)}"

    def lookup(subject: str) -> FixedPatch:
        asked.append(subject)
        return FixedPatch(subject, "fixed.v3.1@example.org", 3, body, f"[PATCH v3 1/2] {subject}")

    master = git(cfg.paths.kernel_tree, "rev-parse", "master~1").strip()  # a base without F in its history
    stage = run(cfg, rdir, False, master, lookup)
    (fix,) = stage.fixes or []
    assert asked == [FIXED]
    assert (fix.source, fix.found, fix.version, fix.mode, fix.partial) == ("archive", "fixed.v3.1@example.org", 3,
                                                                            "hunks", True)
    assert exits(fix) == [("changed", "nr_pages > 1", "nr_pages == folio_nr_pages(folio)")]
    text = " ".join(render_text(stage, width=200).split())
    assert f'against the patch it fixes: Fixes: {fixed[:12]} ("{FIXED}") (v3 <fixed.v3.1@example.org> on the ' \
        "archive) try_to_unmap_one(): walk exits fixes:" in text


def test_a_fixed_patch_found_nowhere_or_an_archive_error_is_one_line(tree: tuple[Config, str, Path]) -> None:
    cfg, fixed, rdir = tree
    master = git(cfg.paths.kernel_tree, "rev-parse", "master~1").strip()
    stage = run(cfg, rdir, False, master)
    (fix,) = stage.fixes or []
    assert fix.status == "skipped" and "was not found: not in the kernel tree's history" in fix.detail
    assert stage.finished
    assert render_text(stage).splitlines()[-1].startswith(f"against the patch it fixes: Fixes: {fixed[:12]}")

    def down(_subject: str) -> FixedPatch:
        raise OperationalError("archive: timeout")

    stage = run(cfg, rdir, False, master, down)
    assert (stage.fixes or [])[0].status == "error" and not stage.finished  # looked up again next run
