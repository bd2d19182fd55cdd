"""Builds and boots on Celery workers (`[workers] engine = "celery"`): the stage that spreads over machines.

In: per revision and arch (a variant counts as an arch), a task carrying what a worker needs (the am-ready
mbox, the base the coordinator chose, the review sections of its config and their hash). Out: the typed
stage results of that arch (build, boot, stress, selftests) and the logs they name, back to the coordinator,
which stores them in result.json as if it had run them (the pipeline's one writer) and alone posts.

  app.py       the Celery app, its reliability settings and one queue per arch
  payload.py   the task's payload and result: what travels, how logs travel (in the result, compressed)
  task.py      the worker side: apply, build, boot one revision on one arch; idempotent by its key
  dispatch.py  the coordinator side: send, watch (lost worker, time limit, broker outage), collect
  worker.py    `bot worker`: which queues this machine can serve, and the Celery worker itself
  status.py    `bot status`: workers seen, queue depths, tasks in flight
"""

from __future__ import annotations

from bot.workers.dispatch import Landed, run_jobs
from bot.workers.payload import STAGES, Job

__all__ = ["STAGES", "Job", "Landed", "run_jobs"]
