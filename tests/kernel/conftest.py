"""Where the real kernel tree is, for the tests/kernel tests.

$MM_REVIEW_BOT_KERNEL_TREE, default kernel-tree/ of this checkout (made by `bot setup`); the cache (build
dirs, ccache) is the checkout's .cache/ unless $MM_REVIEW_BOT_TEST_CACHE says otherwise. Without a tree these
tests skip locally, but fail under CI (CI=true), where `make test` sets the tree up first: a skip there
would hide a missing install step.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest

REPO = Path(__file__).resolve().parents[2]
KERNEL_TREE = Path(os.environ.get("MM_REVIEW_BOT_KERNEL_TREE", REPO / "kernel-tree"))
# The checkout's cache (what `make demo` and config.toml use): build dirs and ccache are shared, so kernels
# built once serve the demo and every test run after it.
CACHE = Path(os.environ.get("MM_REVIEW_BOT_TEST_CACHE", REPO / ".cache"))


def no_tree(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must set the kernel tree up: `make test` runs `bot setup`)")
    pytest.skip(reason)


def git(*args: str, timeout: float = 600) -> str:
    return subprocess.run(["git", "-C", str(KERNEL_TREE), *args], capture_output=True, text=True, check=True,
                          timeout=timeout).stdout


@contextlib.contextmanager
def restored_tree(branches: str) -> Iterator[pygit2.Repository]:
    """The kernel tree for a test module; afterwards HEAD is back where it was and the branches matching
    `branches` (a `git branch --list` pattern) that the module made are deleted."""
    try:
        repo = pygit2.Repository(str(KERNEL_TREE))
    except (pygit2.GitError, KeyError):
        no_tree(f"no kernel tree at {KERNEL_TREE}: run `bot setup` (or set MM_REVIEW_BOT_KERNEL_TREE)")
    if not any(b.startswith("debian/") for b in repo.branches.local):
        no_tree(f"{KERNEL_TREE} has no debian/* branch: run `bot setup`")
    head = repo.head.name if not repo.head_is_detached else str(repo.head.target)
    before = set(git("branch", "--format=%(refname:short)", "--list", branches).split())
    try:
        yield repo
    finally:
        git("reset", "-q", "--hard")
        git("checkout", "-q", head.removeprefix("refs/heads/"))
        for b in set(git("branch", "--format=%(refname:short)", "--list", branches).split()) - before:
            git("branch", "-q", "-D", b)
