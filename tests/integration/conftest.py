"""Fixtures of the integration tests. The shared ones live in tests/conftest.py (with tests/kernel); these names
are imported from here too."""

from __future__ import annotations

import email.utils
import os
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.demo.localinbox import LocalInbox
from bot.demo.writer import SeriesWriter
from tests.conftest import BARRY_V4, BOT, run_bot, write_config

__all__ = ["BARRY_V4", "BOT", "run_bot", "toy_tree", "tree_config", "write_config"]


@pytest.fixture
def own_inbox(tmp_path: Path) -> Iterator[LocalInbox]:
    """An archive of the test's own: the daemon sees every series in an archive, so it must not share the
    session archive with other tests."""
    box = LocalInbox(tmp_path / "pi").init()
    hello = EmailMessage()
    hello["From"] = "Someone <someone@example.org>"
    hello["To"] = "linux-mm@kvack.org"
    hello["Subject"] = "a discussion, not a patch"
    hello["Date"] = email.utils.formatdate()
    hello["Message-ID"] = "<hello@example.org>"
    hello.set_content("hello\n")
    box.deliver(hello)  # before serve(): see LocalInbox.serve
    box.url = box.serve()  # type: ignore[attr-defined]
    yield box
    box.stop()


def toy_tree(writer: SeriesWriter, root: Path) -> Path:
    """A kernel tree for the toy series: a clone of the writer's base commit as branch `base`, HEAD detached
    (as `bot setup` leaves a tree); use it with tree_config()."""
    refs = writer.repo.references
    if "refs/heads/base" not in refs:
        assert writer.base is not None
        refs.create("refs/heads/base", writer.base)
    tree = root / "kernel-tree"
    git_env = {"PATH": os.environ["PATH"], "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    subprocess.run(["git", "clone", "-q", "-b", "base", str(writer.gitdir), str(tree)], check=True, env=git_env,
                   timeout=60)
    subprocess.run(["git", "-C", str(tree), "checkout", "-q", "--detach"], check=True, env=git_env, timeout=60)
    return tree


def tree_config(path: Path, url: str, tree: Path, extra: str = "") -> Path:
    """A test config whose kernel tree is `tree` (branch `base`, as a git source)."""
    config = write_config(path, url, kernel_tree=tree)
    config.write_text(config.read_text() + '[tree]\nsource = "git"\nbranches = ["base"]\n' + extra)
    return config
