"""[workers] engine "celery" against the local engine, on this machine, in one run:

1. latency of one revision (both arches): `bot check` with the local engine, then through two workers
   (one per arch);
2. throughput of a 5-revision series (both arches: 10 tasks) with 1 worker and with 2 workers;
3. the Celery overhead per task: enqueue -> start (the task's start on the worker minus its send) and
   finish -> result stored (Redis' date_done minus the task's end), in milliseconds, from every task above.

    .venv/bin/python bench/workers.py [--revisions 5] [--arch x86_64,arm64] [--full-boot]

Everything runs for real: a public-inbox archive and a redis-server on 127.0.0.1 in a temp dir, `bot worker`
processes, the checkout's kernel-tree/ and build cache (warm builds: a cold build is the same work on either
engine). The boots are shortened (one stress scenario, no selftests) unless --full-boot: the engines differ
in how work moves, not in what a boot does. Each measurement starts from empty patchsets/ and an empty
Redis, so nothing is reused. Prints a line per measurement and, last, one JSON line. Asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis as redislib  # noqa: E402
from celery.result import AsyncResult  # noqa: E402

from bot.config import Config, WorkersConfig  # noqa: E402
from bot.demo import series as demo  # noqa: E402
from bot.demo.broker import RedisServer, WorkerProcess  # noqa: E402
from bot.demo.localinbox import LocalInbox  # noqa: E402
from bot.workers.app import TASK, make_app, queue  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BOT = str(Path(sys.executable).with_name("bot"))
QUICK = '[selftests]\nenabled = false\n[stress]\nscenarios = ["lazyfree-pageout"]\n'
THROUGHPUT_KINDS = ("clean", "bug", "fix", "warning", "coverage-warning", "selftest-bug")  # all build
TIMING = re.compile(r"queued (\d+(?:\.\d+)?) ms, stored (\d+(?:\.\d+)?) ms after")


def write_config(path: Path, url: str, broker: str | None, extra: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (f'[lore]\nurl = "{url}"\nlist = "linux-mm"\n[paths]\npatchsets = "patchsets"\n'
            f'kernel_tree = "{REPO / "kernel-tree"}"\ncache = "{REPO / ".cache"}"\n')
    if broker:
        text += f'[workers]\nengine = "celery"\nbroker = "{broker}"\n'
    path.write_text(text + extra)
    return path


def check(cfg: Path, msgid: str, arches: str) -> tuple[float, list[tuple[float, float]]]:
    """Wall seconds of `bot check` (fetch..report) and each task's (enqueue->start, finish->stored) in ms."""
    t0 = time.monotonic()
    proc = subprocess.run([BOT, "check", msgid, "--config", str(cfg), "--arch", arches, "--stages",
                           "fetch,apply,build,boot,report"], cwd=cfg.parent, capture_output=True, text=True,
                          timeout=7200)
    took = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bot check failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return took, [(float(a), float(b)) for a, b in TIMING.findall(proc.stderr)]


def serve(root: Path, kinds: tuple[str, ...]) -> tuple[LocalInbox, list[demo.Generated]]:
    specs = tuple(r for r in demo.REVISIONS if r.kind in kinds)
    generated = demo.generate(REPO / "kernel-tree", root / "series", revisions=specs)
    box = LocalInbox(root / "inbox").init()
    for g in generated:
        box.deliver_mbox(root / "series" / g.path)
    box.url = box.serve()  # type: ignore[attr-defined]
    return box, generated


def probe(url: str, n: int) -> list[tuple[float, float]]:
    """n copies of a finished task, one after the other, on idle workers: each returns its stored outcome
    at once (task.py), so the time around it is Celery's and Redis' alone."""
    app = make_app(Config(workers=WorkersConfig(engine="celery", broker=url)))
    r = redislib.Redis.from_url(url)
    task_ids = [r.get(k).decode() for k in r.keys("mmbot:sent:*")]
    payload = AsyncResult(task_ids[0], app=app).args[0]
    out = []
    for _ in range(n):
        sent = time.time()
        res = app.send_task(TASK, args=[payload], queue=queue(payload["arch"]))
        data = res.get(timeout=60)
        done = res.date_done.replace(tzinfo=res.date_done.tzinfo or datetime.UTC).timestamp()
        out.append(((data["started"] - sent) * 1000, (done - data["finished"]) * 1000))
    return out


