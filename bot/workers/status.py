"""`bot status`'s workers part: the engine, the workers seen (Celery inspect), queue depths, tasks in flight."""

from __future__ import annotations

from typing import Any

import kombu.exceptions
import redis

from bot.arches import ARCHES
from bot.config import Config
from bot.workers.app import make_app, queue

INSPECT_TIMEOUT_S = 2.0


def collect(config: Config) -> dict[str, Any]:
    w = config.workers
    if w.engine != "celery":
        return {"engine": w.engine}
    out: dict[str, Any] = {"engine": w.engine, "broker": w.broker}
    try:
        r = redis.Redis.from_url(w.broker, socket_timeout=5, socket_connect_timeout=5)
        out["queues"] = {queue(a): int(r.llen(queue(a))) for a in ARCHES}  # kombu's Redis queue is a list
        app = make_app(config)
        insp = app.control.inspect(timeout=INSPECT_TIMEOUT_S)
        active = insp.active() or {}
        queues = insp.active_queues() or {}
        out["workers"] = [{"name": name, "queues": [q["name"] for q in queues.get(name, [])],
                           "active": [{"id": t["id"], "arch": (t.get("args") or [{}])[0].get("arch"),
                                       "version": (t.get("args") or [{}])[0].get("revision", {}).get("version"),
                                       "started": t.get("time_start")} for t in tasks]}
                          for name, tasks in sorted(active.items())]
        out["in_flight"] = sum(len(x["active"]) for x in out["workers"])
    except (redis.RedisError, kombu.exceptions.OperationalError, OSError) as e:
        out["error"] = f"broker {w.broker} unreachable: {e}"
    return out


def render_lines(data: dict[str, Any]) -> list[str]:
    if data["engine"] != "celery":
        return [f"workers: engine {data['engine']} (builds and boots run in this process)"]
    if "error" in data:
        return [f"workers: engine celery, {data['error']}"]
    lines = [f"workers: engine celery on {data['broker']}, {len(data['workers'])} worker(s) seen, "
             f"{data['in_flight']} task(s) in flight"]
    lines += [f"  {w['name']}: {', '.join(w['queues'])}; running "
              + (", ".join(f"v{t['version']} {t['arch']}" for t in w["active"]) or "nothing") for w in data["workers"]]
    lines.append("  queued: " + ", ".join(f"{q} {n}" for q, n in data["queues"].items()))
    return lines
