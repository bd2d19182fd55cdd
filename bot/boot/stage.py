"""Judging a boot: stages.boot.<arch> (did the kernel reach userspace) and stages.stress.<arch> (did the
reclaim scenarios pass, with no kernel finding the base kernel does not show too).

- boot: ok = the stress /init started; failed = it did not (panic/oops at boot, QEMU error); error = QEMU
  was killed at the wall-clock timeout ("timeout" in the detail and `boot_status`), or the VM could not be
  started (missing QEMU binary/firmware), or the guest's page size (`page_size`, printed by the stress init)
  is not the one the arch or build variant is for (bot/arches.py: the kernel is not the one claimed).
- stress: ok = RESULT: PASS and no new finding; failed = a scenario failed, the VM died or hung before
  RESULT, or a new finding; skipped = no userspace.
The base kernel is booted once the same way (cached by arch, base, config and stress settings), so a finding
it shows too is marked pre-existing and does not fail the verdict.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from bot import repo
from bot.arches import ARCHES
from bot.boot import console, selftests, stress
from bot.boot.selftests import SelftestsBoot, outcome, plan, tap
from bot.boot.vm import Boot, boot_kernel, stress_settings
from bot.config import Config
from bot.results import (
    FAILING,
    BootResult,
    Outputs,
    SelftestRun,
    SelftestsBuild,
    SelftestsResult,
    StageContext,
    StressResult,
    write_json_atomic,
)

BASE_FORMAT = 2  # bump when the cached base-boot format changes


def boot_result(b: Boot, base: set[str] | None) -> BootResult:
    """stages.boot.<arch>: marks each finding pre-existing when the base kernel showed it too."""
    for f in b.con.findings:
        f.preexisting = None if base is None else f.fingerprint in base
    res = BootResult("ok", "", accel=b.accel, command=b.command_line, log=str(b.log),
                     seconds=b.run.seconds if b.run else 0.0, findings=list(b.con.findings),
                     page_size=b.con.page_size)
    if b.accel == "tcg":
        res.accel_note = "KVM not usable here (/dev/kvm missing or no vmx/svm): TCG emulation"
    if b.error:
        res.status, res.detail, res.boot_status = "error", b.error, "failed"
    elif b.run is not None and b.run.timed_out:
        where = f" (hung in scenario {b.con.running})" if b.con.running else ""
        res.status, res.boot_status = "error", "timeout"
        res.detail = f"timeout: QEMU killed after {b.run.seconds:.0f}s{where}; last line: {b.con.last_line[:160]}"
    elif not b.con.userspace:
        first = b.con.findings[0].first_line if b.con.findings else b.con.last_line[:160]
        res.status, res.detail, res.boot_status = "failed", f"no userspace: {first}", "failed"
    else:
        assert b.run is not None
        pages = f"; {b.con.page_size >> 10} KiB pages" if b.con.page_size and b.con.page_size != 4096 else ""
        res.detail, res.boot_status = f"booted to userspace ({b.accel}, {b.run.seconds:.0f}s to result{pages})", "ok"
    return res


def check_page_size(res: BootResult, arch: str) -> BootResult:
    """An error when the guest's page size is not the one `arch` is for (a variant's fragment lost)."""
    want = ARCHES[arch].page_size if arch in ARCHES else None
    if res.status == "ok" and want and res.page_size and res.page_size != want:
        res.status = "error"
        res.detail = (f"the guest runs with {res.page_size}-byte pages, not the {want} bytes {arch} is built for "
                      f"(its kernel config is not the one claimed; {res.detail})")
    return res


def stress_result(b: Boot) -> StressResult:
    """stages.stress.<arch>: verdict from the STRESS/RESULT lines plus new kernel findings."""
    con = b.con
    if b.run is None or not con.userspace:
        return StressResult("skipped", "not run: " + ("the VM did not start" if b.run is None else "no userspace"))
    failing = [s.name for s in con.scenarios if s.verdict == "fail"]
    new = [f for f in con.findings if f.preexisting is not True and f.selftest is None]  # a selftest's: its stage
    problems = [f"{s.name} FAIL: {s.detail[:200]}" for s in con.scenarios if s.verdict == "fail"]
    problems += [f"{f.kind}: {f.first_line[:120]}" + (f" (during {f.scenario})" if f.scenario else "") for f in new]
    if con.result is None:
        problems.append(f"no RESULT line ({'timeout' if b.run.timed_out else 'VM died'}"
                        + (f" in {con.running})" if con.running else ")"))
        if con.running and con.running not in failing:
            failing.append(con.running)
    ok = not problems and con.result == "pass"
    res = StressResult("ok", f"{len(con.scenarios)} scenarios passed", verdict="pass" if ok else "fail",
                       scenarios=list(con.scenarios), failing=failing)
    if not ok:
        res.status, res.detail = "failed", "; ".join(problems) or "RESULT: FAIL"
    return res


# ---------------------------------------------------------------- base kernel (pre-existing findings)


@dataclass
class BaseRun:
    """What the base kernel showed: its findings' fingerprints and its outcome of each selftest run on it."""

    fingerprints: set[str]
    tests: dict[str, SelftestRun] | None  # None: its selftests were not run (not built, or [selftests] off)


