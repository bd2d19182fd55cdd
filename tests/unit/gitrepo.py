"""Small synthetic kernel-like git repositories for the tree/apply unit tests (git CLI, fixed identities)."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

from bot import tree as kt
from bot.config import Config, PathsConfig, TreeConfig

RMAP = "".join(f"line {i} of rmap\n" for i in range(1, 41))
MADVISE = "".join(f"line {i} of madvise\n" for i in range(1, 21))


def git(cwd: Path, *args: str, author: str = "Jane Dev <jane@example.org>") -> str:
    env = kt.git_env()
    name, email = author[:-1].split(" <")
    env.update(GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email, GIT_AUTHOR_DATE="1600000000 +0000")
    return subprocess.run(
        ["git", "-C", str(cwd), *args], env=env, check=True, capture_output=True, text=True, timeout=60
    ).stdout


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for path, data in files.items():
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)


def commit(repo: Path, files: dict[str, str | bytes], msg: str, author: str = "Jane Dev <jane@example.org>") -> str:
    write(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", msg, author=author)
    return git(repo, "rev-parse", "HEAD").strip()


def make_tree(root: Path) -> tuple[Path, Config, str]:
    """kernel-tree with branch master = one base commit, checked out detached like setup() leaves it."""
    tree = root / "kernel-tree"
    tree.mkdir()
    git(tree, "init", "-q", "-b", "master")
    base = commit(tree, {"mm/rmap.c": RMAP, "mm/madvise.c": MADVISE, "README": "tree\n"}, "base")
    git(tree, "checkout", "-q", "--detach", base)
    cfg = Config(
        paths=PathsConfig(kernel_tree=tree, patchsets=root / "patchsets", cache=root / "cache"),
        tree=TreeConfig(source="git", branches=["master"]),
    )
    return tree, cfg, base


def with_branches(cfg: Config, branches: list[str]) -> Config:
    return replace(cfg, tree=replace(cfg.tree, branches=branches))


def author_clone(tree: Path, root: Path, at: str, name: str = "author") -> Path:
    """The patch author's own clone, checked out at `at`."""
    work = root / name
    git(root, "clone", "-q", "--no-checkout", str(tree), str(work))
    git(work, "checkout", "-q", "-B", "work", at)
    return work


def format_patch(work: Path, rng: str, out: Path, *extra: str) -> Path:
    """One am-ready mbox of the commits in `rng`, like `b4 am` writes (patches only, in order)."""
    text = git(work, "format-patch", "--stdout", "--signature=2.47.2", *extra, rng)
    out.write_text(text)
    return out


def edit(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def mail(subject: str, body: str, frm: str = "Jane Dev <jane@example.org>") -> str:
    return (
        f"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nFrom: {frm}\n"
        f"Date: Mon, 05 Jan 2026 10:00:00 +0000\nSubject: {subject}\n\n{body}\n"
    )
