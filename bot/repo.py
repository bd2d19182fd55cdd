"""The kernel tree's git, as every stage uses it: git with the bot's identity, the base branches, switching
the one persistent work tree between revisions, and reading files at a ref without a checkout.

Setting the tree up (Debian source or a git remote) and applying a revision are the tree stage's
(bot/tree/); this is what the other stages share: build switches revisions, walkdiff reads files at refs,
the daemon reads MAINTAINERS.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pygit2

from bot import proc
from bot.config import Config

log = logging.getLogger(__name__)

DEBIAN_PREFIX = "debian/"
REMOTE_PREFIX = "refs/remotes/origin/"
# Fixed identity and date: the import commit (and every commit `git am` makes) is reproducible.
BOT_NAME = "mm review bot"
BOT_EMAIL = "mm-review-bot@localhost"
BOT_DATE = "1700000000 +0000"
GIT_TIMEOUT = 1800.0  # bulk add/checkout of ~95k files


def git_env() -> dict[str, str]:
    """Environment for every git process: no user/system config, fixed bot identity and date."""
    env = dict(os.environ)
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_COMMITTER_NAME=BOT_NAME,
        GIT_COMMITTER_EMAIL=BOT_EMAIL,
        GIT_COMMITTER_DATE=BOT_DATE,
        GIT_AUTHOR_NAME=BOT_NAME,
        GIT_AUTHOR_EMAIL=BOT_EMAIL,
        GIT_AUTHOR_DATE=BOT_DATE,
        LC_ALL="C",  # git's messages are parsed by the apply stage
    )
    for k in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(k, None)
    return env


def git(tree: Path, *args: str, timeout: float = 120.0, check: bool = True, env: dict[str, str] | None = None,
        input: str | None = None) -> proc.Outcome:
    """git -C tree ..., hooks off; check=True makes a failure an OperationalError with git's last line."""
    return proc.run(["git", "-C", str(tree), "-c", "core.hooksPath=/dev/null", *args], timeout=timeout,
                    env=env or git_env(), check=check, input=input)


def base_branches(config: Config, repo: pygit2.Repository) -> list[tuple[str, str]]:
    """Candidate bases as (name, commit id), in the order to try them.

    debian: every debian/<version> branch, newest commit first. git: each configured branch, taken from
    refs/heads/<b> or refs/remotes/origin/<b>.
    """
    out: list[tuple[str, str]] = []
    if config.tree.source == "debian":
        for b in repo.branches.local:
            if b.startswith(DEBIAN_PREFIX):
                out.append((b, str(repo.branches.local[b].target)))
        out.sort(key=lambda nc: -repo[nc[1]].peel(pygit2.Commit).commit_time)
        return out
    for b in config.tree.branches:
        for ref in (f"refs/heads/{b}", f"{REMOTE_PREFIX}{b}"):
            if ref in repo.references:
                out.append((b, str(repo.references[ref].resolve().target)))
                break
    return out


def make_clean(tree: Path) -> None:
    """Leave no half-applied state behind a crashed run; the work tree belongs to the bot."""
    if (tree / ".git" / "rebase-apply").exists():
        git(tree, "am", "--abort", check=False)
        if (tree / ".git" / "rebase-apply").exists():
            git(tree, "am", "--quit", check=False)
    dirty = git(tree, "status", "--porcelain", "--untracked-files=no", timeout=GIT_TIMEOUT).stdout
    if dirty.strip():
        log.warning("%s had local changes; resetting them", tree)
        git(tree, "reset", "-q", "--hard", timeout=GIT_TIMEOUT)


def switch(config: Config, ref: str) -> str:
    """Check out `ref` (e.g. a review/<slug>/v<N> branch) in the persistent work tree; returns its commit.

    git rewrites only the files that differ, so object files from the last build stay valid for make.
    """
    tree = Path(config.paths.kernel_tree)
    make_clean(tree)
    git(tree, "checkout", "-q", ref, timeout=GIT_TIMEOUT)
    return str(pygit2.Repository(str(tree)).head.target)


