"""Boot + stress stage: boot each built kernel in QEMU with the stress initramfs and judge the console.

Per arch it stores two results:
- stages.boot.<arch>: did the kernel reach userspace. ok = the stress /init started; failed = it did not
  (panic/oops at boot, QEMU error); error = QEMU was killed at the wall-clock timeout ("timeout" in the
  detail and `boot_status`), or the VM could not be started (missing QEMU binary/firmware).
  extra: boot_status (ok|failed|timeout), findings, seconds, accel, command, log.
- stages.stress.<arch>: ok = RESULT: PASS and no kernel finding the base kernel does not show too;
  failed = a scenario failed, the VM died or hung before RESULT, or a new finding; skipped = no userspace.
  extra: verdict (pass|fail), scenarios [{name, verdict, detail}], failing.

QEMU is called here and only here, always with a timeout and in bwrap (bot.sandbox: the kernel is the series'
code); the whole console goes to logs/boot-<arch>.log.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import console, sandbox, stress
from bot.config import Config
from bot.results import RevisionResult, StageResult, revision_dir
from bot.tree import cache_dir

log = logging.getLogger(__name__)

RESULT_GRACE = 20.0  # seconds QEMU may take to exit after RESULT: before it is killed
POLL = 0.25
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
BASE_FORMAT = 1  # bump when the cached base-boot format changes


@dataclass(frozen=True)
class ArchQemu:
    binary: str
    package: str  # Debian package that has the binary
    console: str
    machine: list[str]


QEMU = {
    "x86_64": ArchQemu("qemu-system-x86_64", "qemu-system-x86", "ttyS0", ["-M", "pc"]),
    # pauth-impdef: QEMU's cheap pointer-auth hash; the architected one dominates TCG time on arm64
    "arm64": ArchQemu("qemu-system-aarch64", "qemu-system-arm", "ttyAMA0",
                      ["-M", "virt", "-cpu", "max,pauth-impdef=on"]),
}
FIRMWARE_HINTS = ("could not load", "bios", "firmware", "rom")


@dataclass
class QemuRun:
    seconds: float
    timed_out: bool
    returncode: int | None
    console: str
    stopped_after_result: bool = False  # QEMU did not exit by itself after RESULT: and was killed


def cpu_has_virt(cpuinfo: str | None = None) -> bool:
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = {w for line in cpuinfo.splitlines() if line.startswith("flags") for w in line.split()}
    return bool(flags & {"vmx", "svm"})


def kvm_usable() -> bool:
    """True only with vmx/svm and a /dev/kvm that can create a VM: the node alone is not enough (seen here:
    /dev/kvm opens and KVM_CREATE_VM works without vmx/svm, then QEMU aborts setting MSRs)."""
    if not cpu_has_virt():
        return False
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if fcntl.ioctl(fd, KVM_GET_API_VERSION, 0) != 12:
            return False
        vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        os.close(vm)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def choose_accel(arch: str, wanted: str) -> str:
    """KVM only for x86_64 (the host arch) when it really works; TCG otherwise."""
    if arch != "x86_64" or wanted == "tcg":
        return "tcg"
    return "kvm" if kvm_usable() else "tcg"


def qemu_binary(config: Config, arch: str) -> str:
    return config.boot.qemu_x86_64 if arch == "x86_64" else config.boot.qemu_arm64


def qemu_command(config: Config, arch: str, kernel: Path, initrd: Path, accel: str) -> list[str]:
    q = QEMU[arch]
    cmdline = f"console={q.console} panic=-1 oops=panic loglevel=7 rdinit=/init {config.boot.cmdline}".strip()
    accel_args = ["-accel", "kvm", "-cpu", "host"] if accel == "kvm" else ["-accel", "tcg"]
    if arch == "arm64":
        accel_args = ["-accel", "tcg"]  # -cpu max is in the machine args
    return [
        qemu_binary(config, arch), *q.machine, *accel_args,
        "-smp", str(config.boot.smp), "-m", f"{config.boot.memory_mib}M",
        "-nographic", "-no-reboot", "-nic", "none",
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline,
    ]  # fmt: skip


def qemu_sandboxed(cmd: list[str], files: list[Path], accel: str) -> list[str]:
    """`cmd` inside bwrap: no network, nothing writable, only /usr, /etc, the `files` (absolute paths, as `cmd`
    names them: kernel and initramfs) and /dev/kvm for KVM. The console is QEMU's stdout, a file we opened
    outside."""
    exe = shutil.which(cmd[0]) or cmd[0]
    binds = [sandbox.Bind(f, str(f)) for f in files]
    if not Path(exe).resolve().is_relative_to("/usr"):
        binds.append(sandbox.Bind(Path(exe).resolve(), exe))
    box = sandbox.Sandbox(binds=binds, env={"PATH": "/usr/bin:/bin"}, memory_max=0,
                          devices=["/dev/kvm"] if accel == "kvm" else [])
    return sandbox.bwrap_args(box) + ["--", exe, *cmd[1:]]


def run_qemu(cmd: list[str], log_path: Path, timeout: float) -> QemuRun:
    """Run QEMU (the sandboxed command) with the console to log_path; kill its process group at the timeout
    (bwrap leads the group; --die-with-parent takes QEMU with it), log kept."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    timed_out = stopped = False
    result_seen: float | None = None
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        while proc.poll() is None:
            now = time.monotonic()
            if now - t0 > timeout:
                timed_out = True
                break
            if result_seen is None and b"RESULT: " in log_path.read_bytes()[-4096:]:
                result_seen = now
            if result_seen is not None and now - result_seen > RESULT_GRACE:
                stopped = True
                break
            time.sleep(POLL)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    text = log_path.read_bytes().decode("utf-8", errors="replace")
    return QemuRun(round(time.monotonic() - t0, 1), timed_out, proc.returncode, text, stopped)


