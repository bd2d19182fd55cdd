"""The worker side of a task: one revision on one arch, applied, built and booted on this machine.

The work is the pipeline's own stage runners (tree.apply_series at the coordinator's base, build.run_stage,
boot.run_stage) on this worker's kernel-tree/, build dirs and caches, under the same work-tree lock as
any bot process (workers sharing one machine's tree take turns at apply and build; their boots overlap).
Idempotent: a finished outcome is stored under the task's key (done_key) before the task returns, and a
task whose key is there already returns it without running again (a redelivery after a lost ack, a resend
after a worker was thought lost). An `error` outcome (time limit) is not stored: a later run may retry.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import redis

from bot import boot, build, repo, tree
from bot.config import Config
from bot.errors import OperationalError
from bot.results import Outputs, RevisionResult, SeriesSummary, StageContext, revision_dir
from bot.workers.payload import FILLED, pack, with_review_config

log = logging.getLogger(__name__)
DONE_PREFIX = "mmbot:done:"


class TimeLimit(Exception):
    """The task ran past its (soft) time limit: the coordinator records an `error` stage result saying so."""


def done_key(key: str) -> str:
    return DONE_PREFIX + key


def load_done(r: redis.Redis, key: str) -> dict[str, Any] | None:
    raw = r.get(done_key(key))
    return json.loads(raw) if raw else None


def store_done(r: redis.Redis, key: str, result: Mapping[str, Any], ttl: float) -> None:
    r.set(done_key(key), json.dumps(result), ex=int(ttl))


def finished(result: Mapping[str, Any]) -> bool:
    return all(r.get("status") != "error" for per in result.get("stages", {}).values() for r in per.values())


def review(config: Config, payload: Mapping[str, Any], worker: str) -> dict[str, Any]:
    """Apply, build and boot payload's revision on payload's arch; the packed result (payload.pack)."""
    started = time.time()
    arch, stages = payload["arch"], list(payload["stages"])
    cfg = with_review_config(config, payload["config"], arch)
    summary = SeriesSummary.from_json(payload["series"])
    result = RevisionResult.from_json(payload["revision"])
    rdir = revision_dir(cfg.paths.patchsets, summary.slug, result.version)
    rdir.mkdir(parents=True, exist_ok=True)
    (rdir / "series.mbx").write_bytes(base64.b64decode(payload["mbox"]))
    with repo.work_tree_lock(cfg):
        applied = tree.apply_series(cfg, rdir / "series.mbx", payload["branch"], payload["base"])
    at = applied.base.commit if applied.base else None
    if applied.status != "ok" or applied.base is None or at != payload["base"]:
        why = applied.detail if applied.status != "ok" else f"applied on {at} instead"
        raise OperationalError(f"on worker {worker}: the revision did not apply at {payload['base'][:12]}: {why}")
    result.stages.apply, result.base = applied, applied.base
    ctx = StageContext(cfg, summary, result, rdir, None, [arch], int(payload["newest"]))
    outputs: Outputs = {}
    with repo.work_tree_lock(cfg):
        outputs.update(build.run_stage(ctx))
    result.stages.set("build", outputs["build"])
    if "boot" in stages:
        outputs.update(boot.run_stage(ctx))
    wanted = {n for s in stages for n in FILLED[s]}
    return pack({n: v for n, v in outputs.items() if n in wanted}, rdir, worker, started)