def base_cache_path(config: Config, arch: str, base: str, key: str) -> Path:
    return config.cache / "boot" / "base" / f"{arch}-{base}-{key}-v{BASE_FORMAT}.json"


def base_key(config: Config, config_hash: str) -> str:
    """What the base boot's findings depend on: kernel config, stress program and settings, VM and cmdline,
    the selftests runner, how it runs a test and the settings around tests."""
    s = config.selftests
    parts = [config_hash, stress.source_hash(""), json.dumps(stress_settings(config), sort_keys=True),
             config.boot.cmdline, str(config.boot.memory_mib), str(config.boot.smp),
             stress.source_hash("", selftests.RUNNER), str(s.timeout_s), str(s.reruns),
             json.dumps(plan.AROUND, sort_keys=True)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def base_run(config: Config, arch: str, base: str | None, image: str | None, key: str, work: Path,
             tests: SelftestsBuild | None, names: list[tuple[str, str]]) -> BaseRun | None:
    """The base kernel's findings and selftest outcomes, booted once per arch+base+config (cached; the tests
    a revision wants that the cache lacks are run in one more boot, without the stress scenarios, and
    added). None if the base image is not there or its boot did not finish."""
    if not base or not image or not Path(image).exists():
        return None
    path = base_cache_path(config, arch, base, key)
    data = json.loads(path.read_text()) if path.exists() else None
    runnable = [(n, w) for n, w in names if tests is not None and not tests.error and n.split()[0] in tests.built]
    known: dict[str, dict[str, object]] = (data or {}).get("selftests", {}).get(tests.key, {}) if tests else {}
    todo = [(n, w) for n, w in runnable if n not in known]
    if data is None or todo:
        plan = _boot_plan(config, tests, todo, {n: config.selftests.reruns for n, _ in todo},
                          config.selftests.full_budget_s) if tests and todo else None
        settings = None if data is None else {**stress_settings(config), "scenarios": ""}
        b = boot_kernel(config, arch, Path(image), work / f"boot-base-{arch}.log", work, plan, settings)
        if b.error or b.run is None or b.run.timed_out:
            return None
        data = data or {"base": base, "arch": arch, "fingerprints": [], "selftests": {}}
        data["fingerprints"] = sorted(set(data["fingerprints"]) | {f.fingerprint for f in b.con.findings})
        if plan is not None and tests is not None:
            parsed = tap.parse(console.clean_lines(b.run.console))
            ran = outcome.runs(parsed, plan.plan, b.con.findings, "" if parsed.done else "the base VM stopped")
            data.setdefault("selftests", {}).setdefault(tests.key, {}).update(
                {r.name: r.to_json() for r in ran if r.result != "not_run"})
            known = data["selftests"][tests.key]
        write_json_atomic(path, data)
    runs = {n: SelftestRun.from_json(known[n]) for n, _ in runnable if n in known} if tests else None
    return BaseRun(set(data["fingerprints"]), runs)


def _boot_plan(config: Config, tests: SelftestsBuild | None, names: list[tuple[str, str]], reruns: dict[str, int],
               budget: float) -> SelftestsBoot | None:
    """The selftests part of a boot: the commands whose binary `tests` has (None: nothing to run)."""
    if tests is None or tests.error:
        return None
    entries = plan.entries([(n, w) for n, w in names if n.split()[0] in tests.built], reruns)
    if not entries:
        return None
    return SelftestsBoot(entries, plan.plan_text(config, entries, budget), Path(tests.dir), budget,
                         config.selftests.timeout_s)


# ---------------------------------------------------------------- the selftests of one boot


def selftests_result(config: Config, b: Boot | None, boot: SelftestsBoot | None, wanted: list[tuple[str, str]],
                     built: SelftestsBuild | None, base: BaseRun | None, base_built: SelftestsBuild | None
                     ) -> SelftestsResult:
    """stages.selftests.<arch> of a revision's boot (b None: not booted)."""
    if not config.selftests.enabled:
        return SelftestsResult("skipped", "not run: [selftests] enabled = false")
    if built is None or built.error:
        return SelftestsResult("error" if built else "skipped",
                               f"not run: the selftests did not build: {built.error}" if built else "not run: no build")
    if b is None or b.run is None or not b.con.userspace:
        return SelftestsResult("skipped", "not run: " + ("the VM did not start" if b is None or b.run is None
                                                         else "no userspace"))
    missing, notes = outcome.unbuilt(wanted, built, base_built)
    if boot is None and not missing:  # never "PASS" about nothing
        return SelftestsResult("skipped", "not run: none of the selftests asked for is built for this arch"
                               + (f" ({', '.join(notes)[:200]})" if notes else ""))
    tests: list[SelftestRun] = []
    parsed = tap.parse(console.clean_lines(b.run.console))
    if boot is not None:
        died = "" if parsed.done else ("QEMU killed at the deadline" if b.run.timed_out else
                                       next((f.first_line[:160] for f in b.con.findings), "the VM stopped"))
        tests = outcome.runs(parsed, boot.plan, b.con.findings, died)
    new_findings = [f for f in b.con.findings if f.selftest and f.preexisting is not True]
    res = outcome.compare(tests + missing, base.tests if base else None, base_built, new_findings)
    res.set = "full" if boot and any(e.why == "full" for e in boot.plan) else "default"
    res.log = str(b.log)
    res.seconds = parsed.seconds or res.seconds
    if base is None or base.tests is None:
        res.base_note = "base kernel's selftests not run: failures are not checked against it"
    if notes:
        res.extra["not_for_arch"] = notes
    return res


# ---------------------------------------------------------------- runner


def revision_plan(config: Config, tests: SelftestsBuild | None, wanted: list[tuple[str, str]],
                  base: BaseRun | None) -> SelftestsBoot | None:
    """A revision's selftests boot: reruns for the failures the base does not show (none for a test the base
    fails already), the default or the full budget."""
    reruns = {n: 0 if base and base.tests and n in base.tests and base.tests[n].result in FAILING
              else config.selftests.reruns for n, _ in wanted}
    budget = config.selftests.full_budget_s if config.selftests.full else config.selftests.budget_s
    return _boot_plan(config, tests, wanted, reruns, budget)


def _touched(ctx: StageContext) -> list[str]:
    """The files the revision changes (its selftests run first)."""
    applied, base = ctx.revision.stages.apply, ctx.revision.base.commit
    if not base or not applied.branch:
        return []
    return repo.changed_files(Path(ctx.config.paths.kernel_tree), base, applied.branch)


def run_stage(ctx: StageContext) -> Outputs:
    """Boot + stress + selftests each arch whose build is ok: stages.boot, .stress and .selftests.<arch>."""
    boots: dict[str, BootResult] = {}
    stresses: dict[str, StressResult] = {}
    tests: dict[str, SelftestsResult] = {}
    config = ctx.config
    touched = _touched(ctx) if config.selftests.enabled else []
    for arch in ctx.arches:
        built = ctx.revision.stages.build.get(arch)
        if built is None or built.status != "ok" or not built.image or not Path(built.image).exists():
            why = "no build" if built is None else f"build {built.status}" if built.status != "ok" else "no image"
            boots[arch], stresses[arch] = BootResult("skipped", f"not run: {why}"), StressResult(
                "skipped", f"not run: {why}")
            tests[arch] = SelftestsResult("skipped", f"not run: {why}")
            continue
        work = ctx.rdir / "boot"
        mine = built.selftests if config.selftests.enabled else None
        wanted = plan.wanted(config, arch, touched, mine.wanted, full=config.selftests.full) \
            if mine and not mine.error else []
        # the base first (cached): its outcomes decide which failures here get reruns
        key = base_key(config, built.config_hash or "")
        base = base_run(config, arch, ctx.revision.base.commit, built.base_image, key, work,
                        built.base_selftests if mine else None, wanted)
        sboot = revision_plan(config, mine, wanted, base)
        b = boot_kernel(config, arch, Path(built.image), ctx.rdir / "logs" / f"boot-{arch}.log", work, sboot)
        # a base image is only there if the build stage kept one; else preexisting stays None
        boots[arch] = check_page_size(boot_result(b, base.fingerprints if base else None), arch)
        if base is None:
            boots[arch].base_note = "base kernel not booted (no base image): findings not checked against it"
        stresses[arch] = stress_result(b)
        tests[arch] = selftests_result(config, b, sboot, wanted, mine, base, built.base_selftests)
    return {"boot": boots, "stress": stresses, "selftests": tests}