def stress_settings(config: Config) -> dict[str, str | int]:
    s = config.stress
    return {
        "scenarios": ",".join(s.scenarios), "scenario_timeout": s.scenario_timeout,
        "lazyfree_mib": s.lazyfree_mib, "memcg_mib": s.memcg_mib, "swap_mib": s.swap_mib,
        "memcg_max_mib": s.memcg_max_mib, "zram_mib": s.zram_mib,
        "crossing_rounds": s.crossing_rounds, "crossing_slots": s.crossing_slots,
    }  # fmt: skip


def boot_timeout(config: Config, arch: str) -> float:
    t = config.boot.timeout_x86_64 if arch == "x86_64" else config.boot.timeout_arm64
    return t * (config.boot.kasan_timeout_factor if config.build.kasan else 1.0)


@dataclass
class Boot:
    """Everything one boot produced, before it is turned into stage results."""

    run: QemuRun | None
    con: console.Console
    command: list[str]
    accel: str
    log: Path
    error: str = ""  # the VM could not be started at all


def boot_kernel(config: Config, arch: str, kernel: Path, log_path: Path, work: Path) -> Boot:
    """Build (cached) the stress init, write the initramfs, boot, parse. Never raises for a bad kernel."""
    accel = choose_accel(arch, config.boot.accel)
    binary = qemu_binary(config, arch)
    cc = config.stress.cc_x86_64 if arch == "x86_64" else config.stress.cc_arm64
    empty = console.Console()
    if shutil.which(binary) is None:
        return Boot(None, empty, [binary], accel, log_path,
                    f"{binary} not found (Debian: apt install {QEMU[arch].package})")
    if not kernel.is_file():
        return Boot(None, empty, [binary], accel, log_path, f"kernel image {kernel} not found")
    kernel = kernel.resolve()  # QEMU runs in the sandbox, where the image is bound at its absolute path
    try:
        init = stress.build_init(arch, cc, cache_dir())
    except stress.StressBuildError as e:
        return Boot(None, empty, [], accel, log_path, str(e))
    initrd = stress.make_initramfs(init, stress_settings(config), work.resolve() / f"stress-{arch}.cpio")

    def start(accel: str) -> tuple[list[str], QemuRun]:
        cmd = qemu_command(config, arch, kernel, initrd, accel)
        return cmd, run_qemu(qemu_sandboxed(cmd, [kernel, initrd], accel), log_path, boot_timeout(config, arch))

    cmd, run = start(accel)
    if accel == "kvm" and run.returncode not in (0, None) and "kvm" in run.console.lower() and "Linux version" \
            not in run.console:
        log.warning("%s: KVM start failed (%s); retrying with TCG", arch, run.console.strip()[-200:])
        accel = "tcg"
        cmd, run = start(accel)
    con = console.parse(run.console)
    error = ""
    if not con.userspace and run.returncode not in (0, None) and not run.timed_out and not con.findings:
        lines = [ln for ln in console.clean_lines(run.console) if ln.strip()]
        tail = lines[-1] if lines else "(no output)"
        hint = f" (firmware missing? Debian: apt install {QEMU[arch].package})" if any(
            h in tail.lower() for h in FIRMWARE_HINTS) else ""
        error = f"{binary} exited {run.returncode} before the kernel ran: {tail}{hint}"
    return Boot(run, con, cmd, accel, log_path, error)


