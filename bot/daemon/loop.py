"""`bot daemon`: find new mm series on the list and review each revision once, surviving crashes.

A round: reap what a dead run left behind -> poll the archive -> classify new series roots (mm or not)
-> run the pipeline for each queued revision, oldest first. `--once` does one round (what cron runs);
without it, rounds repeat every [daemon] interval seconds.

Crash safety: one daemon at a time (flock on patchsets/daemon.lock). Each run is recorded in the
database with its pid, process group and a marker put in its environment, which every child inherits
(including build/boot processes that start their own sessions); a later run kills the process groups
of the dead run's marked processes. The revision it was running goes back to the queue and resumes
from its last finished stage (result.json: a result whose inputs are unchanged is reused, the rule of
bot/reuse.py that `bot check` follows too); the report stage's replies table keeps sending single.

A round that cannot poll (5xx, timeouts, a malformed feed, after retries) is not a crash: the queue is
still worked, `bot status` and the log say the poll failed, and `--once` exits 0. Exit 3: another
daemon holds the lock, or the database cannot be written.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import logging
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot import dashboard, fetch, pipeline
from bot.config import Config
from bot.daemon import mmfiles
from bot.daemon.classify import classify, poll
from bot.daemon.events import event
from bot.daemon.leftovers import MARKER_ENV, kill_stale
from bot.daemon.queue import Queue
from bot.errors import BadInput, OperationalError
from bot.results import RevisionResult
from bot.store import open_store

log = logging.getLogger(__name__)
# Test hooks, never set in production: "<stage>:<seconds>" runs a child `sleep <seconds>` in its own session
# (as boot.py runs QEMU) before that stage and waits for it, so a test can SIGKILL the daemon mid-stage;
# the child's pid is written to BOT_TEST_STAGE_PIDFILE.
STAGE_SLEEP_ENV = "BOT_TEST_STAGE_SLEEP"
STAGE_PIDFILE_ENV = "BOT_TEST_STAGE_PIDFILE"


class Locked(OperationalError):
    """Another daemon holds the lock."""


@contextmanager
def single_instance(path: Path) -> Iterator[None]:
    """flock(LOCK_EX|LOCK_NB) on path for the life of the daemon; the kernel drops it when we die."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children (PEP 446)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise Locked(f"another bot daemon is running (pid {holder}, lock {path}); exiting") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def setup_logging(config: Config) -> Path:
    """A log file per run under patchsets/logs/ (DEBUG); stderr keeps its level plus event lines."""
    logs = config.paths.patchsets / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"daemon-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}.log"
    root = logging.getLogger()
    for h in root.handlers:
        if h.level == logging.NOTSET:
            h.setLevel(root.level)  # keep stderr as terse as the CLI asked for
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.DEBUG)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for noisy in ("httpcore", "urllib3", "asyncio"):  # per-socket-call lines drown the events
        logging.getLogger(noisy).setLevel(logging.INFO)
    return path


# ---- recovery and processing ----


def recover(queue: Queue, run_id: int) -> None:
    """Close the runs that died (kill their leftovers) and requeue what they were running."""
    for stale in queue.open_runs(exclude=run_id):
        killed = kill_stale(stale)
        detail = f"died (pid {stale.pid}); {killed} leftover process(es) killed"
        queue.end_run(stale.id, "crashed", detail)
        event(f"run {stale.id} {detail}")
    for row in queue.in_state("running"):
        where = f"in stage {row.stage}" if row.stage else "before its first stage"
        queue.set(row.message_id, state="queued", detail=f"interrupted {where} (run {row.run_id}); resuming")
        event(f"v{row.version} <{row.message_id}>: interrupted {where}; requeued")


def _test_stage_hook(stage: str) -> None:
    spec = os.environ.get(STAGE_SLEEP_ENV, "")
    name, _, seconds = spec.partition(":")
    if not spec or name != stage:
        return
    child = subprocess.Popen(["sleep", seconds or "60"], start_new_session=True)
    if os.environ.get(STAGE_PIDFILE_ENV):
        Path(os.environ[STAGE_PIDFILE_ENV]).write_text(f"{child.pid}\n")
    event(f"test hook: sleeping in stage {stage} (child pid {child.pid})")
    child.wait(timeout=float(seconds or 60) + 30)


def process(config: Config, queue: Queue, run_id: int, message_id: str) -> None:
    """Run the pipeline for one queued revision; the row ends done, failed, or queued again (retryable)."""
    row = queue.start(message_id, run_id)
    tag = f"v{row.version} <{message_id}>"
    resumed = f" (attempt {row.attempts}, resuming)" if row.attempts > 1 else ""
    event(f"{tag}: start{resumed}")

    def on_stage(name: str, _result: object) -> None:
        queue.stage(message_id, name)
        event(f"{tag}: {name}")
        _test_stage_hook(name)

    try:
        run = pipeline.run(config, message_id, pipeline.parse_stages(",".join(config.daemon.stages)),
                           list(config.daemon.arches), progress=lambda line: log.info("%s", line),
                           only=message_id, on_stage=on_stage)
    except BadInput as e:
        queue.finish(message_id, "failed", f"bad input: {e}")
        event(f"{tag}: failed (bad input): {e}")
        return
    except (OperationalError, OSError) as e:
        why = "disk full" if isinstance(e, OSError) and e.errno == errno.ENOSPC else type(e).__name__
        _retry_later(config, queue, row.message_id, row.attempts, f"{why}: {e}")
        return
    except Exception as e:  # a bug met on this revision: recorded, and the daemon goes on with the next one
        log.exception("%s", tag)
        queue.finish(message_id, "failed", f"internal error: {type(e).__name__}: {e}")
        event(f"{tag}: failed (internal error: {type(e).__name__}: {e}); see the log")
        return
    result = next((r for r in run.revisions if r.message_id == message_id), None)
    queue.set(message_id, series=run.series.slug)
    _update_dashboard(config, run.series.slug)
    if result is None:
        chosen = ", ".join(f"v{r.version} <{r.message_id}>" for r in run.revisions)
        queue.finish(message_id, "failed", f"fetch chose other postings for this series ({chosen})")
        event(f"{tag}: failed: not chosen by fetch")
        return
    fetched = result.stages.fetch
    if fetched.status != "ok":
        queue.finish(message_id, "failed", f"fetch: {fetched.detail}")
        event(f"{tag}: failed: {fetched.detail}")
        return
    report = result.stages.report
    if "report" in config.daemon.stages and report.status == "error":
        _retry_later(config, queue, message_id, row.attempts, f"report: {report.detail}")
        return
    summary = "; ".join(f"{s}: {_status(result, s)}" for s in config.daemon.stages)
    queue.finish(message_id, "done", summary)
    event(f"{tag}: done ({summary})")


