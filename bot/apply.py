"""Apply one revision's am-ready mbox on its own branch in kernel-tree's persistent work tree.

Base selection, first rule that finds one wins (Base.source records which):
  1. base-commit: given by the caller, else the `base-commit:` line in the mbox, if that commit is in the tree;
  2. blobs: a commit on the candidate branches whose files have the patches' preimage blob ids
     (`index abc..def`), branch heads first, then their history;
  3. branch:<name>: each candidate branch head in order, the first where the whole series applies.
Rules 1 and 2 name the base the author used, so a series that does not apply there fails there.

Every series is dry-run (`git apply --cached` into a throwaway index) before the work tree is touched, so
trying several bases never rewrites files. Bad input (paths outside the tree, binary or empty patches) is
refused before anything is written. Binary patches are refused rather than applied: a mailed review cannot
see them, and "Binary files differ" patches cannot be applied at all.
"""

from __future__ import annotations

import email
import email.policy
import logging
import mailbox
import re
import tempfile
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pygit2

from bot import tree as kt
from bot.config import Config
from bot.errors import BadInput
from bot.results import Base, RevisionResult, StageResult, revision_dir

log = logging.getLogger(__name__)

AM_TIMEOUT = 600.0
APPLY_TIMEOUT = 300.0
MAX_WALK = 2000  # commits per branch searched by the blobs rule
ZERO_BLOB = re.compile(r"^0+$")


@dataclass
class FileDiff:
    old: str | None  # path before (None for a new file)
    new: str | None  # path after (None for a deleted file)
    preimage: str | None = None  # abbreviated blob id from `index abc..def`, None if new
    hunks: list[tuple[int, str]] = field(default_factory=list)  # (old start line, "@@ ... @@" header)
    binary: bool = False


@dataclass
class Patch:
    index: int  # 1-based position in the series
    subject: str
    raw: bytes  # the message as it was in the mbox, for git am
    diff: str  # the diff part of the body
    files: list[FileDiff]


@dataclass
class Series:
    patches: list[Patch]
    base_commit: str | None  # from a `base-commit:` line anywhere in the mbox


class Refused(Exception):
    """The series is bad input; the message names the patch and the reason."""

    def __init__(self, message: str, patch: Patch | None = None) -> None:
        super().__init__(message)
        self.patch = patch


# ---------------------------------------------------------------- parsing


def clean_subject(subject: str) -> str:
    """Like git mailinfo: drop leading Re:/[PATCH ...] prefixes and fold whitespace."""
    s = re.sub(r"\s+", " ", subject).strip()
    while True:
        t = re.sub(r"^(?:re:\s*|\[[^\]]*\]\s*)", "", s, flags=re.I)
        if t == s:
            return s
        s = t


def _body(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",)) if msg.is_multipart() else msg
    if part is None:
        return ""
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError):
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def _strip_prefix(path: str, prefix: str) -> str:
    path = path.strip()
    if len(path) >= 2 and path[0] == '"' and path[-1] == '"':  # git quotes unusual names
        path = path[1:-1].encode("latin-1", "replace").decode("unicode_escape", "replace")
    path = path.split("\t", 1)[0]  # traditional diffs put a timestamp after a tab
    return path[len(prefix) :] if path.startswith(prefix) else path


