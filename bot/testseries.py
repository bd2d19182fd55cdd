"""Realistic multi-revision test series on top of the Debian kernel tree, written as lore-style mboxes.

The series ("mm/rmap: lazyfree batched unmap cleanups") goes through five revisions:
  v1  clean: a comment in try_to_unmap_one() + a comment in mm/madvise.c;
  v2  re-introduces the historical out-of-bounds bug of "mm: Support batched unmap for lazyfree large
      folios" v4 3/4: batch the whole folio (max_nr = folio_nr_pages(folio), no page-table/VMA cap) and
      leave the walk with `if (nr_pages > 1) goto walk_done;`;
  v3  fixes it again (cap at pmd_addr_end(addr, vma->vm_end), `nr_pages == folio_nr_pages(folio)`) and
      turns one exit of try_to_unmap_one() from `goto walk_done` into `goto walk_abort`;
  v4  v3 plus an unused variable (a compiler warning for the build stage);
  v5  does not apply: made on a tree we do not have (base-commit names a commit that is not in kernel-tree).

Commits are made with pygit2 in a scratch bare repository that borrows kernel-tree's objects (alternates),
so kernel-tree itself gets no new objects, refs or work tree changes; `git format-patch --cover-letter -vN
--base=...` writes the mails; headers (Date, Message-ID, threading) are then fixed so output is byte-for-byte
reproducible.
"""

# ruff: noqa: E101  (the C snippets below are kernel code: tabs, then " * " in comments)
from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pygit2

from bot.errors import OperationalError

AUTHOR_NAME = "Ada Lovelace"
AUTHOR_EMAIL = "ada@example.org"
TO = "linux-mm@kvack.org"
CC = "Andrew Morton <akpm@linux-foundation.org>"
LORE = "https://lore.kernel.org/linux-mm"
TITLE = "mm/rmap: lazyfree batched unmap cleanups"
# One week between revisions, a fixed time of day; 2026-01-05 10:00:00 UTC.
EPOCH = 1767607200
WEEK = 7 * 24 * 3600
GIT_TIMEOUT = 120.0
TTU = "static bool try_to_unmap_one("


@dataclass(frozen=True)
class Edit:
    path: str
    old: str
    new: str
    after: str = ""  # search for `old` only after this anchor (e.g. a function's signature)


@dataclass(frozen=True)
class PatchSpec:
    subject: str
    body: str
    edits: tuple[Edit, ...]


@dataclass(frozen=True)
class RevisionSpec:
    version: int
    kind: str  # clean | bug | fix | warning | broken
    blurb: str
    changes: str  # "vN-1 -> vN" changelog text; the link to the previous cover is appended
    patches: tuple[PatchSpec, ...]
    fake_base: tuple[Edit, ...] = ()  # broken: patches are made on base + these edits


@dataclass
class Generated:
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

SOB = f"Signed-off-by: {AUTHOR_NAME} <{AUTHOR_EMAIL}>\n"

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
    P_ABORT.edits + (Edit("mm/rmap.c", "\tint ptes = 0;\n", "\tint ptes = 0;\n\tint crossed;\n", TTU),),
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
)


# ---------------------------------------------------------------- making commits


def _replace(repo: pygit2.Repository, tree: pygit2.Tree, path: str, data: bytes) -> pygit2.Oid:
    """A new tree like `tree` with the blob at `path` replaced; only the directories on the path change."""
    head, _, rest = path.partition("/")
    builder = repo.TreeBuilder(tree)
    if rest:
        sub = tree[head]
        builder.insert(head, _replace(repo, repo[sub.id].peel(pygit2.Tree), rest, data), pygit2.enums.FileMode.TREE)
    else:
        builder.insert(head, repo.create_blob(data), tree[head].filemode)
    return builder.write()


def _apply_edits(repo: pygit2.Repository, tree: pygit2.Tree, edits: tuple[Edit, ...]) -> pygit2.Tree:
    for e in edits:
        text = repo[tree[e.path].id].peel(pygit2.Blob).data.decode()
        start = text.index(e.after) if e.after else 0
        at = text.find(e.old, start)
        if at < 0:
            raise OperationalError(
                f"testseries: {e.path} no longer has the text this edit expects: {e.old.strip().splitlines()[0]!r}"
            )
        text = text[:at] + e.new + text[at + len(e.old) :]
        tree = repo[_replace(repo, tree, e.path, text.encode())].peel(pygit2.Tree)
    return tree


def _commit(
    repo: pygit2.Repository, parent: pygit2.Commit, msg: str, edits: tuple[Edit, ...], when: int
) -> pygit2.Commit:
    sig = pygit2.Signature(AUTHOR_NAME, AUTHOR_EMAIL, when, 0)
    tree = _apply_edits(repo, parent.tree, edits)
    oid = repo.create_commit(None, sig, sig, msg, tree.id, [parent.id])
    return repo[oid].peel(pygit2.Commit)


# ---------------------------------------------------------------- mails


def msgid(version: int, index: int) -> str:
    """git-send-email style and deterministic: <date>.<pid>-<n>-<author address>."""
    stamp = _stamp(version)
    return f"{stamp}.{4200 + version}-{index + 1}-{AUTHOR_EMAIL}"


def _stamp(version: int) -> str:
    import datetime as dt

    t = dt.datetime.fromtimestamp(EPOCH + (version - 1) * WEEK, dt.UTC)
    return t.strftime("%Y%m%d%H%M%S")


def _date(version: int, index: int) -> str:
    import datetime as dt
    from email.utils import format_datetime

    return format_datetime(dt.datetime.fromtimestamp(EPOCH + (version - 1) * WEEK + index, dt.UTC))


