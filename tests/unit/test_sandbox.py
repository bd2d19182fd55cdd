"""bot.proc with its sandbox: no network, no writes outside the writable binds, timeouts kill everything,
memory limit."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from bot import proc
from bot.proc import Bind, Sandbox, cgroup

CONNECT = ("import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=3); "
           "print('CONN' + 'ECTED')")


def _box(work: Path, **kw) -> Sandbox:
    return Sandbox(binds=[Bind(work, "/src", writable=True)], env={"PATH": "/usr/bin:/bin"}, cwd="/src", **kw)


@pytest.fixture
def server():
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    accepted: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            accepted.append(1)
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], accepted
    stop.set()
    t.join()
    srv.close()


def _makefile(work: Path, recipe: str) -> None:
    work.mkdir(exist_ok=True)
    (work / "Makefile").write_text("all:\n\t" + recipe + "\n")


def test_makefile_cannot_reach_host_loopback(tmp_path, server):
    port, accepted = server
    work = tmp_path / "src"
    _makefile(work, f'python3 -c "{CONNECT}" {port}')
    # Control: the same Makefile with the network shared does connect, so the test can tell.
    ok = proc.run(["make"], timeout=60, log=tmp_path / "ok.log", sandbox=_box(work, network=True))
    assert ok.returncode == 0 and "CONNECTED" in (tmp_path / "ok.log").read_text()
    n = len(accepted)
    out = proc.run(["make"], timeout=60, log=tmp_path / "box.log", sandbox=_box(work))
    assert out.returncode != 0
    assert "CONNECTED" not in (tmp_path / "box.log").read_text()
    assert len(accepted) == n


def test_writes_only_inside_writable_binds(tmp_path):
    work = tmp_path / "src"
    outside = tmp_path / "outside"
    outside.mkdir()
    ro = tmp_path / "ro"
    ro.mkdir()
    _makefile(work, f"touch /src/inside && touch /tmp/scratch && (touch {outside}/x || touch /ro/x || touch /etc/x "
              "|| touch /usr/x || echo ALL-DENIED)")
    box = Sandbox(binds=[Bind(work, "/src", writable=True), Bind(ro, "/ro")], env={"PATH": "/usr/bin"}, cwd="/src")
    out = proc.run(["make"], timeout=60, log=tmp_path / "log", sandbox=box)
    text = (tmp_path / "log").read_text()
    assert out.returncode == 0, text
    assert "ALL-DENIED" in text
    assert (work / "inside").exists()
    assert not (outside / "x").exists() and not (ro / "x").exists() and not Path("/etc/x").exists()
    assert not Path("/tmp/scratch").exists()  # a fresh /tmp, not the host's


def test_write_outside_fails_the_build(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "src"
    _makefile(work, f"echo pwned > {outside}/x")
    out = proc.run(["make"], timeout=60, log=tmp_path / "log", sandbox=_box(work))
    assert out.returncode != 0
    assert not (outside / "x").exists()


def test_timeout_kills_the_whole_tree(tmp_path):
    work = tmp_path / "src"
    marker = "sleep 299.731"  # a command line no other test runs
    _makefile(work, f"{marker} & {marker} & {marker}")
    t0 = time.monotonic()
    out = proc.run(["make", "-j3"], timeout=2, log=tmp_path / "log", sandbox=_box(work))
    assert out.timed_out
    assert time.monotonic() - t0 < 30
    # No sleep survives (the pid namespace dies with bwrap; the kernel reaps it within moments).
    deadline = time.monotonic() + 10
    while left := subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, timeout=10).stdout.split():
        assert time.monotonic() < deadline, f"still running: {left}"
        time.sleep(0.2)


def test_environment_is_cleared(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "xyz")
    work = tmp_path / "src"
    _makefile(work, "env > /src/env.txt")
    out = proc.run(["make"], timeout=60, log=tmp_path / "log", sandbox=_box(work))
    assert out.returncode == 0
    assert "SECRET_TOKEN" not in (work / "env.txt").read_text()


@pytest.mark.skipif(cgroup.memory_backend() == "rlimit", reason="no writable memory cgroup here")
def test_memory_limit(tmp_path):
    work = tmp_path / "src"
    hog = "b=[bytearray(16<<20) for _ in range(64)]; print('SUR' + 'VIVED')"  # 1 GiB
    _makefile(work, f'python3 -c "{hog}"')
    out = proc.run(["make"], timeout=120, log=tmp_path / "log", sandbox=_box(work, memory_max=200 << 20))
    assert out.returncode != 0
    assert "SURVIVED" not in (tmp_path / "log").read_text()
    assert out.oom
