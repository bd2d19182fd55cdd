"""`bot worker`: a Celery worker serving the queues of the arches this machine can build and boot.

An arch is served when its compiler, its QEMU and its stress compiler are on this machine (a variant: those
of its base arch); asked for one it lacks, `bot worker --arch` refuses with what to install. Each pool
process dies with the worker (PR_SET_PDEATHSIG), so a killed worker leaves no build holding the work tree.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import time
from typing import Any

import redis
from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init

from bot.arches import ARCHES, NAMES, with_variants
from bot.config import Config
from bot.errors import UsageError
from bot.workers import task as work
from bot.workers.app import TASK, backend_url, make_app, queue

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


def missing_tools(config: Config, arch: str) -> list[str]:
    """The programs arch needs that this machine lacks (empty: it can serve arch)."""
    a = config.arch_config(arch)
    tools = [f"{a.cross_compile}gcc", a.qemu or "", a.stress_cc]
    return [t for t in dict.fromkeys(tools) if t and shutil.which(t) is None]


def servable(config: Config, asked: list[str] | None) -> tuple[list[str], dict[str, list[str]]]:
    """(arches served, {arch: missing tools} of the ones left out). Asked-for arches must all be servable."""
    candidates = asked or with_variants(list(NAMES), config.build.variants)
    unknown = [a for a in candidates if a not in ARCHES]
    if unknown:
        raise UsageError(f"bot worker --arch: unknown {', '.join(unknown)} (known: {', '.join(ARCHES)})")
    lacking = {a: m for a in candidates if (m := missing_tools(config, a))}
    if asked and lacking:
        raise UsageError("bot worker: cannot serve " + "; ".join(f"{a} ({', '.join(m)} not found)"
                                                                for a, m in lacking.items()))
    served = [a for a in candidates if a not in lacking]
    if not served:
        raise UsageError("bot worker: no arch can be served here: " + "; ".join(
            f"{a} lacks {', '.join(m)}" for a, m in lacking.items()))
    return served, lacking


def _die_with_worker(**_: Any) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def register(app: Celery, config: Config) -> None:
    """The review task on this worker's app: runs task.review with this worker's config."""
    store = redis.Redis.from_url(backend_url(config.workers), socket_timeout=10)

    @app.task(name=TASK, bind=True)
    def review_arch(self: Task, payload: dict[str, Any]) -> dict[str, Any]:
        started = time.time()  # the overhead figures: send -> here, and the return -> stored in Redis
        key, host = payload["key"], self.request.hostname or socket.gethostname()
        done = work.load_done(store, key)
        if done is not None:  # a redelivery, or a resend whose first run finished after all
            log.info("task %s (%s v%s %s) already done by %s: not run again", self.request.id, key,
                     payload["revision"].get("version"), payload["arch"], done.get("worker"))
            return {**done, "redelivered": True, "started": started, "finished": time.time()}
        try:
            out = work.review(config, payload, host)
        except SoftTimeLimitExceeded:
            limit = self.request.timelimit[1] if self.request.timelimit else None
            raise work.TimeLimit(f"the task exceeded its time limit of {limit or '?'} s on {host} "
                                 "(killed; the build or boot did not finish)") from None
        if work.finished(out):
            work.store_done(store, key, out, config.workers.result_ttl_s)
        return {**out, "started": started, "finished": time.time()}


def main(config: Config, arches: list[str] | None, concurrency: int, name: str | None) -> int:
    served, lacking = servable(config, arches)
    for a, m in lacking.items():
        log.warning("not serving %s: %s not found here", a, ", ".join(m))
    app = make_app(config)
    register(app, config)
    worker_process_init.connect(_die_with_worker, weak=False)
    hostname = name or f"mmbot-{os.getpid()}"
    if "@" not in hostname:
        hostname += f"@{socket.gethostname()}"
    print(f"bot worker {hostname}: queues {', '.join(queue(a) for a in served)} on {config.workers.broker}",
          flush=True)
    app.worker_main(["worker", "--queues", ",".join(queue(a) for a in served), "--concurrency", str(concurrency),
                     "--pool", "prefork", "--hostname", hostname, "--loglevel", "INFO", "--without-gossip",
                     "--without-mingle"])
    return 0
