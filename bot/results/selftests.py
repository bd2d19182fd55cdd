"""What the boot stage ran of the mm selftests: stages.selftests.<arch> (the build stage's record of building
them, SelftestsBuild, is in stages.py beside BuildResult)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bot.results.records import Record
from bot.results.stages import StageResult

# pass: exit 0; skip: exit 4 (KSFT_SKIP); fail: any other exit; timeout: killed at its timeout; crash: killed by
# a signal, or the kernel died while it ran; not_run: never started (the budget, or the VM died before);
# not_built: its binary did not build; missing: not in this tree's selftests Makefile (deleted or renamed).
TestOutcome = Literal["pass", "skip", "fail", "timeout", "crash", "not_run", "not_built", "missing"]
FAILING: tuple[str, ...] = ("fail", "timeout", "crash")


@dataclass
class SelftestRun(Record):
    """One selftest command (a binary and its arguments) in one boot, with its reruns."""

    name: str  # the command as run: "uffd-unit-tests -f zeropage"
    result: TestOutcome
    ok: int = 0  # TAP subtests of the last attempt
    fail: int = 0
    skip: int = 0
    xfail: int = 0
    seconds: float = 0.0  # the first attempt, guest clock
    attempts: list[str] = field(default_factory=list)  # each attempt's outcome, in order
    failing: list[str] = field(default_factory=list)  # the "not ok" lines of the first failing attempt
    detail: str = ""  # why (timeout after N s, signal N, the kernel died: its first line, not built: error)
    excerpt: str = ""  # the console around a crash
    reproduce: str = ""  # how to run it by hand in a VM with this kernel
    why: str = ""  # default | touched (the revision changes its source) | for <file> | full
    base: str | None = None  # its outcome on the base kernel (None: not run there)


@dataclass
class SelftestsResult(StageResult):
    verdict: str | None = None  # pass | fail
    set: str | None = None  # default | full
    tests: list[SelftestRun] | None = None
    new_failures: list[str] | None = None  # fail on every attempt here, pass or skip on the base
    preexisting: list[str] | None = None  # fail on the base too: never blamed on the series
    flaky: list[str] | None = None  # failed, then passed on a rerun
    not_built: list[str] | None = None
    log: str | None = None
    seconds: float | None = None  # guest seconds of all the tests
    base_note: str | None = None
