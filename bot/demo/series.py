"""The demo's multi-revision series on top of the Debian kernel tree, written as lore-style mboxes.

The series ("mm/rmap: lazyfree batched unmap cleanups") goes through eight revisions:
  v1  clean: a comment in try_to_unmap_one() + a comment in mm/madvise.c;
  v2  re-introduces the historical out-of-bounds bug of "mm: Support batched unmap for lazyfree large
      folios" v4 3/4: batch the whole folio (max_nr = folio_nr_pages(folio), no page-table/VMA cap) and
      leave the walk with `if (nr_pages > 1) goto walk_done;`;
  v3  fixes it again (cap at pmd_addr_end(addr, vma->vm_end), `nr_pages == folio_nr_pages(folio)`) and
      turns one exit of try_to_unmap_one() from `goto walk_done` into `goto walk_abort`;
  v4  v3 plus an unused variable (a compiler warning for the build stage);
  v5  does not apply: made on a tree we do not have (base-commit names a commit that is not in kernel-tree);
  v6  v3's first two patches plus an unused variable in mm/memory-failure.c (a file the old tinyconfig
      build never compiled: a new warning only a config that compiles mm/ can see);
  v7  the same two plus a build error in mm/mempolicy.c (another such file: NUMA only);
  v8  the same two plus a runtime bug only the tree's mm selftests see: madvise_populate() returns ENOMEM
      for an incompatible mapping (madv_populate: "not ok 2 MADV_POPULATE_WRITE with PROT_READ", not ok 3).

The writing (commits in a scratch repository borrowing kernel-tree's objects, format-patch, fixed headers
for byte-for-byte reproducible output) is writer.py's, shared with the tests; this module holds the
revisions and how the demo posts them: `[PATCH vN]` from v1 on, a cover letter each, unthreaded, with a
`vN -> vM:` changelog linking every earlier cover letter.
"""

# ruff: noqa: E101  (the C snippets below are kernel code: tabs, then " * " in comments)
from __future__ import annotations

import datetime as dt
import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pygit2

from bot.demo.writer import Edit, Revision, SeriesWriter
from bot.demo.writer import Patch as PatchSpec
from bot.errors import OperationalError

__all__ = ["CLARIFIED_EXIT", "EXIT_COMMENT", "REVISIONS", "TTU", "Edit", "Generated", "PatchSpec", "RevisionSpec",
           "generate", "msgid"]

AUTHOR_NAME = "Ada Lovelace"
AUTHOR_EMAIL = "ada@example.org"
AUTHOR = f"{AUTHOR_NAME} <{AUTHOR_EMAIL}>"
CC = "Andrew Morton <akpm@linux-foundation.org>"
TITLE = "mm/rmap: lazyfree batched unmap cleanups"
# One week between revisions, a fixed time of day; 2026-01-05 10:00:00 UTC.
EPOCH = 1767607200
WEEK = 7 * 24 * 3600
TTU = "static bool try_to_unmap_one("


@dataclass(frozen=True)
class RevisionSpec:
    """One revision of the demo series, and what the demo expects of it (`kind`)."""

    version: int
    kind: str  # clean | bug | fix | warning | broken | coverage-warning | coverage-error | selftest-bug
    blurb: str
    changes: str  # "vN-1 -> vN" changelog text; the link to the previous cover is appended
    patches: tuple[PatchSpec, ...]
    fake_base: tuple[Edit, ...] = ()  # broken: patches are made on base + these edits


@dataclass
class Generated:
    """One written revision, as manifest.json lists it."""

    version: int
    kind: str
    path: str
    base: str  # what base-commit: says
    cover_msgid: str
    patch_msgids: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- the edits (Debian linux-source-7.2)

EXIT_COMMENT = """\
		/*
		 * If we are sure that we batched the entire folio and cleared
		 * all PTEs, we can just optimize and stop right here.
		 */
		if (nr_pages == folio_nr_pages(folio))
			goto walk_done;
"""

