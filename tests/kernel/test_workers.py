"""[workers] engine = "celery" for real: a redis-server of the test's own on 127.0.0.1, real `bot worker`
processes (Celery workers) with their own patchsets/, the real kernel tree and build cache of the kernel
tests (one machine: the workers share them, taking turns at the work tree as any two bot processes do).

- the demo's clean v1 reviewed through two workers (one per arch) gives the result.json and the reply the
  local engine gives; a copy of a finished task sent again is not run again;
- SIGKILL of a worker in the middle of its build, and of the coordinator: the restarted coordinator watches
  the task in flight, finds its worker gone, sends it again; another worker finishes it, one reply;
- a worker without the arm64 toolchain serves x86_64 only; Redis stopped in the middle of that run and
  started again: the run finishes, nothing lost, one reply; the arm64 task nobody takes is an `error`;
- a task over its time limit is an `error` stage result saying so, and the next revision is reviewed.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.demo import series as demo
from bot.demo.broker import RedisServer, WorkerProcess
from bot.demo.localinbox import LocalInbox
from tests.conftest import BOT, bot_env, run_bot, write_config
from tests.kernel.conftest import CACHE, KERNEL_TREE, restored_tree

pytestmark = pytest.mark.kernel
STAGES = "fetch,apply,build,boot,report"
# three quick, steady tests of the base's cached run (not x86_64's extra ones): the engines are compared
SHORT = ('[selftests]\ntests = ["madv_populate", "mremap_dontunmap", "mlock2-tests"]\n'
         '[arch.x86_64]\nselftests = []\n')
QUICK = '[selftests]\nenabled = false\n[stress]\nscenarios = ["lazyfree-pageout"]\n'  # fault tests: the engine


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own (an empty one: no task or outcome of another test)."""
    missing = RedisServer.available()
    if missing:
        pytest.fail(missing)
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def archive(root: Path, kinds: tuple[str, ...]) -> tuple[LocalInbox, list[demo.Generated]]:
    """An archive of its own with these demo revisions only: the session archive holds the whole demo series
    under the same Message-IDs (tests/kernel/test_pipeline.py posts it), and a check fetches every revision
    it finds."""
    specs = tuple(r for r in demo.REVISIONS if r.kind in kinds)
    generated = demo.generate(KERNEL_TREE, root / "series", revisions=specs)
    box = LocalInbox(root / "pi").init()
    for g in generated:
        box.deliver_mbox(root / "series" / g.path)
    box.url = box.serve()  # type: ignore[attr-defined]
    return box, generated


@pytest.fixture(scope="module")
def clean_v1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, demo.Generated]]:
    """(the archive's URL, the demo's clean v1 posted there alone)."""
    box, (g,) = archive(tmp_path_factory.mktemp("workers-series"), ("clean",))
    try:
        with restored_tree("*review/*"):  # review/<slug>/v1 and the workers' worker/review/<slug>/v1
            yield box.url, g  # type: ignore[attr-defined]
    finally:
        box.stop()


