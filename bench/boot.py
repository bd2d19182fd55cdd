"""Boot-to-result time per arch through the bot (bot.boot.vm.boot_kernel), next to a bare QEMU run of the
same kernel and initramfs (subprocess.run of the same command line, no log polling, no parsing).

    .venv/bin/python bench/boot.py --image x86_64=PATH --image arm64=PATH [--repeat 1] [--scenarios a,b]

Prints a table and, last, a JSON line with every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.boot import console, qemu, stress  # noqa: E402
from bot.boot.vm import boot_kernel, boot_timeout, stress_settings  # noqa: E402
from bot.config import load  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", action="append", required=True, help="ARCH=PATH (x86_64 or arm64)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--scenarios", default="")
    args = ap.parse_args()
    cfg = load()
    if args.scenarios:
        cfg = dataclasses.replace(cfg, stress=dataclasses.replace(cfg.stress, scenarios=args.scenarios.split(",")))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-boot-") as tmp:
        work = Path(tmp)
        for spec in args.image:
            arch, image = spec.split("=", 1)
            for i in range(args.repeat):
                t0 = time.monotonic()
                b = boot_kernel(cfg, arch, Path(image), work / f"bot-{arch}.log", work)
                bot_s = time.monotonic() - t0
                scen = {s.name: s.detail.rsplit("time=", 1)[-1] for s in b.con.scenarios}
                # bare: the very command the bot ran, console to a file, nothing else
                cc = cfg.arch_config(arch).stress_cc
                initrd = stress.make_initramfs(stress.build_init(arch, cc, cfg.cache), stress_settings(cfg),
                                               work / f"bare-{arch}.cpio")
                cmd = qemu.qemu_command(cfg, arch, Path(image), initrd, qemu.choose_accel(arch, cfg.boot.accel))
                t1 = time.monotonic()
                with open(work / f"bare-{arch}.log", "wb") as out:
                    subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   timeout=boot_timeout(cfg, arch))
                bare_s = time.monotonic() - t1
                bare = console.parse((work / f"bare-{arch}.log").read_text(errors="replace"))
                rows.append({"arch": arch, "run": i, "accel": b.accel, "bot_seconds": round(bot_s, 1),
                             "bare_seconds": round(bare_s, 1), "bot_result": b.con.result,
                             "bare_result": bare.result, "scenario_seconds": scen})
                print(f"{arch:7} run {i}: bot {bot_s:6.1f}s ({b.con.result})  bare qemu {bare_s:6.1f}s "
                      f"({bare.result})  accel={b.accel}  scenarios={scen}", flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
