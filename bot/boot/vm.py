"""One boot of one kernel: the stress init built (cached) and packed into an initramfs, QEMU started (KVM
falling back to TCG when KVM cannot start), the console parsed. Never raises for a bad kernel."""

from __future__ import annotations

import logging
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from bot.arches import ARCHES
from bot.boot import console, qemu, selftests, stress
from bot.boot.selftests import SelftestsBoot
from bot.config import Config

log = logging.getLogger(__name__)
FIRMWARE_HINTS = ("could not load", "bios", "firmware", "rom")


@dataclass
class Boot:
    """Everything one boot produced, before it is turned into stage results."""

    run: qemu.QemuRun | None
    con: console.Console
    command: list[str]
    accel: str
    log: Path
    error: str = ""  # the VM could not be started at all

    @property
    def command_line(self) -> str:
        return shlex.join(self.command)


def stress_settings(config: Config) -> dict[str, str | int]:
    s = config.stress
    return {
        "scenarios": ",".join(s.scenarios), "scenario_timeout": s.scenario_timeout,
        "lazyfree_mib": s.lazyfree_mib, "memcg_mib": s.memcg_mib, "swap_mib": s.swap_mib,
        "memcg_max_mib": s.memcg_max_mib, "zram_mib": s.zram_mib,
        "crossing_rounds": s.crossing_rounds, "crossing_slots": s.crossing_slots,
    }  # fmt: skip


def boot_timeout(config: Config, arch: str) -> float:
    """[arch.<name>] boot_timeout, times [boot] kasan_timeout_factor for a KASAN kernel."""
    t = config.arch_config(arch).boot_timeout
    kasan = config.build.kasan or (arch in ARCHES and ARCHES[arch].kasan)
    return t * (config.boot.kasan_timeout_factor if kasan else 1.0)


def boot_kernel(config: Config, arch: str, kernel: Path, log_path: Path, work: Path,
                tests: SelftestsBoot | None = None, settings: dict[str, str | int] | None = None) -> Boot:
    """Build (cached) the stress init (and the selftests runner when `tests`), write the initramfs, boot,
    parse. `settings` overrides the [stress] ones (a base boot for selftests only runs no scenario)."""
    accel = qemu.choose_accel(arch, config.boot.accel)
    binary = config.arch_config(arch).qemu
    empty = console.Console()
    if shutil.which(binary) is None:
        return Boot(None, empty, [binary], accel, log_path,
                    f"{binary} not found (Debian: apt install {ARCHES[arch].qemu_package})")
    if not kernel.is_file():
        return Boot(None, empty, [binary], accel, log_path, f"kernel image {kernel} not found")
    kernel = kernel.resolve()  # QEMU runs in the sandbox, where the image is bound at its absolute path
    real = ARCHES[arch].base  # a build variant boots its base arch's static programs
    cc = config.arch_config(real).stress_cc
    try:
        init = stress.build_init(real, cc, config.cache)
        extra = [] if tests is None else selftests.initramfs_entries(selftests.build_runner(real, cc, config.cache),
                                                                     tests)
    except stress.StressBuildError as e:
        return Boot(None, empty, [], accel, log_path, str(e))
    name = log_path.stem  # boot-x86_64, boot-base-arm64: one initramfs per boot of a revision dir
    initrd = stress.make_initramfs(init, settings or stress_settings(config), work.resolve() / f"{name}.cpio", extra)
    deadline = boot_timeout(config, arch) + (tests.deadline() if tests else 0.0)
    done = selftests.DONE if tests else b"RESULT: "

    def start(accel: str) -> tuple[list[str], qemu.QemuRun]:
        cmd = qemu.qemu_command(config, arch, kernel, initrd, accel)
        return cmd, qemu.run(cmd, [kernel, initrd], accel, log_path, deadline, done)

    cmd, run = start(accel)
    if accel == "kvm" and run.returncode not in (0, None) and "kvm" in run.console.lower() and "Linux version" \
            not in run.console:
        log.warning("%s: KVM start failed (%s); retrying with TCG", arch, run.console.strip()[-200:])
        accel = "tcg"
        cmd, run = start(accel)
    con = console.parse(run.console)
    initrd.unlink(missing_ok=True)  # tens of MB with the selftests; rebuilt from the caches for each boot
    error = ""
    if not con.userspace and run.returncode not in (0, None) and not run.timed_out and not con.findings:
        lines = [ln for ln in console.clean_lines(run.console) if ln.strip()]
        tail = lines[-1] if lines else "(no output)"
        hint = f" (firmware missing? Debian: apt install {ARCHES[arch].qemu_package})" if any(
            h in tail.lower() for h in FIRMWARE_HINTS) else ""
        error = f"{binary} exited {run.returncode} before the kernel ran: {tail}{hint}"
    return Boot(run, con, cmd, accel, log_path, error)
