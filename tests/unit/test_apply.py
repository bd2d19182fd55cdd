"""The tree stage (bot/tree/) on synthetic trees: the three base rules, applying, and every kind of bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pygit2
import pytest

from bot import patches, repo
from bot.demo.writer import Edit, Patch, Revision, handmade_mail
from bot.results import ApplyResult, Base, PatchRef
from bot.tree import apply as tree_apply
from tests.unit.gitrepo import JANE, RMAP, commit, edit, git, make_tree, posted, with_branches


def apply_series(*args: object, **kwargs: object) -> tuple[ApplyResult, Base]:
    """The stage's result and the base it chose (kept on the result, stored as result.base)."""
    res = tree_apply.apply_series(*args, **kwargs)  # type: ignore[arg-type]
    return res, res.base or Base()


def state(tree: Path) -> tuple[str, list[str], str]:
    """HEAD, branches and status: what must not change when a series is refused or fails."""
    return (
        git(tree, "rev-parse", "HEAD").strip(),
        sorted(git(tree, "branch", "--format=%(refname)").split()),
        git(tree, "status", "--porcelain"),
    )


@pytest.fixture
def kt(tmp_path: Path):
    return make_tree(tmp_path)


def alone(*patches: Patch, fake_base: tuple[Edit, ...] = ()) -> Revision:
    """Patches as `b4 am` writes them: no cover letter, no base-commit line."""
    return Revision(1, "", patches, fake_base=fake_base, cover=False, base_commit=False)


def two_patch_series(tree: Path, tmp: Path, base: str, cover: bool = False) -> Path:
    """Patch 1 by another author with a trailer; `cover`: as posted, with a cover letter naming the base."""
    batch = Patch(
        "mm/rmap: batch",
        "Why it is right.\n\nReviewed-by: Rev Iewer <rev@example.org>\nSigned-off-by: Jane Dev <jane@example.org>\n",
        (Edit("mm/rmap.c", "line 10 of rmap\n", "line 10 of rmap, batched\n"),),
        author="Ann Author <ann@example.org>",
    )
    comment = Patch(
        "mm/madvise: comment",
        "Signed-off-by: Jane Dev <jane@example.org>\n",
        (Edit("mm/madvise.c", "line 5 of madvise\n", "line 5, lazyfree\n"),),
    )
    rev = Revision(1, "two patches", (batch, comment), cover=cover, base_commit=cover)
    return posted(tree, base, tmp / "series.mbx", rev)


# ---------------------------------------------------------------- base rules


def test_base_commit_from_cover_letter_applies_on_own_branch(kt, tmp_path):
    tree, cfg, base = kt
    mbx = two_patch_series(tree, tmp_path, base, cover=True)
    res, b = apply_series(cfg, mbx, "review/s/v1")
    assert res.status == "ok", res.detail
    assert (b.commit, b.source) == (base, "base-commit")
    assert res.branch == "review/s/v1"
    assert [c.subject for c in res.commits] == ["mm/rmap: batch", "mm/madvise: comment"]
    repo = pygit2.Repository(str(tree))
    assert repo.head.shorthand == "review/s/v1"
    first = repo[res.commits[0].commit]
    assert first.author.email == "ann@example.org"  # git am keeps author and trailers
    assert "Reviewed-by: Rev Iewer <rev@example.org>" in first.message
    assert first.committer.email == "mm-review-bot@localhost"
    assert str(repo[res.commits[1].commit].parents[0].id) == str(first.id)
    assert "batched" in (tree / "mm/rmap.c").read_text()
    assert git(tree, "status", "--porcelain") == ""


def test_base_commit_from_caller(kt, tmp_path):
    tree, cfg, base = kt
    mbx = two_patch_series(tree, tmp_path, base)  # b4 am output has no cover letter
    res, b = apply_series(cfg, mbx, "review/s/v1", base_commit=base[:12])
    assert res.status == "ok" and b.source == "base-commit" and b.commit == base


def test_base_commit_not_in_tree_falls_through_to_blobs(kt, tmp_path):
    tree, cfg, base = kt
    mbx = two_patch_series(tree, tmp_path, base)
    res, b = apply_series(cfg, mbx, "review/s/v1", base_commit="deadbeef" * 5)
    assert res.status == "ok"
    assert b.source == "blobs" and b.commit == base
    assert any("deadbeef" in n and "not in the tree" in n for n in res.base_notes)


def test_blobs_find_an_older_commit_in_branch_history(kt, tmp_path):
    tree, cfg, base = kt
    git(tree, "checkout", "-q", "-B", "mm-new", base)
    # mm-new moved on and changed the very lines the series touches: its head is not the base.
    head = commit(tree, {"mm/rmap.c": edit(RMAP, "line 10 of rmap\n", "line 10 rewritten\n")}, "newer")
    git(tree, "checkout", "-q", "--detach", head)
    git(tree, "branch", "-q", "-D", "master")
    cfg = with_branches(cfg, ["mm-new"])
    mbx = two_patch_series(tree, tmp_path, base)
    res, b = apply_series(cfg, mbx, "review/s/v1")
    assert res.status == "ok", res.detail
    assert (b.commit, b.source) == (base, "blobs")