CLARIFIED_EXIT = """\
		/*
		 * If we are sure that we batched the entire folio and cleared
		 * all PTEs, we can just optimize and stop right here. A batch
		 * never crosses a page table or the end of the VMA (see
		 * folio_unmap_pte_batch()), so after a partial batch the walk
		 * has to continue with the next page table.
		 */
		if (nr_pages == folio_nr_pages(folio))
			goto walk_done;
"""

BUGGY_EXIT = """\
		/* We have already batched the entire folio */
		if (nr_pages > 1)
			goto walk_done;
"""

CAPPED_BATCH = """\
	unsigned long end_addr, addr = pvmw->address;
	struct vm_area_struct *vma = pvmw->vma;
	unsigned int max_nr;

	if (flags & TTU_HWPOISON)
		return 1;
	if (!folio_test_large(folio))
		return 1;

	/* We may only batch within a single VMA and a single page table. */
	end_addr = pmd_addr_end(addr, vma->vm_end);
	max_nr = (end_addr - addr) >> PAGE_SHIFT;
"""

UNCAPPED_BATCH = """\
	struct vm_area_struct *vma = pvmw->vma;
	unsigned int max_nr;

	if (flags & TTU_HWPOISON)
		return 1;
	if (!folio_test_large(folio))
		return 1;

	/* Lazyfree folios are unmapped as a whole. */
	max_nr = folio_nr_pages(folio);
"""

CROSSED_DONE = """\
			if (pvmw.flags & PVMW_PGTABLE_CROSSED)
				goto walk_done;
"""

CROSSED_ABORT = """\
			if (pvmw.flags & PVMW_PGTABLE_CROSSED)
				goto walk_abort;
"""

MADVISE_OLD = """\
		 * leave it as is so that it can be marked as lazyfree. If we
		 * fail to split a folio, leave it in place and advance to the
		 * next pte in the range.
		 */
"""

MADVISE_NEW = """\
		 * leave it as is so that it can be marked as lazyfree, and
		 * reclaim can later unmap it with a single batch per page
		 * table. If we fail to split a folio, leave it in place and
		 * advance to the next pte in the range.
		 */
"""

P_COMMENT = PatchSpec(
    "mm/rmap: clarify when try_to_unmap_one() may stop after a batch",
    "The early exit after a batched unmap is only correct because\nfolio_unmap_pte_batch() never batches "
    'across a page table or the end of\nthe VMA. Say so, so that nobody "simplifies" the check.\n',
    (Edit("mm/rmap.c", EXIT_COMMENT, CLARIFIED_EXIT, TTU),),
)
P_MADVISE = PatchSpec(
    "mm/madvise: mention batched reclaim in the MADV_FREE large folio comment",
    "Large lazyfree folios that are fully mapped are kept whole so that\nreclaim can unmap them in one "
    "batch. Mention it in the comment.\n",
    (Edit("mm/madvise.c", MADVISE_OLD, MADVISE_NEW),),
)
P_BATCH_ALL = PatchSpec(
    "mm/rmap: batch the whole lazyfree folio in try_to_unmap_one()",
    "A lazyfree large folio is usually mapped by one VMA in one piece, so\nunmap it as a whole: batch "
    "folio_nr_pages() PTEs and stop the rmap walk\nonce a batch has been taken.\n",
    (
        Edit("mm/rmap.c", CAPPED_BATCH, UNCAPPED_BATCH, "folio_unmap_pte_batch("),
        Edit("mm/rmap.c", EXIT_COMMENT, BUGGY_EXIT, TTU),
    ),
)
P_ABORT = PatchSpec(
    "mm/rmap: use walk_abort when an mlocked folio crosses a page table",
    "When the PTEs of an mlocked large folio cross a page table, the folio\nis not mlocked and ret is "
    "already false. Leave through walk_abort so\nthat the failure is explicit at the exit.\n",
    (Edit("mm/rmap.c", CROSSED_DONE, CROSSED_ABORT, TTU),),
)
P_ABORT_WARN = PatchSpec(
    P_ABORT.subject,
    P_ABORT.body,
    (*P_ABORT.edits, Edit("mm/rmap.c", "\tint ptes = 0;\n", "\tint ptes = 0;\n\tint crossed;\n", TTU)),
)
# v5 is made on a tree where try_to_unmap_one() already counts restarts; its hunk does not match ours.
FAKE_UPSTREAM = (Edit("mm/rmap.c", "\tint ptes = 0;\n", "\tint ptes = 0, restarts = 0;\n", TTU),)
P_BROKEN = PatchSpec(
    "mm/rmap: count page table crossings of mlocked folios",
    "Count how often an mlocked folio crosses a page table, next to the\nrestart counter.\n",
    (
        Edit("mm/rmap.c", "\tint ptes = 0, restarts = 0;\n", "\tint ptes = 0, restarts = 0, crossings = 0;\n", TTU),
        Edit(
            "mm/rmap.c", CROSSED_DONE, CROSSED_DONE.replace("\t\t\tif (pvmw", "\t\t\tcrossings++;\n\t\t\tif (pvmw"), TTU
        ),
    ),
)

