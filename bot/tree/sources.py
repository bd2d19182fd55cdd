"""kernel-tree/: one git repository with one persistent work tree, set up from Debian or from git.

source="debian": linux-source-<ver>.deb from Debian via apt with a private apt configuration (the system's
apt sources are never touched), unpacked, committed as branch debian/<debian-version>.
source="git": the configured branches fetched (shallow) from [tree] remote into refs/remotes/origin/.

The work tree is never thrown away: revisions are applied on their own branches and switching between
them uses git, so only differing files are rewritten and make's incremental builds stay valid.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from bot import proc
from bot.apt import PrivateApt, deb_version
from bot.config import Config
from bot.errors import OperationalError
from bot.repo import DEBIAN_PREFIX, GIT_TIMEOUT, REMOTE_PREFIX, base_branches, git, git_env

log = logging.getLogger(__name__)


UNPACK_TIMEOUT = 1800.0


@dataclass
class SetupReport:
    source: str
    tree: Path
    branches: dict[str, str]  # branch name -> commit id
    noop: bool  # nothing needed doing
    actions: list[str] = field(default_factory=list)  # what was done, in order, with times
    seconds: float = 0.0
    git_bytes: int = 0  # size of kernel-tree/.git
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        what = "already set up, nothing to do" if self.noop else "; ".join(self.actions)
        heads = ", ".join(f"{b}={c[:12]}" for b, c in self.branches.items())
        return f"{self.tree}: {what} ({heads}; {self.seconds:.1f}s; .git {self.git_bytes / 2**20:.0f} MiB)"


def open_tree(path: Path) -> pygit2.Repository:
    """The kernel tree's repository, created empty if it does not exist yet."""
    if (path / ".git").is_dir():
        return pygit2.Repository(str(path))
    path.mkdir(parents=True, exist_ok=True)
    repo = pygit2.init_repository(str(path), initial_head="main")
    # Large tree: git's untracked cache and preloaded index make status/switch cheaper.
    repo.config["core.untrackedCache"] = True
    repo.config["core.preloadIndex"] = True
    repo.config["gc.auto"] = 0  # no surprise multi-minute repacks in the middle of a review
    return repo


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512  # disk use, like du
            except OSError:
                pass
    return total


# ---------------------------------------------------------------- debian


def branch_for(version: str) -> str:
    # ':' and '~' are not allowed in ref names; Debian versions may carry both.
    return DEBIAN_PREFIX + version.replace(":", "%").replace("~", "_")


