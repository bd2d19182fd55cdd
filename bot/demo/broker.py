"""A private Redis broker and real `bot worker` processes, for the tests and bench/workers.py (not used in
production, where the operator runs redis-server and `bot worker` under systemd: contrib/).

RedisServer runs redis-server on 127.0.0.1 on a free port with its data in a directory of the caller's
(appendonly, fsync always: a restart keeps queued tasks and results, as a production Redis should).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root, self.port = root, port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def available() -> str | None:
        return None if shutil.which("redis-server") else "redis-server not found (Debian: apt install redis-server)"

    def start(self, timeout: float = 30) -> RedisServer:
        self.root.mkdir(parents=True, exist_ok=True)
        cmd = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.root),
               "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
               "--protected-mode", "yes", "--logfile", str(self.root / "redis.log")]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server on port {self.port} did not answer in {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: redis flushes the append-only file and exits
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class WorkerProcess:
    """`bot worker --config <config> --name <name> [--arch ...]`, its output in <log>."""

    def __init__(self, config: Path, name: str, log: Path, arches: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.config, self.name, self.log = config, name, log
        bot = str(Path(sys.executable).with_name("bot"))
        cmd = [bot, "worker", "--config", str(config), "--name", name] + (["--arch", arches] if arches else [])
        self.out = open(log, "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT, cwd=config.parent,
                                     env={k: v for k, v in (env or os.environ).items() if k != "BOT_CONFIG"},
                                     start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> WorkerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.text():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited {self.proc.returncode}:\n{self.text()[-3000:]}")
            time.sleep(0.2)
        raise RuntimeError(f"worker {self.name} not ready in {timeout} s:\n{self.text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL to the worker's main process only, as a crash or an OOM kill would."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 15) -> None:
        """Celery's cold shutdown (SIGQUIT: running tasks are not waited for), then SIGKILL to what is left."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGQUIT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.out.close()