# v6/v7 touch files the old tinyconfig-based build never compiled: the coverage config must, on both arches.
P_HWPOISON_WARN = PatchSpec(
    "mm/memory-failure: keep the signal kill_proc() sent",
    "Remember which signal kill_proc() sent for the hwpoison report that\nfollows.\n",
    (Edit("mm/memory-failure.c", "\tshort addr_lsb = tk->size_shift;\n\tint ret = 0;\n",
          "\tshort addr_lsb = tk->size_shift;\n\tint ret = 0;\n\tint sent;\n", "static int kill_proc("),),
)
P_MBIND_ERROR = PatchSpec(
    "mm/mempolicy: count mbind() calls",
    "Count the mbind() calls that reach do_mbind(), for the lazyfree\nbatching statistics.\n",
    (Edit("mm/mempolicy.c", "\tlong nr_failed;\n\tLIST_HEAD(pagelist);\n\n",
          "\tlong nr_failed;\n\tLIST_HEAD(pagelist);\n\n\tmbind_calls++;\n", "static long do_mbind("),),
)

# v8's bug is one the stress scenarios cannot see (they never populate a PROT_NONE mapping) and the tree's
# own madv_populate selftest can: MADV_POPULATE_(READ|WRITE) on an incompatible mapping returns ENOMEM.
POPULATE_ERRORS = """\
			case -EINVAL: /* Incompatible mappings / permissions. */
				return -EINVAL;
			case -EHWPOISON:
				return -EHWPOISON;
			case -EFAULT: /* VM_FAULT_SIGBUS or VM_FAULT_SIGSEGV */
				return -EFAULT;
			default:
				pr_warn_once("%s: unhandled return value: %ld\\n",
					     __func__, pages);
				fallthrough;
			case -ENOMEM: /* No VMA or out of memory. */
				return -ENOMEM;
"""
POPULATE_FOLDED = """\
			case -EHWPOISON:
				return -EHWPOISON;
			case -EFAULT: /* VM_FAULT_SIGBUS or VM_FAULT_SIGSEGV */
				return -EFAULT;
			default:
				pr_warn_once("%s: unhandled return value: %ld\\n",
					     __func__, pages);
				fallthrough;
			case -EINVAL: /* Incompatible mappings / permissions. */
			case -ENOMEM: /* No VMA or out of memory. */
				return -ENOMEM;
"""
P_POPULATE = PatchSpec(
    "mm/madvise: fold the error cases of madvise_populate()",
    "An incompatible mapping and a missing VMA both mean that nothing\ncould be populated; report them "
    "the same way, like the default case.\n",
    (Edit("mm/madvise.c", POPULATE_ERRORS, POPULATE_FOLDED, "static long madvise_populate("),),
)

