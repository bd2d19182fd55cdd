"""QEMU for one boot: the accelerator (KVM only where it really works), the command line, and the run itself —
in the sandbox (no network, nothing writable: the kernel is the series' code), with a wall-clock deadline,
the console appended to a log, and a stop shortly after the guest printed its RESULT: line.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from bot import proc
from bot.arches import ARCHES
from bot.config import Config

RESULT_GRACE = 20.0  # seconds QEMU may take to exit after RESULT: before it is killed
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01


@dataclass
class QemuRun:
    seconds: float
    timed_out: bool
    returncode: int | None
    console: str


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
    """KVM only for x86_64 (the host arch; its build variants too) when it really works; TCG otherwise."""
    if (ARCHES[arch].base if arch in ARCHES else arch) != "x86_64" or wanted == "tcg":
        return "tcg"
    return "kvm" if kvm_usable() else "tcg"


def qemu_command(config: Config, arch: str, kernel: Path, initrd: Path, accel: str) -> list[str]:
    a = ARCHES[arch]
    # dmapool_checks: DMAPOOL_TEST (compiled for coverage) times itself at every boot, 2x the boot under TCG.
    # printk.time: kernel lines are told from a selftest's output by their timestamp (selftests/tap.py).
    # numa=fake=2: two nodes for the selftests that migrate between nodes (NUMA_EMU; no ACPI/DT nodes here).
    cmdline = (f"console={a.console} panic=-1 oops=panic loglevel=7 rdinit=/init initcall_blacklist=dmapool_checks "
               f"printk.time=1 numa=fake=2 {tsc_hint(a.base, accel)}{config.boot.cmdline}").strip()
    accel_args = ["-accel", "kvm", "-cpu", "host"] if accel == "kvm" else ["-accel", "tcg"]
    if a.base == "arm64":
        accel_args = ["-accel", "tcg"]  # -cpu max is in the machine args
    return [
        config.arch_config(arch).qemu, *a.machine, *accel_args,
        "-smp", str(config.boot.smp), "-m", f"{config.boot.memory_mib}M",
        "-nographic", "-no-reboot", "-nic", "none",
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline,
    ]  # fmt: skip


def tsc_hint(arch: str, accel: str, cpuinfo: str | None = None) -> str:
    """x86_64 under TCG: `tsc_early_khz=<host TSC kHz> ` (the guest's TSC runs at the host's rate). Without ACPI
    or HPET the guest cannot calibrate it and keeps time with jiffies, which lose ticks on a loaded host
    (measured: guest time 1.7-2.6x slow, so in-guest timeouts stretch and clock_gettime users fail)."""
    if arch != "x86_64" or accel != "tcg":
        return ""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "cpu MHz":
            try:
                return f"tsc_early_khz={round(float(value) * 1000)} "
            except ValueError:
                return ""
    return ""


def sandbox_for(cmd: list[str], files: list[Path], accel: str) -> tuple[list[str], proc.Sandbox]:
    """(cmd with the binary resolved, the sandbox for it): no network, nothing writable, only /usr, /etc, the
    `files` (absolute paths, as `cmd` names them: kernel and initramfs) and /dev/kvm for KVM. The console is
    QEMU's stdout, a file opened outside."""
    exe = shutil.which(cmd[0]) or cmd[0]
    binds = [proc.Bind(f, str(f)) for f in files]
    if not Path(exe).resolve().is_relative_to("/usr"):
        binds.append(proc.Bind(Path(exe).resolve(), exe))
    box = proc.Sandbox(binds=binds, env={"PATH": "/usr/bin:/bin"}, memory_max=0,
                       devices=["/dev/kvm"] if accel == "kvm" else [])
    return [exe, *cmd[1:]], box


def run(cmd: list[str], files: list[Path], accel: str, log_path: Path, timeout: float,
        done: bytes = b"RESULT: ") -> QemuRun:
    """Boot with the console to log_path (truncated first); killed at the deadline or RESULT_GRACE after
    the guest printed `done` (the stress RESULT: line, or the selftests runner's last line), log kept."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_bytes(b"")
    argv, box = sandbox_for(cmd, files, accel)
    seen: list[float] = []

    def after_result() -> str:
        if not seen and done in _tail(log_path):
            seen.append(time.monotonic())
        return f"lingered after {done.decode().strip()}" if seen and time.monotonic() - seen[0] > RESULT_GRACE else ""

    out = proc.run(argv, timeout=timeout, log=log_path, sandbox=box, watch=after_result, grace=0)
    text = log_path.read_bytes().decode("utf-8", errors="replace")
    code = None if out.timed_out or out.stopped else out.returncode
    return QemuRun(round(out.seconds, 1), out.timed_out, code, text)


def _tail(path: Path, size: int = 4096) -> bytes:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - size))
        return f.read()
