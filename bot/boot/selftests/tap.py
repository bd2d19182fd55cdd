"""The selftests' part of a console: the runner's BEGIN/END frames and each attempt's kselftest TAP output.

A small parser, not a TAP library: tap.py (PyPI) counts the same results once kernel lines are removed, but
it stops at the first `Bail out!` (in khugepaged a forked child prints one and the test goes on to pass),
rejects normal kselftest output (diagnostics before `TAP version`, `# Totals` after the plan) and knows
nothing of XFAIL, exit codes, timeouts, crashes or the kernel's messages interleaved by the serial console,
even in the middle of a line (README "The mm selftests" has the comparison). Never raises on content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_KTIME = re.compile(r"\[\s*\d+\.\d{6}\] ")  # a printk timestamp, at the start or in the middle of a line
_BEGIN = re.compile(r"^### BEGIN (\d+) attempt=(\d+) ::(.*)$")
_END = re.compile(r"^### END (\d+) attempt=(\d+) rc=(-?\d+) sig=(\d+) timeout=(\d) secs=([\d.]+)")
_NOTRUN = re.compile(r"^### NOTRUN (\d+) (\w+)")
_DONE = re.compile(r"^### SELFTESTS done secs=([\d.]+)")
_RESULT = re.compile(r"^(not )?ok \d+\b ?(?:- )?(.*)$")
_DIRECTIVE = re.compile(r"#\s*(SKIP|TODO|XFAIL|XPASS|error)\b", re.I)


@dataclass
class Attempt:
    n: int
    attempt: int
    outcome: str = "crash"  # pass | skip | fail | timeout | crash (no END line: the kernel or the VM died)
    rc: int | None = None
    signal: int = 0
    seconds: float = 0.0
    ok: int = 0
    fail: int = 0
    skip: int = 0
    xfail: int = 0
    failing: list[str] = field(default_factory=list)  # the "not ok" lines
    lines: int = 0  # console lines inside the frame (where a finding was printed: see Console.findings)
    start: int = 0  # index of the BEGIN line in the console


@dataclass
class Run:
    attempts: list[Attempt] = field(default_factory=list)
    not_run: dict[int, str] = field(default_factory=dict)  # n -> why (budget)
    done: bool = False  # the runner finished the plan
    seconds: float = 0.0
    started: bool = False


def user_part(line: str) -> str:
    """A console line without the kernel messages the serial console put into it."""
    m = _KTIME.search(line)
    return line if m is None else line[: m.start()]


def _count(a: Attempt, line: str) -> None:
    m = _RESULT.match(line)
    if not m:
        return
    d = _DIRECTIVE.search(m.group(2))
    kind = d.group(1).lower() if d else ""
    if kind == "error" or (m.group(1) and kind not in ("skip", "todo", "xfail")):
        a.fail += 1
        if len(a.failing) < 20:
            a.failing.append(line[:300])
    elif kind == "skip":
        a.skip += 1
    elif kind == "xfail":
        a.xfail += 1
    else:
        a.ok += 1


def _close(a: Attempt, m: re.Match[str]) -> None:
    a.rc, a.signal, timed_out, a.seconds = int(m.group(3)), int(m.group(4)), m.group(5) == "1", float(m.group(6))
    if timed_out:
        a.outcome = "timeout"
    elif a.signal:
        a.outcome = "crash"
    else:
        a.outcome = {0: "pass", 4: "skip"}.get(a.rc, "fail")


def parse(lines: list[str]) -> Run:
    """lines: the console, cleaned (bot.boot.console.clean_lines), timestamps kept."""
    run = Run()
    cur: Attempt | None = None
    for i, raw in enumerate(lines):
        if _KTIME.match(raw.lstrip()):
            continue  # a kernel line
        line = user_part(raw).strip()
        if line.startswith("### SELFTESTS begin"):
            run.started = True
        elif m := _BEGIN.match(line):
            cur = Attempt(int(m.group(1)), int(m.group(2)), start=i)
            run.attempts.append(cur)
        elif (m := _END.match(line)) and cur is not None and int(m.group(1)) == cur.n:
            _close(cur, m)
            cur.lines = i - cur.start
            cur = None
        elif m := _NOTRUN.match(line):
            run.not_run[int(m.group(1))] = m.group(2)
        elif m := _DONE.match(line):
            run.done, run.seconds = True, float(m.group(1))
        elif cur is not None:
            _count(cur, line)
    if cur is not None:  # still running when the console ended
        cur.lines = len(lines) - cur.start
    return run


def running_at(run: Run, index: int) -> Attempt | None:
    """The attempt whose frame holds console line `index` (for a kernel finding printed there)."""
    for a in run.attempts:
        if a.start <= index <= a.start + a.lines:
            return a
    return None