def _set_headers(mail: str, headers: dict[str, str]) -> str:
    """Replace (or add) the given headers, dropping the old ones with their continuation lines."""
    head, sep, body = mail.partition("\n\n")
    drop = {h.lower() for h in headers}
    kept: list[str] = []
    skipping = False
    for line in head.split("\n"):
        if line[:1] in (" ", "\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = line.split(":", 1)[0].lower() in drop
        if not skipping:
            kept.append(line)
    kept += [f"{k}: {v}" for k, v in headers.items()]
    return "\n".join(kept) + sep + body


def _cover_text(spec: RevisionSpec, prev: list[Generated], specs: tuple[RevisionSpec, ...]) -> tuple[str, str]:
    """The blurb with a changelog, newest first, each entry linking the previous revision's cover letter."""
    blurb = spec.blurb + "\n"
    if prev:
        blurb += "\nChanges:\n"
        for g, later in reversed(list(zip(prev, specs[1:], strict=False))):
            blurb += f"v{g.version} -> v{later.version}: {later.changes}\n  {LORE}/{g.cover_msgid}/\n"
    return TITLE, blurb


def _git(gitdir: Path, *args: str) -> str:
    try:
        proc = subprocess.run(
            ["git", f"--git-dir={gitdir}", *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            env={"PATH": "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(gitdir), "LC_ALL": "C"},
        )
    except subprocess.TimeoutExpired as e:
        raise OperationalError(f"git {args[0]} timed out after {GIT_TIMEOUT:.0f}s") from e
    if proc.returncode:
        raise OperationalError(f"git {args[0]} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return proc.stdout


def generate(
    tree: Path, out: Path, base: str | None = None, revisions: tuple[RevisionSpec, ...] = REVISIONS
) -> list[Generated]:
    """Write out/v<N>.mbx (cover letter + patches) for each revision and out/manifest.json; return them.

    `base` defaults to the newest debian/* branch of `tree` (kernel-tree's own repository).
    """
    kernel = pygit2.Repository(str(tree))
    if base is None:
        heads = sorted(b for b in kernel.branches.local if b.startswith("debian/"))
        if not heads:
            raise OperationalError(f"{tree} has no debian/* branch; run setup first")
        base = heads[-1]
    base_commit = kernel.revparse_single(base).peel(pygit2.Commit)
    out.mkdir(parents=True, exist_ok=True)
    done: list[Generated] = []
    with tempfile.TemporaryDirectory(prefix="testseries-") as tmp:
        scratch = pygit2.init_repository(str(Path(tmp) / "scratch.git"), bare=True)
        # Borrow kernel-tree's objects; new blobs/trees/commits land in the scratch repo only.
        (Path(scratch.path) / "objects" / "info" / "alternates").write_text(str(Path(kernel.path) / "objects") + "\n")
        scratch = pygit2.Repository(scratch.path)
        for spec in revisions:
            when = EPOCH + (spec.version - 1) * WEEK
            parent = scratch[base_commit.id].peel(pygit2.Commit)
            if spec.fake_base:
                parent = _commit(scratch, parent, "upstream work we do not have\n", spec.fake_base, when - 3600)
            claimed = str(parent.id)
            tip = parent
            for i, p in enumerate(spec.patches, 1):
                tip = _commit(scratch, tip, f"{p.subject}\n\n{p.body}\n{SOB}", p.edits, when + i)
            done.append(_format(Path(scratch.path), spec, claimed, str(tip.id), out, done, revisions))
    (out / "manifest.json").write_text(json.dumps([asdict(g) for g in done], indent=2) + "\n")
    return done


def _format(
    gitdir: Path,
    spec: RevisionSpec,
    base: str,
    tip: str,
    out: Path,
    prev: list[Generated],
    specs: tuple[RevisionSpec, ...],
) -> Generated:
    with tempfile.TemporaryDirectory(prefix="fp-") as tmp:
        _git(
            gitdir,
            "format-patch",
            "-q",
            "--cover-letter",
            f"-v{spec.version}",
            f"--base={base}",
            f"--to={TO}",
            f"--cc={CC}",
            "--signature=2.47.2",
            "--no-numbered-files",
            "--abbrev=12",
            "-o",
            tmp,
            f"{base}..{tip}",
        )
        files = sorted(Path(tmp).glob("*.patch"))
        title, blurb = _cover_text(spec, prev, specs)
        cover = msgid(spec.version, 0)
        gen = Generated(spec.version, spec.kind, f"v{spec.version}.mbx", base, cover)
        mails: list[str] = []
        for i, f in enumerate(files):
            text = f.read_text()
            # format-patch's first line carries the real commit id; a fixed one keeps output reproducible
            text = re.sub(r"\AFrom [0-9a-f]{40} ", "From 0000000000000000000000000000000000000000 ", text)
            text = text.replace("*** SUBJECT HERE ***", title).replace("*** BLURB HERE ***\n", blurb)
            headers = {
                "From": f"{AUTHOR_NAME} <{AUTHOR_EMAIL}>",
                "Date": _date(spec.version, i),
                "Message-ID": f"<{msgid(spec.version, i)}>",
            }
            if i:
                headers |= {"In-Reply-To": f"<{cover}>", "References": f"<{cover}>"}
                gen.patch_msgids.append(msgid(spec.version, i))
                gen.subjects.append(spec.patches[i - 1].subject)
            mails.append(_set_headers(text, headers))
        (out / gen.path).write_text("".join(m if m.endswith("\n\n") else m + "\n" for m in mails))
    return gen
