"""The coordinator side: send one task per job, watch them, and hand back each outcome as it lands.

Watching, per task: its outcome under the key (task.done_key: also what an earlier run of the coordinator
left, so a restart after a crash sends nothing that already finished), else Celery's state — SUCCESS (the
packed result), FAILURE (the worker's error, the hard time limit), STARTED on a worker that has answered no
ping for lost_after_s (sent again, at most `retries` times: the first delivery, if its worker comes back,
finds the outcome stored and does nothing), PENDING longer than queued_timeout_s (no worker serves that
queue). Redis unreachable (restarted, network) is waited out for outage_s, the tasks stay where they are.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import kombu.exceptions
import redis
from celery import Celery
from celery.exceptions import TimeLimitExceeded
from celery.result import AsyncResult

from bot.config import Config
from bot.errors import OperationalError
from bot.results import StageResult
from bot.workers import task as work
from bot.workers.app import HARD_GRACE_S, TASK, backend_url, make_app, queue
from bot.workers.payload import Job, error_outputs, make_payload, unpack

log = logging.getLogger(__name__)
POLL_S = 0.1
PING_EVERY_S = 5.0
SENT_PREFIX = "mmbot:sent:"  # key -> the task id in flight (a restarted coordinator watches it, not a new one)
DOWN = (redis.RedisError, kombu.exceptions.OperationalError, OSError)


@dataclass
class Landed:
    job: Job
    outputs: dict[str, dict[str, StageResult]]
    detail: str  # one line for the progress log: where it ran, or why it did not finish
    timing: dict[str, float] = field(default_factory=dict)  # ms: enqueue_to_start, finish_to_stored


@dataclass
class _Flight:
    job: Job
    task_id: str
    sent: float
    attempts: int = 1
    host: str | None = None
    alive: float = 0.0  # when its worker last answered a ping
    pinged: float = 0.0


class _Coordinator:
    def __init__(self, config: Config) -> None:
        self.config, self.w = config, config.workers
        self.app: Celery = make_app(config)
        self.store = redis.Redis.from_url(backend_url(self.w), socket_timeout=5, socket_connect_timeout=5)
        self.down_since: float | None = None

    def patient(self, what: str, call: Callable[[], Any]) -> Any:
        """call(), waiting out a broker outage of up to outage_s (then OperationalError)."""
        while True:
            try:
                value = call()
                if self.down_since is not None:
                    log.warning("broker back after %.0f s", time.monotonic() - self.down_since)
                self.down_since = None
                return value
            except DOWN as e:
                now = time.monotonic()
                if self.down_since is None:
                    self.down_since = now
                    log.warning("broker unreachable (%s): waiting up to %.0f s", e, self.w.outage_s)
                if now - self.down_since > self.w.outage_s:
                    raise OperationalError(f"{what}: the broker {self.w.broker} has been unreachable for "
                                           f"{self.w.outage_s:.0f} s: {e}") from e
                time.sleep(1.0)

    def send(self, job: Job, attempts: int = 1) -> _Flight:
        known = self.patient("resume", lambda: self.store.get(SENT_PREFIX + job.key))
        if known and attempts == 1:  # a restarted coordinator: watch the task already in flight
            state = self.patient("state", lambda: AsyncResult(known.decode(), app=self.app).state)
            if state in ("PENDING", "STARTED", "RETRY"):
                log.warning("%s: watching task %s, sent by an earlier run", job.name, known.decode())
                return _Flight(job, known.decode(), time.time())
        task_id = f"{job.key}-{uuid.uuid4().hex[:8]}"
        payload = make_payload(job)
        limit = self.w.task_time_limit_s
        self.patient("send", lambda: self.app.send_task(
            TASK, args=[payload], task_id=task_id, queue=queue(job.arch), soft_time_limit=limit,
            time_limit=limit + HARD_GRACE_S))
        ttl = int(self.w.visibility_timeout_s)
        self.patient("send", lambda: self.store.set(SENT_PREFIX + job.key, task_id, ex=ttl))
        return _Flight(job, task_id, payload["sent"], attempts)

    def check(self, f: _Flight) -> Landed | _Flight | None:
        """The outcome if it landed, a new flight if it was sent again, else None (still going)."""
        ar = AsyncResult(f.task_id, app=self.app)
        state = self.patient("state", lambda: ar.state)
        now = time.time()
        if state == "SUCCESS":
            return self.landed(f, self.patient("result", lambda: ar.result), ar)
        done = self.patient("result", lambda: work.load_done(self.store, f.job.key))
        if done is not None:  # an earlier delivery of the same key finished (this one was a resend)
            return self.landed(f, done)
        if state == "FAILURE":
            exc = self.patient("result", lambda: ar.result)
            if isinstance(exc, TimeLimitExceeded):
                why = (f"the task exceeded its hard time limit of {self.w.task_time_limit_s + HARD_GRACE_S:.0f} s "
                       f"on {f.host or 'its worker'} (killed)")
            else:
                why = f"on worker {f.host or '?'}: {exc}" if type(exc).__name__ != "TimeLimit" else str(exc)
            return Landed(f.job, error_outputs(f.job, why), why)
        if state == "STARTED":
            info = self.patient("state", lambda: ar.info) or {}
            host = info.get("hostname") if isinstance(info, dict) else None
            if host != f.host:
                f.host, f.alive = host, now
            if now - f.pinged >= PING_EVERY_S and f.host:
                f.pinged = now
                if self.patient("ping", lambda: self.app.control.ping(destination=[f.host], timeout=1.0)):
                    f.alive = now
                elif now - f.alive > self.w.lost_after_s:
                    return self.lost(f)
            return None
        if now - f.sent > self.w.queued_timeout_s:
            why = (f"no worker started the task in {self.w.queued_timeout_s:.0f} s (queue {queue(f.job.arch)}: is a "
                   f"`bot worker` for {f.job.arch} running?)")
            return Landed(f.job, error_outputs(f.job, why), why)
        return None

    def lost(self, f: _Flight) -> Landed | _Flight:
        if f.attempts > self.w.retries:
            why = f"the task lost its worker {f.attempts} times (last {f.host}): given up"
            return Landed(f.job, error_outputs(f.job, why), why)
        log.warning("%s: worker %s answered no ping for %.0f s: sending the task again (attempt %d)",
                    f.job.name, f.host, self.w.lost_after_s, f.attempts + 1)
        return self.send(f.job, f.attempts + 1)

    def landed(self, f: _Flight, data: dict[str, Any], ar: AsyncResult | None = None) -> Landed:
        outputs = unpack(data, f.job.ctx.rdir)
        timing = {"enqueue_to_start": (data["started"] - f.sent) * 1000}
        if ar is not None and ar.date_done is not None:
            stored = ar.date_done.replace(tzinfo=ar.date_done.tzinfo or UTC).timestamp()
            timing["finish_to_stored"] = (stored - data["finished"]) * 1000
        return Landed(f.job, outputs, f"ran on {data.get('worker', '?')}", timing)


def run_jobs(config: Config, jobs: list[Job]) -> Iterator[Landed]:
    """Send every job (the two arches of a revision, every revision, at once) and yield each as it lands."""
    c = _Coordinator(config)
    flights: dict[str, _Flight] = {}
    for job in jobs:
        if job.key in flights:
            continue
        done = c.patient("result", lambda j=job: work.load_done(c.store, j.key))  # type: ignore[misc]
        if done is not None:
            yield Landed(job, unpack(done, job.ctx.rdir), f"done earlier on {done.get('worker', '?')}")
            continue
        flights[job.key] = c.send(job)
    while flights:
        for key, f in list(flights.items()):
            got = c.check(f)
            if isinstance(got, Landed):
                del flights[key]
                yield got
            elif isinstance(got, _Flight):
                flights[key] = got
        time.sleep(POLL_S)
