"""What a dead daemon run left running: found by the marker in every child's environment, killed by process group.

Each run puts MM_REVIEW_BOT_RUN=<marker> in its environment, which every child inherits (including build and
boot processes that start their own sessions); a later run kills the process groups made only of the dead
run's marked processes, and single marked processes in mixed groups (never the shell or test runner).
"""

from __future__ import annotations

import os
import signal
import time

from bot.daemon.queue import RunRow

MARKER_ENV = "MM_REVIEW_BOT_RUN"
KILL_GRACE = 5.0


def _proc_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _carries(pid: int, marker: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"{MARKER_ENV}={marker}".encode() in f.read().split(b"\0")
    except OSError:  # gone, or not ours to read
        return False


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def stale_groups(run: RunRow) -> tuple[set[int], set[int]]:
    """(process groups made only of the dead run's processes, single pids of it in mixed groups)."""
    me, my_group = os.getpid(), os.getpgid(0)
    members: dict[int, list[int]] = {}
    for pid in _proc_pids():
        if pid != me and (g := _pgid(pid)) is not None:
            members.setdefault(g, []).append(pid)
    groups, singles = set(), set()
    for g, pids in members.items():
        marked = [p for p in pids if _carries(p, run.marker)]
        if not marked:
            continue
        # A whole group only when every member is the dead run's: never the shell or test runner around it.
        if g != my_group and len(marked) == len(pids):
            groups.add(g)
        else:
            singles.update(marked)
    return groups, singles


def kill_stale(run: RunRow) -> int:
    """Kill what the dead run left running, by process group (SIGTERM, then SIGKILL); how many processes."""
    groups, singles = stale_groups(run)
    if not groups and not singles:
        return 0
    count = len(singles) + sum(1 for p in _proc_pids() if _pgid(p) in groups)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for g in groups:
            try:
                os.killpg(g, sig)
            except ProcessLookupError:
                pass
        for p in singles:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + KILL_GRACE
        while time.monotonic() < deadline:
            left, lone = stale_groups(run)
            if not left and not lone:
                return count
            time.sleep(0.1)
    return count
