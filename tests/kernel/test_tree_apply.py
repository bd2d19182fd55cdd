"""Applying (bot/tree/) and the demo series generator on the real Debian kernel tree (kernel-tree/ from `bot setup`).

The tree: see tests/kernel/conftest.py. Branches review/pytest/* are made and
deleted again, and HEAD is put back where it was.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import Config, PathsConfig
from bot.demo import series as testseries
from bot.demo.series import CLARIFIED_EXIT, EXIT_COMMENT, TTU, Edit, PatchSpec, RevisionSpec
from bot.results import ApplyResult, Base, PatchRef
from bot.tree import apply_series as tree_apply
from tests.kernel.conftest import KERNEL_TREE, git, restored_tree

pytestmark = pytest.mark.kernel

TREE = KERNEL_TREE


def apply_series(cfg: Config, mbox: Path, branch: str) -> tuple[ApplyResult, Base]:
    res = tree_apply(cfg, mbox, branch)
    return res, res.base or Base()


@pytest.fixture(scope="module")
def cfg() -> Iterator[Config]:
    with restored_tree("review/pytest/*"):
        yield Config(paths=PathsConfig(kernel_tree=TREE))


@pytest.fixture(scope="module")
def series(cfg, tmp_path_factory) -> dict[int, Path]:
    out = tmp_path_factory.mktemp("series")
    gen = testseries.generate(TREE, out)
    return {g.version: out / g.path for g in gen}


def state() -> tuple[str, str]:
    return git("rev-parse", "HEAD"), git("status", "--porcelain", "--untracked-files=no")


def rmap() -> str:
    return (TREE / "mm/rmap.c").read_text()


def test_generator_is_reproducible_and_lore_like(cfg, series, tmp_path):
    again = testseries.generate(TREE, tmp_path)
    for path in series.values():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes()
    v3 = series[3].read_text()
    assert "Subject: [PATCH v3 0/3] mm/rmap: lazyfree batched unmap cleanups" in v3
    assert "To: linux-mm@kvack.org" in v3 and "From: Ada Lovelace <ada@example.org>" in v3
    assert re.search(r"^Date: Mon, 19 Jan 2026 10:00:00 \+0000$", v3, re.M)
    assert f"https://lore.kernel.org/linux-mm/{again[1].cover_msgid}/" in v3  # v2 -> v3 changelog link
    assert v3.count("base-commit: ") == 1
    v2 = series[2].read_text()
    assert "+\tmax_nr = folio_nr_pages(folio);" in v2 and "+\t\tif (nr_pages > 1)" in v2
    assert "-\tmax_nr = (end_addr - addr) >> PAGE_SHIFT;" in v2
    assert "-\t\t\t\tgoto walk_done;\n+\t\t\t\tgoto walk_abort;" in v3


def test_revisions_apply_on_their_own_branches(cfg, series):
    makefile = TREE / "Makefile"
    res, base = apply_series(cfg, series[1], "review/pytest/v1")
    assert res.status == "ok", res.detail
    assert base.source == "base-commit" and len(res.commits or []) == 2
    mtime = makefile.stat().st_mtime_ns
    res, _ = apply_series(cfg, series[2], "review/pytest/v2")
    assert res.status == "ok", res.detail
    text = rmap()
    assert "max_nr = folio_nr_pages(folio);" in text and "if (nr_pages > 1)\n\t\t\tgoto walk_done;" in text
    res, _ = apply_series(cfg, series[3], "review/pytest/v3")
    assert res.status == "ok", res.detail
    text = rmap()
    assert "end_addr = pmd_addr_end(addr, vma->vm_end);" in text
    assert "if (nr_pages == folio_nr_pages(folio))\n\t\t\tgoto walk_done;" in text
    assert "PVMW_PGTABLE_CROSSED)\n\t\t\t\tgoto walk_abort;" in text
    res, _ = apply_series(cfg, series[4], "review/pytest/v4")
    assert res.status == "ok" and "\tint crossed;\n" in rmap()
    assert makefile.stat().st_mtime_ns == mtime  # switching revisions left untouched files alone
    assert git("rev-parse", "--abbrev-ref", "HEAD").strip() == "review/pytest/v4"


def test_broken_revision_fails_with_patch_and_hunk(cfg, series):
    before = state()
    res, base = apply_series(cfg, series[5], "review/pytest/v5")
    assert res.status == "failed"
    assert res.patch == PatchRef(2, "mm/rmap: count page table crossings of mlocked folios")
    assert res.file == "mm/rmap.c" and (res.hunk or "").startswith("@@ -1998,7 +1998,7 @@")
    assert base.source.startswith("branch:debian/")
    notes = " ".join(res.base_notes or [])
    assert "is not in the tree" in notes and "no commit has the preimage blobs" in notes
    assert state() == before
    assert "review/pytest/v5" not in git("branch", "--list", "review/pytest/v5")


def test_blobs_rule(cfg, series, tmp_path):
    mbx = tmp_path / "v3-nobase.mbx"
    mbx.write_text(re.sub(r"^base-commit: .*\n", "", series[3].read_text(), flags=re.M))
    res, base = apply_series(cfg, mbx, "review/pytest/blobs")
    assert res.status == "ok" and base.source == "blobs"


def test_branch_rule(cfg, series, tmp_path):
    mbx = tmp_path / "v3-noblobs.mbx"
    text = re.sub(r"^base-commit: .*\n", "", series[3].read_text(), flags=re.M)
    mbx.write_text(re.sub(r"^index [0-9a-f]+\.\.[0-9a-f]+ \d+\n", "", text, flags=re.M))
    res, base = apply_series(cfg, mbx, "review/pytest/branch")
    assert res.status == "ok" and base.source.startswith("branch:debian/")


def test_out_of_order_series(cfg, tmp_path):
    further = CLARIFIED_EXIT.replace("has to continue", "must continue")
    spec = RevisionSpec(
        1,
        "ooo",
        "two dependent patches",
        "",
        (
            PatchSpec("mm/rmap: first", "first\n", (Edit("mm/rmap.c", EXIT_COMMENT, CLARIFIED_EXIT, TTU),)),
            PatchSpec("mm/rmap: second", "second\n", (Edit("mm/rmap.c", CLARIFIED_EXIT, further, TTU),)),
        ),
    )
    (g,) = testseries.generate(TREE, tmp_path, revisions=(spec,))
    # numbered out of order: the second patch claims to be 1/2 (patches are applied in N/M order, as b4 does)
    swapped = tmp_path / "swapped.mbx"
    text = (tmp_path / g.path).read_text()
    swapped.write_text(re.sub(r"(\[PATCH v1 )([12])(/2\])", lambda m: m[1] + {"1": "2", "2": "1"}[m[2]] + m[3], text))
    before = state()
    res, _ = apply_series(cfg, swapped, "review/pytest/ooo")
    assert res.status == "failed" and res.patch == PatchRef(1, "mm/rmap: second")
    assert res.file == "mm/rmap.c"
    assert state() == before


@pytest.mark.parametrize(
    "diff,why",
    [
        ("--- a/../../etc/passwd\n+++ b/../../etc/passwd\n@@ -1 +1 @@\n-root\n+pwned\n", "leaves the tree"),
        ("--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-root\n+pwned\n", "absolute"),
        (
            "diff --git a/mm/x.bin b/mm/x.bin\nindex 0000000..1111111\nBinary files a/mm/x.bin and b/mm/x.bin differ\n",
            "binary patch",
        ),
        ("", "is empty"),
    ],
)
def test_bad_input_is_refused_on_the_real_tree(cfg, tmp_path, diff, why):
    mbx = tmp_path / "bad.mbx"
    mbx.write_text(
        f"From 0000 Mon Sep 17 00:00:00 2001\nFrom: X <x@example.org>\nSubject: [PATCH] mm: bad\n\nmsg\n---\n{diff}"
    )
    before = state()
    res, _ = apply_series(cfg, mbx, "review/pytest/bad")
    assert res.status == "failed" and why in res.detail
    assert state() == before