def _update_dashboard(config: Config, slug: str) -> None:
    """The series' pages and the index, after each revision; a site that cannot be written never fails a review."""
    try:
        page = dashboard.update_series(config, slug)
    except Exception as e:  # logged with its traceback; the revision's result stands
        log.exception("dashboard update of %s", slug)
        event(f"{slug}: dashboard not updated: {type(e).__name__}: {e}")
        return
    event(f"{slug}: dashboard {page}")


def _status(result: RevisionResult, stage: str) -> str:
    per = getattr(result.stages, stage)
    if isinstance(per, dict):
        return ",".join(f"{a}={e.status}" for a, e in per.items()) or "not run"
    return str(per.status)


def _retry_later(config: Config, queue: Queue, message_id: str, attempts: int, why: str) -> None:
    if attempts >= config.daemon.max_attempts:
        queue.finish(message_id, "failed", f"gave up after {attempts} attempts: {why}")
        event(f"<{message_id}>: failed after {attempts} attempts: {why}")
    else:
        queue.set(message_id, state="queued", detail=f"attempt {attempts} failed, retried next round: {why}")
        event(f"<{message_id}>: attempt {attempts} failed, retried next round: {why}")


def one_round(config: Config, queue: Queue, run_id: int) -> None:
    recover(queue, run_id)
    mm = mmfiles.load(config)
    queue.put_state(mm_source=mm.source)
    done = classify(config, queue, poll(config, queue), mm)
    # Candidates seen before but not classified (thread fetch failed, incomplete) get another look.
    retry = [fetch.Entry(r.message_id, r.subject, r.author, datetime.datetime.fromisoformat(r.posted))
             for r in queue.in_state("seen") if r.message_id not in done]
    classify(config, queue, retry, mm)
    tried: set[str] = set()
    while True:  # oldest first; a revision of a series posted meanwhile waits for the one before it
        todo = [r for r in queue.in_state("queued") if r.message_id not in tried]
        if not todo:
            break
        tried.add(todo[0].message_id)  # at most one attempt per round: a failing revision waits for the next
        process(config, queue, run_id, todo[0].message_id)


def _claim_process_group() -> None:
    """Lead our own process group when started non-interactively (cron, systemd, tests), so the group
    recorded for this run holds only us and our children."""
    try:
        if os.getsid(0) != os.getpid() and os.getpgid(0) != os.getpid() and not os.isatty(0):
            os.setpgid(0, 0)
    except OSError:
        pass


def main(config: Config, once: bool) -> int:
    pipeline.parse_stages(",".join(config.daemon.stages))  # a config error ends us before anything starts
    lock = config.paths.patchsets / "daemon.lock"
    try:
        with single_instance(lock):
            return _run(config, once)
    except sqlite3.Error as e:  # e.g. the disk is full: the open run is closed as crashed by the next one
        raise OperationalError(f"database {config.paths.patchsets / 'bot.sqlite3'}: {e}") from e


def _run(config: Config, once: bool) -> int:
    _claim_process_group()
    logfile = setup_logging(config)
    marker = uuid.uuid4().hex
    os.environ[MARKER_ENV] = marker  # inherited by every child, also those in new sessions
    stop = {"now": False}

    def on_term(signum: int, _frame: object) -> None:
        stop["now"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    with open_store(config.paths.patchsets) as store:
        queue = Queue(store)
        run_id = queue.begin_run(os.getpid(), os.getpgid(0), marker, str(logfile))
        event(f"daemon run {run_id} (pid {os.getpid()}), log {logfile}")
        try:
            while True:
                one_round(config, queue, run_id)
                if once:
                    break
                event(f"sleeping {config.daemon.interval:.0f} s")
                time.sleep(config.daemon.interval)
        except KeyboardInterrupt:
            queue.end_run(run_id, "stopped", "SIGTERM" if stop["now"] else "interrupted")
            for row in queue.in_state("running"):
                queue.set(row.message_id, state="queued", detail=f"stopped in stage {row.stage}; resuming")
            event(f"daemon run {run_id} stopped")
            return 0
        except BaseException as e:
            try:
                queue.end_run(run_id, "error", f"{type(e).__name__}: {e}")
            except sqlite3.Error:
                pass  # the next run finds it open and closes it as crashed
            raise
        queue.end_run(run_id, "ok")
        event(f"daemon run {run_id} done")
    return 0