def read_files(config: Config, ref: str, paths: list[str]) -> dict[str, str]:
    """The text of `paths` at `ref` (a branch or commit), read from git objects without a checkout;
    paths missing at that ref are left out."""
    repo = pygit2.Repository(str(config.paths.kernel_tree))
    commit = repo.revparse_single(ref).peel(pygit2.Commit)
    files = {}
    for path in paths:
        try:
            blob = commit.tree[path]
        except KeyError:
            continue
        if isinstance(blob, pygit2.Blob):
            files[path] = blob.data.decode(errors="replace")
    return files


@contextmanager
def work_tree_lock(config: Config) -> Iterator[None]:
    """Hold the kernel tree's one work tree for a stage that checks out (apply, build): bot processes run at
    the same time (a `bot check` beside the daemon) take turns instead of switching branches under each
    other. flock: the kernel drops it when the holder dies."""
    gitdir = Path(config.paths.kernel_tree) / ".git"
    if not gitdir.is_dir():
        yield  # no tree: the stage says so itself
        return
    fd = os.open(gitdir / "mm-review-bot.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # A holder killed mid-checkout (a worker's time limit, SIGKILL) leaves git's lock behind; with the
        # lock held no bot process uses the tree, and no one else writes it.
        (gitdir / "index.lock").unlink(missing_ok=True)
        yield
    finally:
        os.close(fd)


def changed_files(tree: Path, base: str, rev: str) -> list[str]:
    return git(tree, "diff", "--name-only", "--no-renames", base, rev).stdout.split()


def ancestor(config: Config, sha: str, of: str) -> str | None:
    """The full id of commit `sha` (abbreviated or not) when it is in the history of `of`, else None."""
    try:
        repo = pygit2.Repository(str(config.paths.kernel_tree))
        commit = repo.revparse_single(sha).peel(pygit2.Commit)
        head = repo.revparse_single(of).peel(pygit2.Commit)
    except (pygit2.GitError, KeyError, ValueError, pygit2.InvalidSpecError):
        return None  # unknown, ambiguous or not a commit
    if commit.id != head.id and not repo.descendant_of(head.id, commit.id):
        return None
    return str(commit.id)


def commit_patch(config: Config, commit: str) -> str:
    """The commit as a patch mail body would show it: its message, `---`, then its diff against its parent."""
    show = git(Path(config.paths.kernel_tree), "show", "--no-color", "--no-ext-diff", "--format=%B%n---",
               "--no-renames", commit, timeout=GIT_TIMEOUT)
    return show.stdout


def tree_ids(tree: Path, ref: str, paths: list[str]) -> dict[str, str]:
    """The git object id of each path (file or directory) at `ref`, "-" where it is missing: a cheap exact key
    for "these sources are unchanged"."""
    repo = pygit2.Repository(str(tree))
    root = repo.revparse_single(ref).peel(pygit2.Commit).tree
    out = {}
    for path in paths:
        try:
            out[path] = str(root[path].id)
        except KeyError:
            out[path] = "-"
    return out


def export_paths(tree: Path, ref: str, paths: list[str], dest: Path) -> None:
    """Write `paths` (files or whole directories) as they are at `ref` under dest, from git objects (no
    checkout, whatever the work tree holds); missing paths are skipped, symlinks written as links."""
    repo = pygit2.Repository(str(tree))
    root = repo.revparse_single(ref).peel(pygit2.Commit).tree

    def write(obj: pygit2.Object, mode: int, path: Path) -> None:
        if isinstance(obj, pygit2.Tree):
            path.mkdir(parents=True, exist_ok=True)
            for entry in obj:
                write(repo[entry.id], entry.filemode, path / str(entry.name))
        elif isinstance(obj, pygit2.Blob):
            path.parent.mkdir(parents=True, exist_ok=True)
            if mode == pygit2.enums.FileMode.LINK:
                path.symlink_to(obj.data.decode())
            else:
                path.write_bytes(obj.data)
                if mode == pygit2.enums.FileMode.BLOB_EXECUTABLE:
                    path.chmod(0o755)

    for p in paths:
        try:
            entry = root[p]
        except KeyError:
            continue
        write(repo[entry.id], entry.filemode, dest / p)