def test_branch_heads_in_order_first_that_applies(kt, tmp_path):
    tree, cfg, base = kt
    git(tree, "checkout", "-q", "-B", "mm-new", base)
    commit(tree, {"mm/rmap.c": edit(RMAP, "line 10 of rmap\n", "line 10 rewritten\n")}, "conflicting")
    git(tree, "checkout", "-q", "--detach", base)
    cfg = with_branches(cfg, ["mm-new", "master"])
    # The author's tree differs elsewhere in the files, so no preimage blob matches anything we have.
    local_work = (
        Edit("mm/rmap.c", "line 40 of rmap\n", "line 40 of rmap\nauthor-only line\n"),
        Edit("mm/madvise.c", "line 20 of madvise\n", "line 20 of madvise\nx\n"),
    )
    batch = Patch("mm/rmap: batch", "", (Edit("mm/rmap.c", "line 10 of rmap\n", "line 10, batched\n"),))
    mbx = posted(tree, base, tmp_path / "s.mbx", alone(batch, fake_base=local_work))
    res, b = apply_series(cfg, mbx, "review/s/v1")
    assert res.status == "ok", res.detail
    assert (b.commit, b.source) == (base, "branch:master")
    assert any("no commit has the preimage blobs" in n for n in res.base_notes)
    assert any(n.startswith("branch:mm-new") for n in res.base_notes)


def test_no_base_branches_is_a_failure_not_a_crash(kt, tmp_path):
    tree, cfg, base = kt
    mbx = two_patch_series(tree, tmp_path, base)
    git(tree, "branch", "-q", "-D", "master")
    res, b = apply_series(with_branches(cfg, ["nope"]), mbx, "review/s/v1")
    assert res.status == "failed" and "no base" in res.detail and b.commit is None


# ---------------------------------------------------------------- work tree behaviour


def test_switching_revisions_rewrites_only_differing_files(kt, tmp_path):
    tree, cfg, base = kt
    mbx = two_patch_series(tree, tmp_path, base)
    assert apply_series(cfg, mbx, "review/s/v1")[0].status == "ok"
    readme = tree / "README"
    os.utime(readme, (1, 1))  # an old mtime that a rewrite would replace
    git(tree, "update-index", "--refresh")
    (tree / "build.o").write_text("untracked build output survives\n")
    res, _ = apply_series(cfg, mbx, "review/s/v2")
    assert res.status == "ok"
    assert readme.stat().st_mtime == 1
    assert (tree / "build.o").exists()


def test_reapplying_the_same_revision_is_fine(kt, tmp_path):
    tree, cfg, base = kt
    mbx = two_patch_series(tree, tmp_path, base)
    first, _ = apply_series(cfg, mbx, "review/s/v1")
    again, _ = apply_series(cfg, mbx, "review/s/v1")
    assert again.status == "ok" and again.commits == first.commits  # reproducible ids


def test_leftover_local_changes_are_reset(kt, tmp_path):
    tree, cfg, base = kt
    (tree / "README").write_text("scribbled\n")
    res, _ = apply_series(cfg, two_patch_series(tree, tmp_path, base), "review/s/v1")
    assert res.status == "ok" and (tree / "README").read_text() == "tree\n"


# ---------------------------------------------------------------- bad input


def test_patch_that_does_not_apply_names_patch_file_and_hunk(kt, tmp_path):
    tree, cfg, base = kt
    # patch 2 was made on a change to mm/rmap.c that the tree does not have
    unseen = (Edit("mm/rmap.c", "line 30 of rmap\n", "line 30 changed\n"),)
    ok = Patch("mm/madvise: ok", "", (Edit("mm/madvise.c", "line 5 of madvise\n", "line 5, lazyfree\n"),))
    on_top = Patch("mm/rmap: on top", "", (Edit("mm/rmap.c", "line 30 changed\n", "line 30 changed twice\n"),))
    before = state(tree)
    mbx = posted(tree, base, tmp_path / "s.mbx", alone(ok, on_top, fake_base=unseen))
    res, b = apply_series(cfg, mbx, "review/s/v1")
    assert res.status == "failed"
    assert res.patch == PatchRef(2, "mm/rmap: on top")
    assert res.file == "mm/rmap.c"
    assert res.hunk.startswith("@@ -27,7 +27,7 @@")
    assert "patch 2 'mm/rmap: on top' does not apply at mm/rmap.c" in res.detail
    assert b.source == "branch:master"
    assert state(tree) == before


