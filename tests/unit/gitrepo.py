"""Small synthetic kernel-like git repositories for the tree/apply unit tests (git CLI, fixed identities).

Series posted on them are written by bot/demo/writer.py, as everywhere else.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

from bot import repo as kt
from bot.config import Config, PathsConfig, TreeConfig
from bot.demo.writer import Revision, SeriesWriter

RMAP = "".join(f"line {i} of rmap\n" for i in range(1, 41))
MADVISE = "".join(f"line {i} of madvise\n" for i in range(1, 21))
JANE = "Jane Dev <jane@example.org>"


def git(cwd: Path, *args: str, author: str = JANE) -> str:
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


def commit(repo: Path, files: dict[str, str | bytes], msg: str, author: str = JANE) -> str:
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


def edit(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def posted(tree: Path, base: str, out: Path, rev: Revision) -> Path:
    """`rev` as the author, with `base` of `tree` checked out, posts it; as one mbox at `out` (like b4 am's)."""
    writer = SeriesWriter.on_tree(tree, base, out.parent / f"{out.stem}-author", author=JANE)
    out.write_text(writer.write(rev).mbox())
    return out
