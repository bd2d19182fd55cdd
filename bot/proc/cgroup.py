"""A memory limit for a sandboxed run: a child cgroup of our own (v2 memory.max, or the v1 memory controller).

systemd-run --scope needs systemd as PID 1, which containers rarely have; a cgroup we create ourselves
works wherever the cgroup fs is writable. RLIMIT_AS (prlimit) is the last resort: it counts address space,
not memory, so it has to be generous (gcc and ld map much more than they touch).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)



def _mount_point(v2: bool) -> Path | None:
    """Where cgroup2 (v2) or the v1 memory controller is mounted (hybrid hosts have both)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        parts = line.split()
        if len(parts) < 4:
            continue
        if v2 and parts[2] == "cgroup2":
            return Path(parts[1])
        if not v2 and parts[2] == "cgroup" and "memory" in parts[3].split(","):
            return Path(parts[1])
    return None


def _own_cgroup(v2: bool) -> Path | None:
    """Our cgroup's directory (v2, or v1 memory controller), if mounted and writable."""
    root = _mount_point(v2)
    if root is None:
        return None
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        if (v2 and ctrls == "") or (not v2 and "memory" in ctrls.split(",")):
            d = root / path.lstrip("/")
            if d.is_dir() and os.access(d, os.W_OK):
                return d
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@cache
def memory_backend() -> str:
    """How to cap memory here: 'cgroup2' (memory.max), 'cgroup1' (memory.limit_in_bytes), else 'rlimit'."""
    v2 = _own_cgroup(True)
    if v2 is not None and "memory" in _read(v2 / "cgroup.controllers").split():
        return "cgroup2"
    v1 = _own_cgroup(False)
    if v1 is not None and (v1 / "memory.limit_in_bytes").exists():
        return "cgroup1"
    return "rlimit"


def _remove_stale(parent: Path) -> None:
    """Empty cgroups left by a bot process that was killed before its cleanup ran."""
    for d in parent.glob("mm-review-bot-*-*"):
        try:
            owner = int(d.name.split("-")[3])
        except (IndexError, ValueError):
            continue
        if owner != os.getpid() and not Path(f"/proc/{owner}").exists():
            try:
                d.rmdir()  # fails (and is left) while processes are still inside
            except OSError:
                pass


class Cgroup:
    """A child memory cgroup for one run: created, limited, then removed after killing what is left."""

    def __init__(self, backend: str, limit: int) -> None:
        parent = _own_cgroup(backend == "cgroup2")
        assert parent is not None
        self.backend = backend
        _remove_stale(parent)
        self.path = parent / f"mm-review-bot-{os.getpid()}-{time.monotonic_ns()}"
        self.path.mkdir()
        knob = "memory.max" if backend == "cgroup2" else "memory.limit_in_bytes"
        (self.path / knob).write_text(str(limit))
        if backend == "cgroup1" and (self.path / "memory.memsw.limit_in_bytes").exists():
            try:  # swap too, when the kernel accounts it
                (self.path / "memory.memsw.limit_in_bytes").write_text(str(limit))
            except OSError:
                pass

    def oom(self) -> bool:
        try:
            if self.backend == "cgroup2":
                events = (self.path / "memory.events").read_text()
                return any(line.split()[0] == "oom_kill" and line.split()[1] != "0" for line in events.splitlines())
            control = dict(line.split() for line in _read(self.path / "memory.oom_control").splitlines())
            return int(control.get("oom_kill", "0")) > 0 or int(_read(self.path / "memory.failcnt") or 0) > 0
        except (OSError, ValueError, IndexError):
            return False

    def remove(self) -> None:
        for _ in range(50):
            try:
                pids = [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
            except OSError:
                pids = []
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)
        log.warning("could not remove cgroup %s", self.path)