def with_workers(work: Path, url: str, names: list[tuple[str, str | None]], extra: str,
                 msgid: str, arches: str, probes: int = 0) -> tuple[float, list[tuple[float, float]]]:
    redis = RedisServer(work / "redis").start()
    procs = []
    try:
        for name, served in names:
            cfg = write_config(work / name / "config.toml", url, redis.url, extra)
            procs.append(WorkerProcess(cfg, name, work / name / "worker.log", served).wait_ready())
        took, timing = check(write_config(work / "coordinator" / "config.toml", url, redis.url, extra), msgid,
                             arches)
        return took, timing + (probe(redis.url, probes) if probes else [])
    finally:
        for p in procs:
            p.stop()
        redis.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--revisions", type=int, default=5)
    ap.add_argument("--arch", default="x86_64,arm64")
    ap.add_argument("--full-boot", action="store_true", help="the config's own boot (stress + selftests)")
    args = ap.parse_args()
    extra = "" if args.full_boot else QUICK
    arches = args.arch.split(",")
    figures: dict[str, object] = {"boot": "full" if args.full_boot else "quick (1 scenario, no selftests)"}
    starts: list[float] = []  # enqueue -> start where a worker was idle (in the throughput runs tasks queue)
    stores: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        root = Path(tmp)
        box, gen = serve(root / "one", ("clean",))
        try:
            local, _ = check(write_config(root / "one-local" / "config.toml", box.url, None, extra),
                             gen[0].cover_msgid, args.arch)
            print(f"latency, 1 revision x {len(arches)} arches: local engine {local:.1f} s", flush=True)
            two, t = with_workers(root / "one-celery", box.url, [(f"w-{a}", a) for a in arches], extra,
                                  gen[0].cover_msgid, args.arch, probes=20)
            starts += [a for a, _ in t]
            stores += [b for _, b in t]
            print(f"latency, 1 revision x {len(arches)} arches: {len(arches)} workers (one per arch) {two:.1f} s "
                  f"({two / local:.2f}x the local engine)", flush=True)
            figures |= {"latency_local_s": round(local, 1), "latency_workers_s": round(two, 1)}
        finally:
            box.stop()
        box, gen = serve(root / "many", THROUGHPUT_KINDS[:args.revisions])
        try:
            newest = gen[-1].cover_msgid
            for n in (1, 2):
                took, t = with_workers(root / f"many-{n}", box.url, [(f"w{i}", None) for i in range(n)], extra,
                                       newest, args.arch)
                stores += [b for _, b in t]
                tasks = len(gen) * len(arches)
                print(f"throughput, {len(gen)} revisions x {len(arches)} arches ({tasks} tasks): {n} worker(s) "
                      f"{took:.1f} s, {tasks / took * 3600:.1f} tasks/h", flush=True)
                figures[f"throughput_{n}_worker_s"] = round(took, 1)
        finally:
            box.stop()
    if starts and stores:
        print(f"celery overhead per task: enqueue->start (idle worker, {len(starts)} tasks) median "
              f"{statistics.median(starts):.0f} ms (max {max(starts):.0f}); finish->stored ({len(stores)} tasks) "
              f"median {statistics.median(stores):.0f} ms (max {max(stores):.0f})")
        figures |= {"enqueue_to_start_tasks": len(starts),
                    "enqueue_to_start_ms_median": round(statistics.median(starts), 1),
                    "enqueue_to_start_ms_max": round(max(starts), 1), "finish_to_stored_tasks": len(stores),
                    "finish_to_stored_ms_median": round(statistics.median(stores), 1),
                    "finish_to_stored_ms_max": round(max(stores), 1)}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