def boot_result(b: Boot, base: set[str] | None) -> StageResult:
    """stages.boot.<arch>: marks each finding pre-existing when the base kernel showed it too."""
    for f in b.con.findings:
        f.preexisting = None if base is None else f.fingerprint in base
    extra: dict[str, Any] = {
        "accel": b.accel, "command": shlex.join(b.command), "log": str(b.log),
        "seconds": b.run.seconds if b.run else 0.0,
        "findings": [f.to_json() for f in b.con.findings],
    }  # fmt: skip
    if b.accel == "tcg":
        extra["accel_note"] = "KVM not usable here (/dev/kvm missing or no vmx/svm): TCG emulation"
    if b.error:
        extra["boot_status"] = "failed"
        return StageResult("error", b.error, extra)
    assert b.run is not None
    if b.run.timed_out:
        extra["boot_status"] = "timeout"
        where = f" (hung in scenario {b.con.running})" if b.con.running else ""
        return StageResult("error", f"timeout: QEMU killed after {b.run.seconds:.0f}s{where}; "
                           f"last line: {b.con.last_line[:160]}", extra)
    if not b.con.userspace:
        extra["boot_status"] = "failed"
        first = b.con.findings[0].first_line if b.con.findings else b.con.last_line[:160]
        return StageResult("failed", f"no userspace: {first}", extra)
    extra["boot_status"] = "ok"
    return StageResult("ok", f"booted to userspace ({b.accel}, {b.run.seconds:.0f}s to result)", extra)


def stress_result(b: Boot) -> StageResult:
    """stages.stress.<arch>: verdict from the STRESS/RESULT lines plus new kernel findings."""
    con = b.con
    if b.run is None or not con.userspace:
        return StageResult("skipped", "not run: " + ("the VM did not start" if b.run is None else "no userspace"))
    scen = [{"name": s.name, "verdict": s.verdict, "detail": s.detail} for s in con.scenarios]
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
    extra = {"verdict": "pass" if ok else "fail", "scenarios": scen, "failing": failing}
    if ok:
        return StageResult("ok", f"{len(scen)} scenarios passed", extra)
    return StageResult("failed", "; ".join(problems) or "RESULT: FAIL", extra)


# ---------------------------------------------------------------- base kernel (pre-existing findings)


def base_cache_path(arch: str, base: str, key: str) -> Path:
    return cache_dir() / "boot" / "base" / f"{arch}-{base}-{key}-v{BASE_FORMAT}.json"


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
    path = base_cache_path(arch, base, key)
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


def run_stage(config: Config, series: dict[str, Any], result: RevisionResult, results: list[RevisionResult],
              arches: list[str]) -> None:
    """Boot + stress each arch whose build is ok; fills stages.boot.<arch> and stages.stress.<arch>."""
    rdir = revision_dir(config.paths.patchsets, series["slug"], result.version)
    for arch in arches:
        built = result.stage("build", arch)
        image = built.extra.get("image") if built else None
        if built is None or built.status != "ok" or not image or not Path(image).exists():
            why = "no build" if built is None else f"build {built.status}" if built.status != "ok" else "no image"
            result.set_stage("boot", StageResult("skipped", f"not run: {why}"), arch=arch)
            result.set_stage("stress", StageResult("skipped", f"not run: {why}"), arch=arch)
            continue
        log_path = rdir / "logs" / f"boot-{arch}.log"
        work = rdir / "boot"
        b = boot_kernel(config, arch, Path(image), log_path, work)
        # a base image is only there if the build stage keeps one (extra "base_image"); else preexisting=None
        key = base_key(config, str(built.extra.get("config_hash", "")))
        base = base_fingerprints(config, arch, result.base.commit, built.extra.get("base_image"), key, work)
        boot = boot_result(b, base)
        if base is None:
            boot.extra["base_note"] = "base kernel not booted (no base image): findings not checked against it"
        result.set_stage("boot", boot, arch=arch)
        result.set_stage("stress", stress_result(b), arch=arch)