def test_out_of_order_series_fails_at_first_patch_that_does_not_apply(kt, tmp_path):
    tree, cfg, base = kt
    first = Patch("mm/rmap: first", "", (Edit("mm/rmap.c", "line 10 of rmap\n", "line 10 first\n"),))
    second = Patch("mm/rmap: second", "", (Edit("mm/rmap.c", "line 10 first\n", "line 10 second\n"),))
    mbx = posted(tree, base, tmp_path / "s.mbx", alone(first, second))
    text = mbx.read_text()
    # numbered out of order: the second commit claims to be 1/2 (patches are applied in N/M order, as b4 does)
    mbx.write_text(text.replace("[PATCH 1/2]", "[PATCH x/2]").replace("[PATCH 2/2]", "[PATCH 1/2]")
                   .replace("[PATCH x/2]", "[PATCH 2/2]"))
    before = state(tree)
    res, _ = apply_series(cfg, mbx, "review/s/v1")
    assert res.status == "failed"
    assert res.patch == PatchRef(1, "mm/rmap: second")
    assert res.file == "mm/rmap.c" and res.hunk.startswith("@@ -7,7 +7,7 @@")
    assert state(tree) == before


BAD_PATHS = [
    "diff --git a/../../etc/passwd b/../../etc/passwd\n--- a/../../etc/passwd\n+++ b/../../etc/passwd\n"
    "@@ -1 +1 @@\n-root:x:0:0\n+pwned\n",
    "--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-root:x:0:0\n+pwned\n",
    "diff --git a/mm/rmap.c b/mm/rmap.c\nrename from mm/rmap.c\nrename to ../outside.c\n",
    "diff --git a/.git/config b/.git/config\n--- a/.git/config\n+++ b/.git/config\n@@ -1 +1 @@\n-a\n+b\n",
]


@pytest.mark.parametrize("diff", BAD_PATHS, ids=["dotdot", "absolute", "rename-out", "dotgit"])
def test_paths_outside_the_tree_are_refused_before_anything_is_written(kt, tmp_path, diff):
    tree, cfg, base = kt
    mbx = tmp_path / "s.mbx"
    mbx.write_text(handmade_mail("[PATCH] mm: sneaky", f"msg\n\nSigned-off-by: X <x@example.org>\n---\n{diff}", JANE))
    before = state(tree)
    res, b = apply_series(cfg, mbx, "review/s/v1")
    assert res.status == "failed" and res.detail.startswith("refused:")
    assert "mm: sneaky" in res.detail and (
        "absolute" in res.detail or "leaves the tree" in res.detail or ".git" in res.detail
    )
    assert b.commit is None and state(tree) == before
    assert not (tmp_path / "outside.c").exists()


def test_binary_patch_is_refused(kt, tmp_path):
    tree, cfg, base = kt
    firmware = Patch("mm: add firmware", "", files={"mm/blob.bin": bytes(range(256)) * 4})
    mbx = posted(tree, base, tmp_path / "s.mbx", alone(firmware))
    before = state(tree)
    res, _ = apply_series(cfg, mbx, "review/s/v1")
    assert res.status == "failed" and "binary patch for mm/blob.bin" in res.detail
    assert res.patch == PatchRef(1, "mm: add firmware")
    assert state(tree) == before


def test_empty_patch_is_refused(kt, tmp_path):
    tree, cfg, base = kt
    mbx = tmp_path / "s.mbx"
    body = "Just words.\n\nSigned-off-by: X <x@example.org>\n"
    mbx.write_text(handmade_mail("[PATCH 1/1] mm: nothing here", body, JANE))
    res, _ = apply_series(cfg, mbx, "review/s/v1")
    assert res.status == "failed" and "is empty" in res.detail
    assert res.patch is not None and res.patch.subject == "mm: nothing here"


def test_not_an_mbox(kt, tmp_path):
    tree, cfg, base = kt
    mbx = tmp_path / "s.mbx"
    mbx.write_text("")
    res, _ = apply_series(cfg, mbx, "review/s/v1")
    assert res.status == "failed" and "no patches" in res.detail


# ---------------------------------------------------------------- parsing


def test_parse_diff_is_not_fooled_by_removed_lines_that_look_like_headers():
    diff = (
        "diff --git a/x.c b/x.c\nindex 1234567..89abcde 100644\n--- a/x.c\n+++ b/x.c\n"
        "@@ -1,3 +1,2 @@\n a\n--- /etc/passwd\n b\n"
    )
    (f,) = patches.parse_diff(diff)
    assert (f.old, f.new, f.preimage) == ("x.c", "x.c", "1234567")
    assert [(h.old_start, h.header) for h in f.hunks] == [(1, "@@ -1,3 +1,2 @@")]
    assert f.hunks[0].lines == [(" ", "a"), ("-", "-- /etc/passwd"), (" ", "b")]


def test_clean_subject():
    assert patches.clean_subject("Re: [PATCH v3 2/4] mm:\n foo") == "mm: foo"


def test_switch_back_to_an_applied_revision(kt, tmp_path):
    tree, cfg, base = kt
    mbx = two_patch_series(tree, tmp_path, base)
    ok, _ = apply_series(cfg, mbx, "review/s/v1")
    repo.switch(cfg, "master")
    assert "batched" not in (tree / "mm/rmap.c").read_text()
    assert repo.switch(cfg, "review/s/v1") == ok.commits[-1].commit
    assert "batched" in (tree / "mm/rmap.c").read_text()
