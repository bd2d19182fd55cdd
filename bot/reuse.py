"""When a stage's result is reused instead of made again: the one rule of `bot check` and the daemon.

A stage's result records the inputs it was made from (`stages.<name>[.<arch>].inputs`): the revision's
patches (a hash of its am-ready mbox), its base (for apply: the cover letter's base-commit and the candidate
branch heads it picks from; for later stages: the base apply chose), a hash of the config sections the stage
reads, the bot version, and for walkdiff the same facts of the revision it is diffed against. A later run
reuses a result that finished (not `error`, which is retried) when today's inputs are equal; `--rerun`
forces (the walkdiff stage's archive lookup of a patch a `Fixes:` line names is not an input: `--rerun
walkdiff` looks again; an archive error there is retried anyway). The report stage is never reused: its
outbox and store already make it once-only, and it must see that a newer revision appeared (held) or that a
queued reply may go now.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import pygit2

import bot
from bot import repo
from bot.config import Config
from bot.results import RevisionResult, StageResult

REUSABLE = ("apply", "build", "boot", "walkdiff")
# The config sections each stage reads (per-arch stages also read their [arch.<name>]).
SECTIONS: Mapping[str, tuple[str, ...]] = {
    "apply": ("tree",),
    "build": ("build", "selftests"),
    "boot": ("build", "boot", "stress", "selftests"),
    "walkdiff": ("walkdiff",),
}


def digest(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def patches_hash(rdir: Path) -> str:
    """The revision's patches as applied: its am-ready mbox (b4 output, trailers included)."""
    try:
        return hashlib.sha256((rdir / "series.mbx").read_bytes()).hexdigest()[:16]
    except FileNotFoundError:
        return "none"


def config_hash(config: Config, stage: str, arch: str | None = None) -> str:
    parts: dict[str, object] = {s: dataclasses.asdict(getattr(config, s)) for s in SECTIONS[stage]}
    if arch is not None:
        parts["arch"] = dataclasses.asdict(config.arch_config(arch))
    return digest(parts)


def base_candidates(config: Config, trailer: str | None) -> str:
    """What apply picks a base from: the base-commit trailer and the tree's candidate branch heads."""
    try:
        heads = repo.base_branches(config, pygit2.Repository(str(config.paths.kernel_tree)))
    except (pygit2.GitError, KeyError):
        heads = []
    return digest([trailer, heads])


def inputs(config: Config, stage: str, result: RevisionResult, rdir: Path, previous: RevisionResult | None,
           prev_rdir: Path | None, arch: str | None = None) -> dict[str, str]:
    """The inputs of `stage` (on `arch`) for this revision, as they are now."""
    key = {"bot": bot.__version__, "patches": patches_hash(rdir), "config": config_hash(config, stage, arch)}
    if stage == "apply":
        key["base"] = base_candidates(config, result.stages.fetch.base_commit_trailer)
    else:
        key["base"] = result.base.commit or "none"
    if stage == "walkdiff":  # tree or hunks mode, and what it is diffed against
        key["applied"] = result.stages.apply.status
        if previous is not None and prev_rdir is not None:
            key["previous"] = digest([previous.version, patches_hash(prev_rdir), previous.base.commit,
                                      previous.stages.apply.status])
    return key


def reusable(entries: list[StageResult | None], key: Mapping[str, str]) -> bool:
    """Whether every entry (a stage's result on one arch; boot: boot and stress) finished from these inputs."""
    return all(e is not None and e.finished and e.inputs == dict(key) for e in entries)
