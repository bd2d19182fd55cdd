"""The tree's own mm selftests in the VM, after the stress scenarios in the same boot.

In: a kernel's boot (bot/boot/vm.py) and the selftests the build stage built for it (SelftestsBuild: a dir of
static binaries). plan.py chooses the tests and writes the plan, runner.c (PID 1 after the stress program)
runs them with timeouts and reruns, tap.py reads their frames and TAP output back from the console, and
outcome.py turns that into stages.selftests.<arch>, compared with the same tests on the base kernel.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path

from bot.boot import stress
from bot.boot.selftests.plan import Entry

RUNNER = Path(__file__).parent / "runner.c"
DONE = b"### SELFTESTS done"  # the runner's last line: QEMU may stop once it is printed
SLACK_S = 60.0  # wall seconds for the runner's setup and reboot besides the tests


@dataclass
class SelftestsBoot:
    """What one boot runs of the selftests: the plan and where its binaries are."""

    plan: list[Entry]
    text: str  # the plan file (plan.plan_text)
    bindir: Path
    budget: float
    timeout_s: int

    def deadline(self) -> float:
        """Wall seconds the tests may take at most: the budget, then the last test with its reruns."""
        reruns = max((e.reruns for e in self.plan), default=0)
        return self.budget + self.timeout_s * (reruns + 1) + SLACK_S


def build_runner(arch: str, cc: str, cache: Path) -> Path:
    """runner.c compiled statically for arch (cached by source hash, like the stress program)."""
    return stress.build_init(arch, cc, cache, source=RUNNER)


def initramfs_entries(runner: Path, boot: SelftestsBoot) -> list[stress.Entry]:
    """/selftests/run, /selftests/plan and /selftests/bin/<each binary the plan names>."""
    dirs = ["selftests", "selftests/bin", "tmp"]
    out = [stress.Entry(d, stat.S_IFDIR | 0o755) for d in dirs]
    out.append(stress.Entry("selftests/run", stat.S_IFREG | 0o755, runner.read_bytes()))
    out.append(stress.Entry("selftests/plan", stat.S_IFREG | 0o644, boot.text.encode()))
    for name in sorted({e.binary for e in boot.plan}):
        out.append(stress.Entry(f"selftests/bin/{name}", stat.S_IFREG | 0o755, (boot.bindir / name).read_bytes()))
    return out


__all__ = ["DONE", "RUNNER", "SelftestsBoot", "build_runner", "initramfs_entries"]
