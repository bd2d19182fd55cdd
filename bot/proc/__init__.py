"""Every subprocess the bot starts goes through run(): a deadline, its own process group, optionally a sandbox.

- The child leads a new session; at the deadline the whole group gets SIGTERM, then SIGKILL after a grace
  (bwrap runs with --die-with-parent, so killing it ends everything inside).
- Output is captured (stdout/stderr, text) unless `log` names a file it is appended to (builds, consoles).
- `watch` is called while the child runs; returning a reason stops it (QEMU that lingers after RESULT:).
- `sandbox` runs the command in bubblewrap (bot.proc.sandbox) with its memory limit (bot.proc.cgroup).
- A missing program is an OperationalError naming it; with check=True so is a non-zero exit.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bot.errors import OperationalError
from bot.proc import sandbox as sandboxes
from bot.proc.sandbox import Bind, Sandbox

__all__ = ["Bind", "Outcome", "Sandbox", "run"]
logger = logging.getLogger(__name__)
KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL at the deadline
POLL = 0.25  # seconds between checks while a watched or logged child runs


@dataclass
class Outcome:
    cmd: list[str]
    returncode: int
    seconds: float
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    stopped: str = ""  # why `watch` stopped it
    oom: bool = False  # the sandbox's memory limit was hit
    memory_backend: str = "none"

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.stopped

    def last_line(self) -> str:
        lines = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return lines[-1] if lines else "(no output)"


def kill_group(proc: subprocess.Popen[bytes], grace: float = KILL_GRACE) -> None:
    """SIGTERM to the child's process group, SIGKILL after `grace` seconds if anything is left."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 30.0)):
        if sig == signal.SIGTERM and grace <= 0:
            continue
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run(cmd: list[str], *, timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None,
        input: str | bytes | None = None, log: Path | None = None, sandbox: Sandbox | None = None,
        watch: Callable[[], str] | None = None, check: bool = False, grace: float = KILL_GRACE) -> Outcome:
    """Run cmd to completion or to its deadline; never raises for the command's own failure unless check."""
    argv, group, backend = sandboxes.wrap(sandbox, cmd) if sandbox is not None else (cmd, None, "none")
    log_file = None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(log, "ab")
    data = input.encode() if isinstance(input, str) else input
    t0 = time.monotonic()
    try:
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, start_new_session=True,
                                    stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                                    stdout=log_file or subprocess.PIPE,
                                    stderr=subprocess.STDOUT if log_file else subprocess.PIPE)
        except FileNotFoundError as e:
            raise OperationalError(f"{cmd[0]} is not installed") from e
        logger.debug("run %s (pid %d)", " ".join(cmd[:6]), proc.pid)
        out, timed_out, stopped = _wait(proc, t0 + timeout, data, watch, grace)
        oom = group.oom() if group is not None else False
    finally:
        if log_file is not None:
            log_file.close()
        if group is not None:
            group.remove()
    result = Outcome(cmd, proc.returncode if proc.returncode is not None else -9, time.monotonic() - t0,
                     out[0].decode(errors="replace"), out[1].decode(errors="replace"), timed_out, stopped, oom,
                     backend)
    if check and not result.ok:
        what = " ".join(cmd[:3])
        if timed_out:
            raise OperationalError(f"{what} timed out after {timeout:.0f}s")
        raise OperationalError(f"{what} failed (exit {result.returncode}): {result.last_line()}")
    return result


def _wait(proc: subprocess.Popen[bytes], deadline: float, data: bytes | None,
          watch: Callable[[], str] | None, grace: float) -> tuple[tuple[bytes, bytes], bool, str]:
    """((stdout, stderr), timed out, why watch stopped it); the child is dead when this returns."""
    try:
        if watch is None:
            try:
                out = proc.communicate(data, timeout=max(0.0, deadline - time.monotonic()))
                return (out[0] or b"", out[1] or b""), False, ""
            except subprocess.TimeoutExpired:
                kill_group(proc, grace)
                rest = proc.communicate()
                return (rest[0] or b"", rest[1] or b""), True, ""
        if data is not None and proc.stdin is not None:
            proc.stdin.write(data)
            proc.stdin.close()
        timed_out, stopped = False, ""
        while proc.poll() is None:
            if time.monotonic() > deadline:
                timed_out = True
                break
            stopped = watch()
            if stopped:
                break
            time.sleep(POLL)
        if proc.poll() is None:
            kill_group(proc, grace)
        rest = proc.communicate()
        return (rest[0] or b"", rest[1] or b""), timed_out, stopped
    except BaseException:
        kill_group(proc, 0)
        raise
