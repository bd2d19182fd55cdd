"""stages.selftests.<arch> from one boot's console: each planned test's outcome over its attempts, then what
the revision adds, by comparison with the same tests on the base kernel.

- new failure: failed (fail, timeout or crash) on every attempt here, passed or skipped on the base;
- flaky: failed, then passed on a rerun (here or on the base): reported, never the series' bug;
- pre-existing: fails on the base too;
- not built: its binary did not build here (a finding when the base built it); missing: the base's selftests
  Makefile has it and this tree's does not (deleted or renamed), not a pass.
"""

from __future__ import annotations

from bot.boot.selftests import tap
from bot.boot.selftests.plan import Entry, reproduce
from bot.results import FAILING, Finding, SelftestRun, SelftestsBuild, SelftestsResult


def runs(parsed: tap.Run, plan: list[Entry], findings: list[Finding], died: str) -> list[SelftestRun]:
    """One SelftestRun per planned entry. died: why the console ended early ("" if the runner finished)."""
    out = []
    for e in plan:
        attempts = [a for a in parsed.attempts if a.n == e.n]
        r = SelftestRun(e.name, "not_run", why=e.why, reproduce=reproduce(e.name))
        if not attempts:
            why = parsed.not_run.get(e.n)
            r.detail = "not started: the budget was spent" if why == "budget" else (
                f"not started: {died or 'the runner stopped before it'}")
            out.append(r)
            continue
        first, last = attempts[0], attempts[-1]
        r.result = last.outcome  # type: ignore[assignment]  # tap's outcomes are TestOutcome's
        r.attempts = [a.outcome for a in attempts]
        r.ok, r.fail, r.skip, r.xfail = last.ok, last.fail, last.skip, last.xfail
        r.seconds = round(first.seconds, 1)
        bad = next((a for a in attempts if a.outcome in FAILING), None)
        if bad is not None:
            r.failing = list(bad.failing)
            r.detail = _why(bad, e, died)
            mine = [f for f in findings if f.selftest == e.name]
            if mine:
                r.excerpt = mine[0].excerpt
                r.detail += f"; kernel: {mine[0].first_line[:160]}"
        out.append(r)
    return out


def _why(a: tap.Attempt, e: Entry, died: str) -> str:
    if a.outcome == "timeout":
        return f"killed at its timeout after {a.seconds:.0f}s"
    if a.outcome == "crash" and a.rc is None:
        return f"the kernel died while it ran{': ' + died if died else ''}"
    if a.outcome == "crash":
        return f"killed by signal {a.signal}"
    return f"exit {a.rc}" + (f", {a.fail} failing subtest(s)" if a.fail else "")


def unbuilt(names: list[tuple[str, str]], built: SelftestsBuild, base: SelftestsBuild | None
            ) -> tuple[list[SelftestRun], list[str]]:
    """The wanted commands whose binary is not here: (their runs: not_built or missing, notes for the
    ones this arch never builds)."""
    out, notes = [], []
    base_wanted = set(base.wanted) if base else set()
    for name, why in names:
        binary = name.split()[0]
        if binary in built.built:
            continue
        if binary in built.not_built:
            out.append(SelftestRun(name, "not_built", why=why, detail=built.not_built[binary][:300]))
        elif binary in base_wanted:
            out.append(SelftestRun(name, "missing", why=why,
                                   detail="not in this tree's selftests Makefile (the base's has it)"))
        else:
            notes.append(name)
    return out, notes


def compare(tests: list[SelftestRun], base: dict[str, SelftestRun] | None, base_built: SelftestsBuild | None,
            findings: list[Finding] | None = None) -> SelftestsResult:
    """The stage result: each test against its base outcome (None: the base was not run). findings: the
    kernel's new reports printed while a test ran — that test's new failure even if it passed."""
    new, pre, flaky, not_built = [], [], [], []
    for t in tests:
        b = base.get(t.name) if base is not None else None
        t.base = b.result if b is not None else None
        base_flaky = b is not None and b.result not in FAILING and any(x in FAILING for x in b.attempts)
        if t.result in FAILING:
            if b is not None and b.result in FAILING:
                pre.append(t.name)
            elif base_flaky:
                flaky.append(t.name)
            else:
                new.append(t.name)
        elif any(x in FAILING for x in t.attempts):
            flaky.append(t.name)
        elif t.result in ("not_built", "missing"):
            was_built = base_built is not None and t.name.split()[0] in base_built.built
            not_built.append(t.name)
            if was_built or t.result == "missing":
                new.append(t.name)
    by_name = {t.name: t for t in tests}
    for f in findings or []:
        hit = by_name.get(f.selftest or "")
        if hit is not None and hit.name not in new:
            new.append(hit.name)
            hit.detail = (hit.detail + "; " if hit.detail else "") + f"kernel: {f.first_line[:160]}"
            hit.excerpt = hit.excerpt or f.excerpt
    ran = [t for t in tests if t.attempts]
    res = SelftestsResult("ok", "", tests=tests, new_failures=new, preexisting=pre, flaky=flaky,
                          not_built=not_built, seconds=round(sum(t.seconds for t in ran), 1))
    res.verdict = "fail" if new else "pass"
    counts = summary(tests)
    if new:
        res.status, res.detail = "failed", f"{len(new)} new failure(s): {', '.join(new)[:300]}; {counts}"
    else:
        res.detail = counts
    return res


def summary(tests: list[SelftestRun]) -> str:
    """"31 passed, 2 skipped, 1 flaky, 1 not run" — counts by outcome, in a fixed order."""
    order = ["pass", "skip", "fail", "timeout", "crash", "not_run", "not_built", "missing"]
    words = {"pass": "passed", "skip": "skipped", "fail": "failed", "timeout": "timed out", "crash": "crashed",
             "not_run": "not run", "not_built": "not built", "missing": "missing"}
    n = {k: sum(t.result == k for t in tests) for k in order}
    parts = [f"{n[k]} {words[k]}" for k in order if n[k]]
    reruns = sum(len(t.attempts) > 1 for t in tests)
    return ", ".join(parts or ["no tests"]) + (f" ({reruns} test{'s' if reruns != 1 else ''} rerun)" if reruns else "")