def parse_diff(diff: str) -> list[FileDiff]:
    """Headers and hunk starts of a unified (git) diff. Hunk bodies are skipped by their line counts,
    so a removed line that reads '-- foo' is never taken for a header."""
    files: list[FileDiff] = []
    cur: FileDiff | None = None
    old_left = new_left = 0
    for line in diff.splitlines():
        if old_left > 0 or new_left > 0:
            tag = line[:1]
            if tag in (" ", ""):
                old_left -= 1
                new_left -= 1
            elif tag == "-":
                old_left -= 1
            elif tag == "+":
                new_left -= 1
            # "\ No newline at end of file" counts for neither side
            continue
        if line.startswith("diff --git "):
            m = re.match(r'diff --git ("[^"]*"|\S+) ("[^"]*"|\S+)$', line)
            a, b = (m.group(1), m.group(2)) if m else (line[11:], line[11:])
            cur = FileDiff(old=_strip_prefix(a, "a/"), new=_strip_prefix(b, "b/"))
            files.append(cur)
        elif line.startswith("--- ") and cur is None or (line.startswith("--- ") and cur and cur.hunks):
            cur = FileDiff(old=None, new=None)  # a traditional diff without a `diff --git` line
            files.append(cur)
            _set_path(cur, "old", line[4:])
        elif line.startswith("--- ") and cur is not None:
            _set_path(cur, "old", line[4:])
        elif line.startswith("+++ ") and cur is not None:
            _set_path(cur, "new", line[4:])
        elif cur is not None and (m := re.match(r"(rename|copy) (from|to) (.+)$", line)):
            setattr(cur, "old" if m.group(2) == "from" else "new", _strip_prefix(m.group(3), ""))
        elif cur is not None and (m := re.match(r"index ([0-9a-f]+)\.\.([0-9a-f]+)", line)):
            cur.preimage = None if ZERO_BLOB.match(m.group(1)) else m.group(1)
        elif cur is not None and (
            line.startswith("GIT binary patch") or (line.startswith("Binary files ") and line.endswith(" differ"))
        ):
            cur.binary = True
        elif cur is not None and (m := re.match(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", line)):
            cur.hunks.append((int(m.group(1)), line))
            old_left = int(m.group(2)) if m.group(2) is not None else 1
            new_left = int(m.group(4)) if m.group(4) is not None else 1
    return files


def _set_path(cur: FileDiff, side: str, raw: str) -> None:
    path = _strip_prefix(raw, "a/" if side == "old" else "b/")
    setattr(cur, side, None if path == "/dev/null" else path)


def _diff_start(body: str) -> int:
    m = re.search(r"^(diff --git |--- \S.*\n\+\+\+ )", body, re.M)
    return m.start() if m else -1


def parse_mbox(path: Path) -> Series:
    """The patches of an am-ready mbox, in order; a cover letter ([PATCH 0/N] without a diff) is skipped."""
    try:
        box = mailbox.mbox(str(path), create=False)
        keys = list(box.keys())
    except (OSError, mailbox.Error) as e:
        raise BadInput(f"cannot read mbox {path}: {e}") from e
    patches: list[Patch] = []
    base: str | None = None
    for key in keys:
        raw = box.get_bytes(key)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        subject = str(msg.get("Subject", ""))
        body = _body(msg)
        if m := re.search(r"^base-commit: ([0-9a-f]{7,40})\s*$", body, re.M):
            base = m.group(1)
        start = _diff_start(body)
        if start < 0 and re.search(r"\b0+/\d+\]", subject):
            continue  # cover letter
        diff = body[start:] if start >= 0 else ""
        patches.append(Patch(len(patches) + 1, clean_subject(subject), raw, diff, parse_diff(diff)))
    box.close()
    if not patches:
        raise BadInput(f"{path} holds no patches")
    return Series(patches, base)


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


# ---------------------------------------------------------------- base selection


def _has_blobs(commit: pygit2.Commit, want: dict[str, str]) -> bool:
    tree = commit.tree
    for path, abbrev in want.items():
        try:
            entry = tree[path]
        except KeyError:
            return False
        if not str(entry.id).startswith(abbrev):
            return False
    return True


def preimages(series: Series) -> dict[str, str]:
    """path -> preimage blob of the first patch that touches it (later patches see our own changes)."""
    want: dict[str, str] = {}
    seen: set[str] = set()
    for p in series.patches:
        for f in p.files:
            if f.old and f.old not in seen and f.preimage:
                want[f.old] = f.preimage
            seen.update(x for x in (f.old, f.new) if x)
    return want


def find_by_blobs(repo: pygit2.Repository, branches: list[tuple[str, str]], want: dict[str, str]) -> str | None:
    if not want:
        return None
    # Cheap check first: one of the heads.
    for _name, head in branches:
        if _has_blobs(repo[head].peel(pygit2.Commit), want):
            return head
    for _name, head in branches:
        try:
            for i, commit in enumerate(repo.walk(head, pygit2.enums.SortMode.TOPOLOGICAL)):
                if i >= MAX_WALK:
                    break
                if _has_blobs(commit, want):
                    return str(commit.id)
        except (KeyError, pygit2.GitError):  # shallow history ends
            continue
    return None


def resolve_commit(repo: pygit2.Repository, rev: str) -> str | None:
    try:
        return str(repo.revparse_single(rev).peel(pygit2.Commit).id)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
        return None


# ---------------------------------------------------------------- dry run and failure reports


@dataclass
class Failure:
    patch: Patch
    file: str | None
    hunk: str | None
    message: str

    def extra(self) -> dict[str, Any]:
        return {
            "patch": {"index": self.patch.index, "subject": self.patch.subject},
            "file": self.file,
            "hunk": self.hunk,
        }

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
                hunk = next((h for start, h in f.hunks if start == line), None)
                if hunk is None and f.hunks:  # git reports the line after offset search; take nearest
                    hunk = min(f.hunks, key=lambda sh: abs(sh[0] - line))[1]
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


def dry_run(tree: Path, base: str, series: Series) -> Failure | None:
    """Apply the whole series to a throwaway index at `base`; the work tree and real index are untouched."""
    with tempfile.TemporaryDirectory(prefix="dry-", dir=tree / ".git") as tmp:
        env = kt.git_env()
        env["GIT_INDEX_FILE"] = str(Path(tmp) / "index")
        kt.git(tree, "read-tree", base, env=env, timeout=APPLY_TIMEOUT)
        for p in series.patches:
            proc = kt.git(
                tree, "apply", "--cached", "--verbose", "-", env=env, check=False, timeout=APPLY_TIMEOUT, input=p.diff
            )
            if proc.returncode != 0:
                return parse_apply_error(proc.stderr + proc.stdout, p)
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


def _git_am(
    tree: Path, repo: pygit2.Repository, series: Series, branch: str, base: str
) -> tuple[list[dict[str, Any]], Failure | None]:
    prev = _head(repo)
    # checkout -B on a clean tree rewrites only the files that differ between HEAD and base.
    kt.git(tree, "checkout", "-q", "-B", branch, base, timeout=kt.GIT_TIMEOUT)
    with tempfile.TemporaryDirectory(prefix="am-", dir=tree / ".git") as tmp:
        mbox = Path(tmp) / "series.mbx"
        _write_patches(series, mbox)
        proc = kt.git(tree, "am", "--no-3way", "--quiet", str(mbox), check=False, timeout=AM_TIMEOUT)
    if proc.returncode == 0:
        repo = pygit2.Repository(str(tree))
        commits = list(repo.walk(repo.head.target, pygit2.enums.SortMode.TOPOLOGICAL))
        ids = []
        for c in commits:
            if str(c.id) == base:
                break
            ids.append(str(c.id))
        ids.reverse()
        if len(ids) == len(series.patches):
            return [
                {"index": p.index, "subject": p.subject, "commit": c} for p, c in zip(series.patches, ids, strict=True)
            ], None
        output = f"git am made {len(ids)} commits for {len(series.patches)} patches"
        failed = series.patches[min(len(ids), len(series.patches) - 1)]
    else:
        output = proc.stderr + proc.stdout
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


def select_base(
    config: Config, repo: pygit2.Repository, series: Series, base_commit: str | None, notes: list[str]
) -> list[Base]:
    """Bases to try, in rule order. Rules 1 and 2 return one definite base; rule 3 all branch heads."""
    branches = kt.base_branches(config, repo)
    for given, origin in ((base_commit, "caller"), (series.base_commit, "mbox")):
        if not given:
            continue
        commit = resolve_commit(repo, given)
        if commit:
            return [Base(commit, "base-commit")]
        notes.append(f"base-commit {given} ({origin}) is not in the tree")
    want = preimages(series)
    if commit := find_by_blobs(repo, branches, want):
        return [Base(commit, "blobs")]
    notes.append(
        f"no commit has the preimage blobs of {len(want)} file(s)" if want else "the patches carry no preimage blob ids"
    )
    return [Base(c, f"branch:{name}") for name, c in branches]


def apply_series(config: Config, mbox: Path, branch: str, base_commit: str | None = None) -> tuple[StageResult, Base]:
    """Apply `mbox` (b4 am output) on a new branch `branch` in the kernel tree, leaving it checked out.

    Returns ("ok", extra {branch, commits, base_notes}) or ("failed", extra {patch, file, hunk,
    base_notes}) with the tree clean and the branch deleted. Tool failures raise OperationalError.
    """
    tree = Path(config.paths.kernel_tree)
    repo = pygit2.Repository(str(tree))
    notes: list[str] = []
    try:
        series = parse_mbox(mbox)
        check_series(series)
    except BadInput as e:
        return StageResult("failed", str(e), {"base_notes": notes}), Base()
    except Refused as e:
        extra: dict[str, Any] = {"base_notes": notes, "file": None, "hunk": None}
        if e.patch:
            extra["patch"] = {"index": e.patch.index, "subject": e.patch.subject}
        return StageResult("failed", f"refused: {e}", extra), Base()
    if not pygit2.reference_is_valid_name(f"refs/heads/{branch}") or branch.startswith(kt.DEBIAN_PREFIX):
        raise BadInput(f"bad branch name {branch!r}")

    candidates = select_base(config, repo, series, base_commit, notes)
    if not candidates:
        return StageResult(
            "failed", "no base: " + "; ".join(notes + ["no base branches in the tree"]), {"base_notes": notes}
        ), Base()
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
        return StageResult(
            "failed", f"{failure.line()} (base tried: {tried})", {**failure.extra(), "base_notes": notes}
        ), base

    kt.make_clean(tree)
    commits, failure = _git_am(tree, repo, series, branch, chosen.commit or "")
    if failure is not None:
        return StageResult("failed", failure.line(), {**failure.extra(), "base_notes": notes}), chosen
    detail = f"{len(commits)} patch(es) applied on {chosen.source} {chosen.commit and chosen.commit[:12]}"
    return StageResult("ok", detail, {"branch": branch, "commits": commits, "base_notes": notes}), chosen


def run_stage(config: Config, series: dict[str, Any], result: RevisionResult, results: list[RevisionResult],
              arches: list[str]) -> None:
    """Pipeline runner: apply this revision on review/<slug>/v<N>."""
    rdir = revision_dir(config.paths.patchsets, series["slug"], result.version)
    if not (Path(config.paths.kernel_tree) / ".git").is_dir():
        missing = f"no kernel tree at {config.paths.kernel_tree}: run `bot setup`"
        result.set_stage("apply", StageResult("error", missing))
        return
    trailer = result.stages["fetch"].get("base_commit_trailer")
    stage, base = apply_series(config, rdir / "series.mbx", f"review/{series['slug']}/v{result.version}", trailer)
    result.set_stage("apply", stage)
    result.base = base