def cached_deb(cache: Path, package: str) -> Path | None:
    debs = sorted((cache / "debs").glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
    return debs[-1] if debs else None


def extract_source(deb: Path, dest: Path, timings: dict[str, float]) -> Path:
    """dpkg -x the .deb, then unpack the linux-source tarball it carries. Cached: a marker says done."""
    src = dest / "source"
    marker = dest / ".complete"
    if marker.exists() and src.is_dir():
        return src
    t0 = time.monotonic()
    shutil.rmtree(dest, ignore_errors=True)
    (dest / "deb").mkdir(parents=True)
    proc.run(["dpkg", "-x", str(deb), str(dest / "deb")], timeout=UNPACK_TIMEOUT, check=True)
    tars = sorted((dest / "deb" / "usr" / "src").glob("linux-source-*.tar.*"))
    if not tars:
        raise OperationalError(f"{deb.name} has no usr/src/linux-source-*.tar.* inside")
    src.mkdir()
    # The tarball has one top directory (linux-source-7.2/); strip it so the tree is at the repo root.
    proc.run(["tar", "-x", "-f", str(tars[0]), "-C", str(src), "--strip-components=1", "--no-same-owner"],
             timeout=UNPACK_TIMEOUT, check=True)
    shutil.rmtree(dest / "deb")  # the tarball inside is ~150 MB we no longer need
    marker.write_text(deb.name + "\n")
    timings["extract"] = time.monotonic() - t0
    return src


def import_source(tree: Path, src: Path, branch: str, message: str) -> str:
    """Commit the unpacked tree as `branch` without a HEAD dance: temporary index, write-tree, commit-tree.

    git CLI, not pygit2: the bulk add of ~95k files must be forced (the Debian tarball's .gitignore ignores
    everything at the top level), and git's parallel stat/hash is faster than libgit2 here.
    """
    index = tree / ".git" / "import-index"
    index.unlink(missing_ok=True)
    env = git_env()
    env["GIT_INDEX_FILE"] = str(index)
    try:
        gitdir = f"--git-dir={tree / '.git'}"
        proc.run(["git", gitdir, f"--work-tree={src}", "add", "-f", "-A"], timeout=GIT_TIMEOUT, env=env, cwd=src,
                 check=True)
        tree_id = proc.run(["git", gitdir, "write-tree"], timeout=GIT_TIMEOUT, env=env, check=True).stdout.strip()
        commit = proc.run(["git", gitdir, "commit-tree", tree_id, "-m", message], timeout=120, env=env,
                          check=True).stdout.strip()
    finally:
        index.unlink(missing_ok=True)
    proc.run(["git", f"--git-dir={tree / '.git'}", "update-ref", f"refs/heads/{branch}", commit], timeout=60, env=env,
             check=True)
    return commit


def _setup_debian(config: Config, tree: Path, report: SetupReport, refresh: bool) -> None:
    cfg = config.tree
    cache = config.cache
    repo = open_tree(tree)
    deb = cached_deb(cache, cfg.debian_package)
    existing = [b for b in repo.branches.local if b.startswith(DEBIAN_PREFIX)]
    # Offline fast path: the cached .deb's branch already exists.
    if deb is not None and not refresh and branch_for(deb_version(deb)) in existing:
        return
    if deb is None or refresh:
        t0 = time.monotonic()
        apt = PrivateApt(cache / "apt", cfg.debian_mirror, cfg.debian_suite)
        apt.update()
        version = apt.candidate(cfg.debian_package)
        if version is None:
            avail = [f"{name} ({apt.candidate(name)})" for name in apt.available("linux-source-")]
            raise OperationalError(
                f"{cfg.debian_package} is not in {cfg.debian_mirror} {cfg.debian_suite}; available: "
                f"{', '.join(avail) or 'no linux-source-* at all'} (set [tree] debian_package)"
            )
        report.timings["apt_update"] = time.monotonic() - t0
        if deb is None or deb_version(deb) != version:
            t0 = time.monotonic()
            deb = apt.download(cfg.debian_package, version, cache / "debs")
            report.timings["download"] = time.monotonic() - t0
            report.actions.append(f"downloaded {deb.name} ({deb.stat().st_size / 2**20:.0f} MiB)")
    assert deb is not None
    version = deb_version(deb)
    branch = branch_for(version)
    if branch in existing:
        return
    src = extract_source(deb, cache / "src" / version, report.timings)
    if "extract" in report.timings:
        report.actions.append(f"extracted {deb.name}")
    t0 = time.monotonic()
    import_source(tree, src, branch, f"Debian {cfg.debian_package} {version}\n\nImported from {deb.name}.\n")
    report.timings["import"] = time.monotonic() - t0
    report.actions.append(f"imported {branch}")


# ---------------------------------------------------------------- git


def _setup_git(config: Config, tree: Path, report: SetupReport) -> None:
    """Fetch the configured branches shallowly; git CLI for the timeout and shallow support."""
    open_tree(tree)
    refspecs = [f"+refs/heads/{b}:{REMOTE_PREFIX}{b}" for b in config.tree.branches]
    before = {b: c for b, c in remote_heads(tree).items()}
    t0 = time.monotonic()
    git(tree, "fetch", "--depth=1", "--no-tags", "--", config.tree.remote, *refspecs, timeout=GIT_TIMEOUT)
    report.timings["fetch"] = time.monotonic() - t0
    after = remote_heads(tree)
    missing = [b for b in config.tree.branches if b not in after]
    if missing:
        raise OperationalError(f"{config.tree.remote} has no branch {', '.join(missing)}")
    changed = [b for b in after if before.get(b) != after[b]]
    if changed:
        report.actions.append(f"fetched {', '.join(changed)} from {config.tree.remote}")


def remote_heads(tree: Path) -> dict[str, str]:
    repo = pygit2.Repository(str(tree))
    return {
        r[len(REMOTE_PREFIX) :]: str(repo.references[r].target) for r in repo.references if r.startswith(REMOTE_PREFIX)
    }


# ---------------------------------------------------------------- common


def _checkout_first(tree: Path, repo: pygit2.Repository, branches: list[tuple[str, str]], report: SetupReport) -> None:
    """A fresh tree gets its work tree populated once (detached at the first base); later runs leave it."""
    if not repo.head_is_unborn or not branches:
        return
    t0 = time.monotonic()
    git(tree, "checkout", "-q", "--detach", branches[0][1], timeout=GIT_TIMEOUT)
    report.timings["checkout"] = time.monotonic() - t0
    report.actions.append(f"checked out {branches[0][0]}")


def setup(config: Config, *, refresh: bool = False) -> SetupReport:
    """Make config.paths.kernel_tree a git repository with the base branch(es). Idempotent.

    refresh=True asks the archive (debian) whether a newer package exists; without it a tree whose cached
    .deb is already imported is left alone without touching the network.
    """
    t0 = time.monotonic()
    tree = Path(config.paths.kernel_tree)
    report = SetupReport(source=config.tree.source, tree=tree, branches={}, noop=False)
    if config.tree.source == "debian":
        _setup_debian(config, tree, report, refresh)
    elif config.tree.source == "git":
        _setup_git(config, tree, report)
    else:
        raise OperationalError(f"[tree] source must be 'debian' or 'git', not {config.tree.source!r}")
    repo = pygit2.Repository(str(tree))
    branches = base_branches(config, repo)
    if not branches:
        raise OperationalError(f"{tree} has no base branch after setup")
    _checkout_first(tree, repo, branches, report)
    report.branches = dict(branches)
    report.noop = not report.actions
    report.git_bytes = dir_bytes(tree / ".git")
    report.seconds = time.monotonic() - t0
    log.info("setup: %s", report.summary())
    return report
