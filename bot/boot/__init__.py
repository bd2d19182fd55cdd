"""The boot stage: each built kernel booted in QEMU with the reclaim-stress /init, its console judged.

In: stages.build.<arch> (the image, the base image, the config hash). Out: stages.boot.<arch> (BootResult:
reached userspace, console findings with fingerprints, pre-existing or new) and stages.stress.<arch>
(StressResult: each scenario's verdict).

  qemu.py     accelerator, command line, the sandboxed run with its deadline
  stress/     the static stress program (stress.c) and the initramfs around it
  console.py  STRESS/RESULT lines and kernel findings (BUG/KASAN/WARNING/Oops/panic/lockups) in a console
  vm.py       one boot: init, initramfs, QEMU, console
  stage.py    the verdicts, the base kernel's findings, the runner
"""

from bot.boot.stage import run_stage

__all__ = ["run_stage"]
