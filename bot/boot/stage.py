"""Judging a boot: stages.boot.<arch> (did the kernel reach userspace) and stages.stress.<arch> (did the
reclaim scenarios pass, with no kernel finding the base kernel does not show too).

- boot: ok = the stress /init started; failed = it did not (panic/oops at boot, QEMU error); error = QEMU
  was killed at the wall-clock timeout ("timeout" in the detail and `boot_status`), or the VM could not be
  started (missing QEMU binary/firmware).
- stress: ok = RESULT: PASS and no new finding; failed = a scenario failed, the VM died or hung before
  RESULT, or a new finding; skipped = no userspace.
The base kernel is booted once the same way (cached by arch, base, config and stress settings), so a finding
it shows too is marked pre-existing and does not fail the verdict.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bot.boot import stress
from bot.boot.vm import Boot, boot_kernel, stress_settings
from bot.config import Config
from bot.results import BootResult, Outputs, StageContext, StressResult

BASE_FORMAT = 1  # bump when the cached base-boot format changes


def boot_result(b: Boot, base: set[str] | None) -> BootResult:
    """stages.boot.<arch>: marks each finding pre-existing when the base kernel showed it too."""
    for f in b.con.findings:
        f.preexisting = None if base is None else f.fingerprint in base
    res = BootResult("ok", "", accel=b.accel, command=b.command_line, log=str(b.log),
                     seconds=b.run.seconds if b.run else 0.0, findings=list(b.con.findings))
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
        res.detail, res.boot_status = f"booted to userspace ({b.accel}, {b.run.seconds:.0f}s to result)", "ok"
    return res


def stress_result(b: Boot) -> StressResult:
    """stages.stress.<arch>: verdict from the STRESS/RESULT lines plus new kernel findings."""
    con = b.con
    if b.run is None or not con.userspace:
        return StressResult("skipped", "not run: " + ("the VM did not start" if b.run is None else "no userspace"))
    failing = [s.name for s in con.scenarios if s.verdict == "fail"]
    new = [f for f in con.findings if f.preexisting is not True]
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


def base_cache_path(config: Config, arch: str, base: str, key: str) -> Path:
    return config.cache / "boot" / "base" / f"{arch}-{base}-{key}-v{BASE_FORMAT}.json"


def base_key(config: Config, config_hash: str) -> str:
    """What the base boot's findings depend on: kernel config, stress program and settings, VM and cmdline."""
    parts = [config_hash, stress.source_hash(""), json.dumps(stress_settings(config), sort_keys=True),
             config.boot.cmdline, str(config.boot.memory_mib), str(config.boot.smp)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def base_fingerprints(config: Config, arch: str, base: str | None, image: str | None, key: str,
                      work: Path) -> set[str] | None:
    """Fingerprints the base kernel shows, booted once per arch+base+config (cached); None if unknown."""
    if not base or not image or not Path(image).exists():
        return None
    path = base_cache_path(config, arch, base, key)
    if path.exists():
        return set(json.loads(path.read_text())["fingerprints"])
    b = boot_kernel(config, arch, Path(image), work / f"boot-base-{arch}.log", work)
    if b.error or b.run is None or b.run.timed_out:
        return None
    prints = sorted({f.fingerprint for f in b.con.findings})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"base": base, "arch": arch, "fingerprints": prints}) + "\n")
    return set(prints)


# ---------------------------------------------------------------- runner


def run_stage(ctx: StageContext) -> Outputs:
    """Boot + stress each arch whose build is ok: stages.boot.<arch> and stages.stress.<arch>."""
    boots: dict[str, BootResult] = {}
    stresses: dict[str, StressResult] = {}
    for arch in ctx.arches:
        built = ctx.revision.stages.build.get(arch)
        if built is None or built.status != "ok" or not built.image or not Path(built.image).exists():
            why = "no build" if built is None else f"build {built.status}" if built.status != "ok" else "no image"
            boots[arch], stresses[arch] = BootResult("skipped", f"not run: {why}"), StressResult(
                "skipped", f"not run: {why}")
            continue
        work = ctx.rdir / "boot"
        b = boot_kernel(ctx.config, arch, Path(built.image), ctx.rdir / "logs" / f"boot-{arch}.log", work)
        # a base image is only there if the build stage kept one; else preexisting stays None
        key = base_key(ctx.config, built.config_hash or "")
        base = base_fingerprints(ctx.config, arch, ctx.revision.base.commit, built.base_image, key, work)
        boots[arch] = boot_result(b, base)
        if base is None:
            boots[arch].base_note = "base kernel not booted (no base image): findings not checked against it"
        stresses[arch] = stress_result(b)
    return {"boot": boots, "stress": stresses}
