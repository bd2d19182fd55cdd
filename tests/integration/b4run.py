"""Helpers of the b4-check tests: a toy kernel tree the series apply to, a config pointing at it, and b4's own
check runner with the commands set through per-process git config (never the user's)."""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path

import b4
import b4.review.checks as checks

from bot.demo.localinbox import LocalInbox
from bot.demo.writer import SeriesWriter
from bot.patches import split_mbox
from tests.conftest import BOT, write_config

GIT_IDENTITY = "[user]\n\tname = Ada Lovelace\n\temail = ada@example.org\n"


def toy_tree(writer: SeriesWriter, path: Path) -> Path:
    """A work tree of the writer's base (branch master): the kernel tree the bot applies the toy series to.
    --no-local: only what master reaches (a local clone would copy the commits the writer made since)."""
    assert writer.base is not None
    if "refs/heads/master" not in writer.repo.references:
        writer.repo.references.create("refs/heads/master", writer.base)
    subprocess.run(["git", "clone", "-q", "--no-local", "-b", "master", writer.repo.path, str(path)], check=True,
                   timeout=60,
                   env={**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})
    return path


def tree_config(tmp: Path, inbox: LocalInbox, tree: Path, extra: str = "") -> Path:
    path = write_config(tmp / "config.toml", inbox.url, kernel_tree=tree)  # type: ignore[attr-defined]
    path.write_text(path.read_text() + '[tree]\nsource = "git"\nbranches = ["master"]\n' + extra)
    return path


def git_config_env(pairs: dict[str, str], home: Path) -> dict[str, str]:
    """Per-process git config: GIT_CONFIG_COUNT/KEY/VALUE, the global config a file of ours (an identity for
    b4 prep), no system config."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "gitconfig").write_text(GIT_IDENTITY)
    env = {"GIT_CONFIG_GLOBAL": str(home / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
           "XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache"),
           "XDG_CONFIG_HOME": str(home / "config"), "GIT_CONFIG_COUNT": str(len(pairs))}
    for i, (k, v) in enumerate(pairs.items()):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = k, v
    return env


@contextmanager
def b4_checks(config: Path, home: Path, queue: bool = False) -> Iterator[tuple[list[str], list[str]]]:
    """b4 configured (as a maintainer would, with `git config`) to run `bot b4-check`; yields what b4's
    load_check_cmds() reads back: (per-patch commands, series commands)."""
    extra = " --queue" if queue else ""
    env = git_config_env({
        "b4.review-perpatch-check-cmd": f"{BOT} b4-check --config {config}{extra}",
        "b4.review-series-check-cmd": f"{BOT} b4-check --series --config {config}{extra}",
    }, home)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    b4.MAIN_CONFIG = {}
    b4.USER_CONFIG = {}
    try:
        b4.setup_config(argparse.Namespace(config=None))
        yield checks.load_check_cmds()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        b4.MAIN_CONFIG = {}
        b4.USER_CONFIG = {}


def thread(inbox: LocalInbox, msgid: str) -> list[EmailMessage]:
    url = f"{inbox.url}/linux-mm/{msgid}/t.mbox.gz"  # type: ignore[attr-defined]
    with urllib.request.urlopen(url, timeout=30) as r:
        return split_mbox(gzip.decompress(r.read()))


def by_id(msgs: list[EmailMessage]) -> dict[str, EmailMessage]:
    return {"".join(str(m["Message-ID"]).split()).strip("<>"): m for m in msgs}


def tools(results: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {r["tool"]: r for r in results}