def config(path: Path, url: str, broker: RedisServer | None, workers: dict[str, object] | None = None,
           extra: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_config(path, url, kernel_tree=KERNEL_TREE)
    text = path.read_text().replace('cache = "cache"', f'cache = "{CACHE}"')
    if broker is not None:
        keys = {"engine": "celery", "broker": broker.url, **(workers or {})}
        text += "[workers]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
    path.write_text(text + extra)
    return path


def start(work: Path, name: str, url: str, broker: RedisServer, arches: str | None = None,
          extra: str = "") -> WorkerProcess:
    cfg = config(work / name / "config.toml", url, broker, extra=extra)
    return WorkerProcess(cfg, name, work / name / "worker.log", arches).wait_ready()


def wait_for(what: str, cond: Callable[[], object], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"not in {timeout} s: {what}"
        time.sleep(0.2)


def check(cfg: Path, msgid: str, *args: str, timeout: float = 3600) -> dict[str, Any]:
    proc = run_bot("check", msgid, "--config", str(cfg), "--stages", STAGES, *args, "--json", cwd=cfg.parent,
                   timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return json.loads(proc.stdout) | {"stderr": proc.stderr}


def spawn_check(cfg: Path, msgid: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([BOT, "check", msgid, "--config", str(cfg), "--stages", STAGES, *args, "--json"],
                            cwd=cfg.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=bot_env())


def finish(proc: subprocess.Popen[str], timeout: float = 3600) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-5000:]
    return json.loads(out) | {"stderr": err}


def replies(cfg: Path) -> list[str]:
    """The bodies of the replies in the outbox (dry-run: rendered, never mailed)."""
    msgs = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted((cfg.parent / "patchsets" / "outbox" / "new").iterdir())]
    return [m.get_body(("plain",)).get_content() for m in msgs]  # type: ignore[union-attr]


VOLATILE = re.compile(r"seconds|elapsed|took|time|_at$|^started$|^finished$|ccache|date|^when$")
WHERE = ("worker", "log_tail", "image", "base_image", "build_dir", "command")  # the worker's own files
COUNTS = ("ok", "xfail", "skip")  # subtest counters of a selftest: a subtest may XFAIL one run, pass the next


def normal(value: Any, roots: list[str], key: str = "") -> Any:
    """A result with what differs between two runs of the same inputs taken out: timings, where the run's
    files are, which worker ran it, ccache counts, the counters the workload prints."""
    if isinstance(value, dict):
        return {k: normal(v, roots, k) for k, v in value.items()
                if not VOLATILE.search(k) and k not in WHERE and k not in COUNTS}
    if isinstance(value, list):
        return [normal(v, roots, key) for v in value]
    if isinstance(value, str):
        for root in roots:
            value = value.replace(root, "<root>")
        value = re.sub(r"\d+(\.\d+)?\s?s\b", "<n>s", value)
        return re.sub(r"\+\d+", "+<n>", value) if key == "detail" else value
    if isinstance(value, float):
        return "<float>"
    return value


def normal_reply(text: str, roots: list[str]) -> str:
    for root in roots:
        text = text.replace(root, "<root>")
    return re.sub(r"\(\d+(\.\d+)? s\)", "(<n> s)", text)


def test_two_workers_give_what_the_local_engine_gives(broker: RedisServer, clean_v1: tuple[str, demo.Generated],
                                                      tmp_path: Path) -> None:
    url, v1 = clean_v1
    local = config(tmp_path / "local" / "config.toml", url, None, extra=SHORT)
    got_local = check(local, v1.cover_msgid)
    x86 = start(tmp_path, "w-x86", url, broker, "x86_64")
    arm = start(tmp_path, "w-arm", url, broker, "arm64")
    try:
        celery = config(tmp_path / "celery" / "config.toml", url, broker, extra=SHORT)
        proc = spawn_check(celery, v1.cover_msgid)
        seen: dict[str, Any] = {}

        def both_running() -> bool:  # `bot status` while the two tasks run: the workers and what each runs
            st = run_bot("status", "--json", "--config", str(celery), cwd=celery.parent, timeout=60)
            seen.update(json.loads(st.stdout)["workers"])
            return seen.get("in_flight") == 2

        wait_for("bot status shows both tasks running", both_running, timeout=300)
        assert {w["name"].split("@")[0]: (w["queues"], [t["arch"] for t in w["active"]]) for w in seen["workers"]} == {
            "w-x86": (["mmbot.x86_64"], ["x86_64"]), "w-arm": (["mmbot.arm64"], ["arm64"])}
        got = finish(proc)
        (rev,) = got["revisions"]
        assert {a: rev["stages"]["build"][a]["worker"].split("@")[0] for a in ("x86_64", "arm64")} == {
            "x86_64": "w-x86", "arm64": "w-arm"}
        for a in ("x86_64", "arm64"):  # the logs came back with the results
            for stage in ("build", "boot"):
                log = Path(rev["stages"][stage][a]["log"])
                assert log.is_relative_to(celery.parent) and log.stat().st_size > 0, rev["stages"][stage][a]
        roots = [str(local.parent), str(celery.parent), str(tmp_path)]
        assert normal(got["revisions"], roots) == normal(got_local["revisions"], roots)
        assert [normal_reply(t, roots) for t in replies(celery)] == [normal_reply(t, roots) for t in replies(local)]
        # a copy of the finished x86_64 task, delivered again: returned from its stored outcome, not run again
        r = redis.Redis.from_url(broker.url)
        payloads = [_args(broker, r.get(k).decode())[0] for k in r.keys("mmbot:sent:*")]
        payload = next(p for p in payloads if p["arch"] == "x86_64")
        again = _app(broker).send_task("mmbot.review_arch", args=[payload], queue="mmbot.x86_64")
        assert again.get(timeout=120)["redelivered"] is True
        assert re.search(r"already done by w-x86@\S+: not run again", x86.text())
        assert len(replies(celery)) == 1
    finally:
        x86.stop()
        arm.stop()


def _app(broker: RedisServer) -> Any:
    from bot import config as configmod
    from bot.workers.app import make_app

    cfg = configmod.Config(workers=configmod.WorkersConfig(engine="celery", broker=broker.url))
    return make_app(cfg)


def _args(broker: RedisServer, task_id: str) -> list[Any]:
    from celery.result import AsyncResult

    return list(AsyncResult(task_id, app=_app(broker)).args or [])


def test_a_worker_and_the_coordinator_killed_mid_build_lose_nothing(broker: RedisServer,
                                                                     clean_v1: tuple[str, demo.Generated],
                                                                     tmp_path: Path) -> None:
    url, v1 = clean_v1
    a = start(tmp_path, "w-a", url, broker, "x86_64")
    b: WorkerProcess | None = None
    try:
        coord = config(tmp_path / "coord" / "config.toml", url, broker, {"lost_after_s": 10}, QUICK)
        first = spawn_check(coord, v1.cover_msgid, "--arch", "x86_64")
        logs = tmp_path / "w-a" / "patchsets"
        wait_for("w-a's build runs make", lambda: any("$ make" in p.read_text()
                                                      for p in logs.glob("*/v1/logs/build-x86_64.log")))
        a.kill()  # SIGKILL to the worker; its pool process and the sandboxed make die with it
        first.kill()  # and to the coordinator, as a crash of `bot daemon` would
        first.wait()
        wait_for("nothing of w-a is left", lambda: not _processes("w-a/config.toml"), timeout=30)
        b = start(tmp_path, "w-b", url, broker, "x86_64")
        got = finish(spawn_check(coord, v1.cover_msgid, "--arch", "x86_64"))  # the restart
        (rev,) = got["revisions"]
        for stage in ("build", "boot", "stress"):
            e = rev["stages"][stage]["x86_64"]
            assert e["status"] == "ok" and e["worker"].startswith("w-b@"), (stage, e)
        assert "sent by an earlier run" in got["stderr"]  # the restarted coordinator sent nothing new at first,
        assert "answered no ping" in got["stderr"] and "sending the task again (attempt 2)" in got["stderr"]
        assert b.text().count("succeeded in") == 1
        assert len(replies(coord)) == 1
    finally:
        a.stop()
        if b is not None:
            b.stop()


def _processes(pattern: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


def test_redis_restart_and_a_worker_without_the_arm64_toolchain(broker: RedisServer,
                                                                clean_v1: tuple[str, demo.Generated],
                                                                tmp_path: Path) -> None:
    url, v1 = clean_v1
    lacks = '[arch.arm64]\ncross_compile = "no-such-toolchain-"\n'
    cfg = config(tmp_path / "w-refused" / "config.toml", url, broker, extra=lacks)
    refused = run_bot("worker", "--config", str(cfg), "--arch", "arm64", cwd=cfg.parent, timeout=60)
    assert refused.returncode != 0 and "cannot serve arm64 (no-such-toolchain-gcc" in refused.stderr
    w = start(tmp_path, "w-x86only", url, broker, None, extra=lacks)
    assert "queues mmbot.x86_64 on" in w.text() and "not serving arm64: no-such-toolchain-gcc" in w.text()
    try:
        coord = config(tmp_path / "coord" / "config.toml", url, broker, {"queued_timeout_s": 60}, QUICK)
        proc = spawn_check(coord, v1.cover_msgid)
        wait_for("w-x86only started the task", lambda: "mmbot.review_arch[" in w.text())
        r = redis.Redis.from_url(broker.url)
        wait_for("the arm64 task waits in its queue", lambda: r.llen("mmbot.arm64") == 1, timeout=60)
        time.sleep(3)
        broker.stop()  # in the middle of the x86_64 build: the worker and the coordinator lose Redis
        time.sleep(10)
        broker.start()
        got = finish(proc)
        (rev,) = got["revisions"]
        for stage in ("build", "boot", "stress"):
            e = rev["stages"][stage]["x86_64"]
            assert e["status"] == "ok" and e["worker"].startswith("w-x86only@"), (stage, e)
        arm = rev["stages"]["build"]["arm64"]
        assert arm["status"] == "error" and "no worker started the task" in arm["detail"], arm
        assert "mmbot.arm64" in arm["detail"]
        assert "broker unreachable" in got["stderr"] and "broker back after" in got["stderr"]
        assert w.text().count("succeeded in") == 1  # run once, across the outage
        assert len(replies(coord)) <= 1
    finally:
        w.stop()


def test_a_task_over_its_time_limit_is_an_error_and_the_next_revision_goes_on(
        broker: RedisServer, tmp_path: Path) -> None:
    box, generated = archive(tmp_path, ("clean", "broken"))
    url: str = box.url  # type: ignore[attr-defined]
    limits = {"task_time_limit_s": 5, "visibility_timeout_s": 600}
    w = start(tmp_path, "w-slow", url, broker, "x86_64", extra=QUICK)
    try:
        coord = config(tmp_path / "coord" / "config.toml", url, broker, limits, QUICK)
        with restored_tree("*review/*"):
            got = check(coord, generated[-1].cover_msgid, "--arch", "x86_64")
        first, second = sorted(got["revisions"], key=lambda r: r["version"])
        build = first["stages"]["build"]["x86_64"]
        assert build["status"] == "error" and "exceeded its time limit of 5" in build["detail"], build
        assert first["stages"]["boot"]["x86_64"]["status"] == "error"
        assert second["stages"]["apply"]["status"] == "failed" and second["stages"]["report"]["status"] != "not_run"
    finally:
        w.stop()
        box.stop()
