"""Apply one revision's am-ready mbox on its own branch in kernel-tree's persistent work tree.

The base comes from bot.tree.base (base-commit, preimage blobs, or the first branch head it applies to).
Every series is dry-run (`git apply --cached` into a throwaway index) before the work tree is touched, so
trying several bases never rewrites files. Bad input (paths outside the tree, binary or empty patches) is
refused before anything is written. Binary patches are refused rather than applied: a mailed review cannot
see them, and "Binary files differ" patches cannot be applied at all.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pygit2

from bot import repo as kt
from bot.config import Config
from bot.errors import BadInput
from bot.patches import Patch, Series, parse_mbox
from bot.results import AppliedCommit, ApplyResult, Base, PatchRef
from bot.tree.base import select_base

log = logging.getLogger(__name__)

AM_TIMEOUT = 600.0
APPLY_TIMEOUT = 300.0


class Refused(Exception):
    """The series is bad input; the message names the patch and the reason."""

    def __init__(self, message: str, patch: Patch | None = None) -> None:
        super().__init__(message)
        self.patch = patch


def _bad_path(path: str) -> str | None:
    parts = path.split("/")
    if path.startswith("/") or path.startswith("~"):
        return "is absolute"
    if ".." in parts:
        return "leaves the tree (..)"
    if parts[0] == ".git" or ".git" in parts:
        return "is inside .git"
    if "\\" in path or "\0" in path:
        return "has a backslash or NUL"
    return None


def check_series(series: Series) -> None:
    """Refuse bad input before anything is written. Raises Refused naming the patch."""
    for p in series.patches:
        if not p.diff.strip() or not p.files:
            raise Refused(f"patch {p.index} '{p.subject}' is empty (no diff)", p)
        for f in p.files:
            for path in (f.old, f.new):
                if path is not None and (why := _bad_path(path)):
                    raise Refused(f"patch {p.index} '{p.subject}' touches '{path}', which {why}", p)
            if f.binary:
                raise Refused(
                    f"patch {p.index} '{p.subject}' is a binary patch for {f.new or f.old}; "
                    "binary patches are not applied",
                    p,
                )


# ---------------------------------------------------------------- dry run and failure reports


@dataclass
class Failure:
    patch: Patch
    file: str | None
    hunk: str | None
    message: str

    def result(self, detail: str, notes: list[str], base: Base) -> ApplyResult:
        return ApplyResult("failed", detail, patch=PatchRef(self.patch.index, self.patch.subject), file=self.file,
                           hunk=self.hunk, base_notes=notes, base=base)

    def line(self) -> str:
        where = f" at {self.file}" + (f" hunk {self.hunk}" if self.hunk else "") if self.file else ""
        return f"patch {self.patch.index} '{self.patch.subject}' does not apply{where}: {self.message}"


def parse_apply_error(output: str, patch: Patch) -> Failure:
    """File and hunk from `git apply`/`git am` errors, e.g. 'error: patch failed: mm/rmap.c:1234'."""
    file: str | None = None
    hunk: str | None = None
    if m := re.search(r"^error: patch failed: (.+):(\d+)$", output, re.M):
        file, line = m.group(1), int(m.group(2))
        for f in patch.files:
            if file in (f.old, f.new):
                hunk = next((h.header for h in f.hunks if h.old_start == line), None)
                if hunk is None and f.hunks:  # git reports the line after offset search; take nearest
                    hunk = min(f.hunks, key=lambda h: abs(h.old_start - line)).header
    elif m := re.search(
        r"^error: (.+?): (does not exist in index|already exists in index|"
        r"No such file or directory|already exists in working directory|"
        r"does not match index|patch does not apply)$",
        output,
        re.M,
    ):
        file = m.group(1)
    errors = [ln[7:] for ln in output.splitlines() if ln.startswith("error: ") and "while searching" not in ln]
    message = errors[-1] if errors else (output.strip().splitlines() or ["git apply failed"])[-1]
    return Failure(patch, file, hunk, message)


def _small_index(tree: Path, base: str, paths: list[str], index: Path) -> None:
    """An index holding only `paths` as they are at `base`: `git apply --cached` reads no other entries, and
    reading all ~95k entries of a kernel tree into an index is most of a dry run's cost."""
    repo = pygit2.Repository(str(tree))
    files = repo.revparse_single(base).peel(pygit2.Commit).tree
    idx = pygit2.Index(str(index))
    for path in paths:
        try:
            entry = files[path]
        except KeyError:
            continue  # a new file (or not in the base: git apply says so)
        if entry.type_str == "blob":
            idx.add(pygit2.IndexEntry(path, entry.id, entry.filemode))
    idx.write()


def dry_run(tree: Path, base: str, series: Series) -> Failure | None:
    """Apply the whole series to a throwaway index at `base`; the work tree and real index are untouched.

    One `git apply` of every patch first; only when that fails, patch by patch, to name the one that fails."""
    with tempfile.TemporaryDirectory(prefix="dry-", dir=tree / ".git") as tmp:
        env = kt.git_env()
        env["GIT_INDEX_FILE"] = str(Path(tmp) / "index")
        _small_index(tree, base, series.paths(), Path(env["GIT_INDEX_FILE"]))
        whole = kt.git(tree, "apply", "--cached", "-", env=env, check=False, timeout=APPLY_TIMEOUT,
                       input="".join(p.diff if p.diff.endswith("\n") else p.diff + "\n" for p in series.patches))
        if whole.returncode == 0:
            return None
        Path(env["GIT_INDEX_FILE"]).unlink()
        _small_index(tree, base, series.paths(), Path(env["GIT_INDEX_FILE"]))
        for p in series.patches:
            out = kt.git(tree, "apply", "--cached", "--verbose", "-", env=env, check=False, timeout=APPLY_TIMEOUT,
                         input=p.diff)
            if out.returncode != 0:
                return parse_apply_error(out.stderr + out.stdout, p)
    return None


