"""The Celery app both sides make from the same [workers] settings, and the names they agree on.

Reliability, "better no email than two": a task is acknowledged only when it finished (acks_late), put
back when its worker process dies (reject_on_worker_lost), one task per worker process at a time
(prefetch 1), redelivered after visibility_timeout_s only (above the longest task), and killed at its time
limit (soft: the task returns an `error` result saying so; hard, a minute later: the process dies). A task
is idempotent by its key (task.py), so a redelivery after it finished does nothing twice.
"""

from __future__ import annotations

from celery import Celery

from bot.config import Config, WorkersConfig

TASK = "mmbot.review_arch"
HARD_GRACE_S = 60.0  # the hard time limit is this much after the soft one


def queue(arch: str) -> str:
    """One queue per arch (and per variant): a worker serves the queues of what it can build and boot."""
    return f"mmbot.{arch}"


def backend_url(w: WorkersConfig) -> str:
    return w.backend or w.broker


def make_app(config: Config) -> Celery:
    w = config.workers
    app = Celery("mmbot", broker=w.broker, backend=backend_url(w), set_as_current=False)
    transport = {"visibility_timeout": int(w.visibility_timeout_s)}
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,  # STARTED carries the worker's hostname: the coordinator pings it
        task_soft_time_limit=w.task_time_limit_s,
        task_time_limit=w.task_time_limit_s + HARD_GRACE_S,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        result_expires=int(w.result_ttl_s),
        result_extended=True,
        # Redis going away is an outage to wait out, not a reason to lose a result or a task
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        result_backend_always_retry=True,
        result_backend_max_retries=1000,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        task_default_queue=queue("x86_64"),
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_heartbeat=0,
    )
    return app