REVISIONS: tuple[RevisionSpec, ...] = (
    RevisionSpec(1, "clean", "Two comment updates around the batched lazyfree unmap.", "", (P_COMMENT, P_MADVISE)),
    RevisionSpec(
        2,
        "bug",
        "Unmap lazyfree large folios as a whole, and update a comment.",
        "batch the whole folio instead of clarifying the comment (patch 1)",
        (P_BATCH_ALL, P_MADVISE),
    ),
    RevisionSpec(
        3,
        "fix",
        "Clarify the batched exit again, and make the mlock crossing exit explicit.",
        "drop the whole-folio batching of v2: it can run past the page table and the VMA, "
        "restore the pmd_addr_end(addr, vma->vm_end) cap and the nr_pages == folio_nr_pages() "
        "exit; new patch 3 (walk_done -> walk_abort)",
        (P_COMMENT, P_MADVISE, P_ABORT),
    ),
    RevisionSpec(
        4,
        "warning",
        "Same as v3 with a leftover variable.",
        "patch 3: prepare a crossing counter",
        (P_COMMENT, P_MADVISE, P_ABORT_WARN),
    ),
    RevisionSpec(
        5,
        "broken",
        "Rebased on a newer tree; count crossings.",
        "rebased, patch 3 replaced by a crossing counter",
        (P_MADVISE, P_BROKEN),
        fake_base=FAKE_UPSTREAM,
    ),
    RevisionSpec(
        6,
        "coverage-warning",
        "Back on the v3 base; remember the hwpoison signal.",
        "back to v3's patches on the real base; new patch 3 in mm/memory-failure.c",
        (P_COMMENT, P_MADVISE, P_HWPOISON_WARN),
    ),
    RevisionSpec(
        7,
        "coverage-error",
        "Count mbind() calls as well.",
        "patch 3 replaced: count mbind() calls in mm/mempolicy.c",
        (P_COMMENT, P_MADVISE, P_MBIND_ERROR),
    ),
    RevisionSpec(
        8,
        "selftest-bug",
        "Fold the error cases of MADV_POPULATE.",
        "patch 3 replaced: fold madvise_populate()'s error cases",
        (P_COMMENT, P_MADVISE, P_POPULATE),
    ),
)




# ---------------------------------------------------------------- writing


def _posted(version: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(EPOCH + (version - 1) * WEEK, dt.UTC)


def msgid(version: int, index: int) -> str:
    """git-send-email style and deterministic: <date>.<pid>-<n>-<author address>."""
    return f"{_posted(version).strftime('%Y%m%d%H%M%S')}.{4200 + version}-{index + 1}-{AUTHOR_EMAIL}"


def _newest_debian(tree: Path) -> str:
    heads = sorted(b for b in pygit2.Repository(str(tree)).branches.local if b.startswith("debian/"))
    if not heads:
        raise OperationalError(f"{tree} has no debian/* branch; run setup first")
    return heads[-1]


def _revision(spec: RevisionSpec) -> Revision:
    """How the demo posts: `[PATCH vN]` from v1 on, a cover letter, an arrow changelog of every step."""
    return Revision(
        spec.version, TITLE, spec.patches, spec.blurb, spec.changes, spec.fake_base, prefix="PATCH v{v}",
        changelog="arrow",
    )


def generate(
    tree: Path, out: Path, base: str | None = None, revisions: tuple[RevisionSpec, ...] = REVISIONS
) -> list[Generated]:
    """Write out/v<N>.mbx (cover letter + patches) for each revision and out/manifest.json; return them.

    `base` defaults to the newest debian/* branch of `tree` (kernel-tree's own repository).
    """
    out.mkdir(parents=True, exist_ok=True)
    done: list[Generated] = []
    with tempfile.TemporaryDirectory(prefix="testseries-") as tmp:
        writer = SeriesWriter.on_tree(
            tree, base or _newest_debian(tree), Path(tmp), author=AUTHOR, cc=(CC,), msgid=msgid, signoff=True
        )
        for spec in revisions:
            writer.when = _posted(spec.version)
            posting = writer.write(_revision(spec))
            gen = Generated(spec.version, spec.kind, f"v{spec.version}.mbx", posting.base, msgid(spec.version, 0))
            gen.patch_msgids, gen.subjects = posting.msgids[1:], [p.subject for p in spec.patches]
            (out / gen.path).write_text(posting.mbox(), encoding="utf-8")
            done.append(gen)
    (out / "manifest.json").write_text(json.dumps([asdict(g) for g in done], indent=2) + "\n")
    return done