# ---------------------------------------------------------------- the work tree


def _head(repo: pygit2.Repository) -> str | None:
    """The branch (refs/heads/..) or commit checked out now, to go back to after a failure."""
    if repo.head_is_unborn:
        return None
    return repo.head.name if not repo.head_is_detached else str(repo.head.target)


def _write_patches(series: Series, path: Path) -> None:
    """An mbox of just the patches (no cover letter), messages byte for byte as they came."""
    with path.open("wb") as out:
        for p in series.patches:
            out.write(b"From mboxrd@z Thu Jan  1 00:00:00 1970\n")
            out.write(p.raw if p.raw.endswith(b"\n") else p.raw + b"\n")
            out.write(b"\n")


def _git_am(tree: Path, repo: pygit2.Repository, series: Series, branch: str, base: str
            ) -> tuple[list[AppliedCommit], Failure | None]:
    prev = _head(repo)
    # checkout -B on a clean tree rewrites only the files that differ between HEAD and base.
    kt.git(tree, "checkout", "-q", "-B", branch, base, timeout=kt.GIT_TIMEOUT)
    with tempfile.TemporaryDirectory(prefix="am-", dir=tree / ".git") as tmp:
        mbox = Path(tmp) / "series.mbx"
        _write_patches(series, mbox)
        am = kt.git(tree, "am", "--no-3way", "--quiet", str(mbox), check=False, timeout=AM_TIMEOUT)
    if am.returncode == 0:
        repo = pygit2.Repository(str(tree))
        commits = list(repo.walk(repo.head.target, pygit2.enums.SortMode.TOPOLOGICAL))
        ids = []
        for c in commits:
            if str(c.id) == base:
                break
            ids.append(str(c.id))
        ids.reverse()
        if len(ids) == len(series.patches):
            return [AppliedCommit(p.index, p.subject, c) for p, c in zip(series.patches, ids, strict=True)], None
        output = f"git am made {len(ids)} commits for {len(series.patches)} patches"
        failed = series.patches[min(len(ids), len(series.patches) - 1)]
    else:
        output = am.stderr + am.stdout
        m = re.search(r"^Patch failed at (\d+)", output, re.M)
        failed = (
            series.patches[int(m.group(1)) - 1] if m and int(m.group(1)) <= len(series.patches) else series.patches[0]
        )
    failure = parse_apply_error(output, failed)
    _roll_back(tree, branch, base, prev)
    return [], failure


def _roll_back(tree: Path, branch: str, base: str, prev: str | None) -> None:
    kt.git(tree, "am", "--abort", check=False)
    kt.git(tree, "reset", "-q", "--hard", timeout=kt.GIT_TIMEOUT)
    if prev and prev != f"refs/heads/{branch}":
        target = prev[len("refs/heads/") :] if prev.startswith("refs/heads/") else prev
        kt.git(tree, "checkout", "-q", target, timeout=kt.GIT_TIMEOUT)
    else:
        kt.git(tree, "checkout", "-q", "--detach", base, timeout=kt.GIT_TIMEOUT)
    kt.git(tree, "branch", "-q", "-D", branch, check=False)


# ---------------------------------------------------------------- the stage


def apply_series(config: Config, mbox: Path, branch: str, base_commit: str | None = None) -> ApplyResult:
    """Apply `mbox` (b4 am output) on a new branch `branch` in the kernel tree, leaving it checked out.

    ok: branch, commits, base_notes; failed: the patch, file and hunk that did not apply, with the tree clean
    and the branch deleted. `base` says which base was chosen (or tried first). Tool failures raise
    OperationalError.
    """
    tree = Path(config.paths.kernel_tree)
    repo = pygit2.Repository(str(tree))
    notes: list[str] = []
    try:
        series = parse_mbox(mbox)
        check_series(series)
    except BadInput as e:
        return ApplyResult("failed", str(e), base_notes=notes, base=Base())
    except Refused as e:
        patch = PatchRef(e.patch.index, e.patch.subject) if e.patch else None
        return ApplyResult("failed", f"refused: {e}", base_notes=notes, patch=patch, base=Base())
    if not pygit2.reference_is_valid_name(f"refs/heads/{branch}") or branch.startswith(kt.DEBIAN_PREFIX):
        raise BadInput(f"bad branch name {branch!r}")

    candidates = select_base(config, repo, series, base_commit, notes)
    if not candidates:
        return ApplyResult("failed", "no base: " + "; ".join(notes + ["no base branches in the tree"]),
                           base_notes=notes, base=Base())
    first: tuple[Base, Failure] | None = None
    chosen: Base | None = None
    for base in candidates:
        failure = dry_run(tree, base.commit or "", series)
        if failure is None:
            chosen = base
            break
        notes.append(f"{base.source} {base.commit and base.commit[:12]}: {failure.line()}")
        first = first or (base, failure)
    if chosen is None:
        assert first is not None
        base, failure = first
        tried = ", ".join(b.source or "" for b in candidates)
        return failure.result(f"{failure.line()} (base tried: {tried})", notes, base)

    kt.make_clean(tree)
    commits, failure = _git_am(tree, repo, series, branch, chosen.commit or "")
    if failure is not None:
        return failure.result(failure.line(), notes, chosen)
    detail = f"{len(commits)} patch(es) applied on {chosen.source} {chosen.commit and chosen.commit[:12]}"
    return ApplyResult("ok", detail, branch=branch, commits=commits, base_notes=notes, base=chosen)
