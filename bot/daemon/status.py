"""`bot status`: the daemon's queue, the running stage with its elapsed time, the last N results."""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bot.config import Config
from bot.daemon.queue import Queue, Row, RunRow
from bot.store import open_store

POLL_KEYS = ("last_poll", "last_poll_status", "poll_failures", "cursor", "mm_source")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_json(r: RunRow) -> dict[str, Any]:
    # An open run whose pid is gone died without closing (SIGKILL, power loss): the next run cleans up.
    state = r.status if r.ended or _alive(r.pid) else "dead (next run recovers)"
    return asdict(r) | {"state": state}


def _row_json(r: Row, now: float) -> dict[str, Any]:
    out = asdict(r)
    if r.state == "running" and r.stage_started:
        out["stage_elapsed"] = round(now - r.stage_started, 1)
    if r.started:
        out["elapsed"] = round((r.finished or now) - r.started, 1)
    return out


def collect(config: Config, last: int = 10) -> dict[str, Any]:
    now = time.time()
    with open_store(config.paths.patchsets) as store:
        q = Queue(store)
        return {
            "runs": [_run_json(r) for r in q.runs(5)],
            "poll": {k: q.get_state(k) for k in POLL_KEYS},
            "queue": [_row_json(r, now) for r in q.in_state("running", "queued", "seen")],
            "recent": [_row_json(r, now) for r in q.recent(last)],
        }


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def render(data: dict[str, Any], console: Console) -> None:
    runs = data["runs"]
    if runs:
        r = runs[0]
        console.print(f"daemon: run {r['id']} pid {r['pid']} {escape(r['state'])}, started "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(r['started']))}, log {escape(r['log'])}")
    else:
        console.print("daemon: never ran")
    p = data["poll"]
    style = "red" if p["last_poll_status"].startswith("failed") else "green"
    console.print(f"last poll: {p['last_poll'] or 'never'} [{style}]{escape(p['last_poll_status'])}[/{style}]"
                  + (f" ({p['poll_failures']} failed in a row)" if p["poll_failures"] not in ("", "0") else ""))
    console.print(f"mm files: {escape(p['mm_source'] or '?')}")
    queue = Table(title="queue", title_justify="left")
    for col in ("state", "stage", "elapsed", "rev", "subject", "tries", "detail"):
        queue.add_column(col)
    for r in data["queue"]:
        queue.add_row(r["state"], r["stage"], _ago(r.get("stage_elapsed")), f"v{r['version']}", escape(r["subject"]),
                      str(r["attempts"]), escape(r["detail"]))
    console.print(queue)
    recent = Table(title=f"last {len(data['recent'])} results", title_justify="left")
    for col in ("finished", "state", "rev", "subject", "series", "took", "outcome"):
        recent.add_column(col)
    for r in data["recent"]:
        when = time.strftime("%m-%d %H:%M", time.localtime(r["finished"])) if r["finished"] else ""
        recent.add_row(when, r["state"], f"v{r['version']}", escape(r["subject"]), r["series"],
                       _ago(r.get("elapsed")), escape(r["detail"]))
    console.print(recent)
