"""The mm selftests in the VM: one boot (stress scenarios, then the default selftests) through the bot, next to
a bare QEMU run of the same kernel and the same initramfs (subprocess.run of the same command line: no
sandbox, no log polling, no parsing); then, with --repeat, what the bot makes of each boot compared with
the base kernel's cached run — new failures and flaky tests — for the detection and false-alarm figures.

    .venv/bin/python bench/selftests.py --results PATCHSETS/<series> --version 1 --version 8 \\
        [--arch x86_64 --arch arm64] [--repeat 10] [--no-bare]

The revisions' images, selftests and base come from their result.json (a `bot check` with the build and
boot stages made them; tests/kernel/test_selftests.py leaves such a series in its temp dir). Prints a line
per boot and, last, a JSON line with every figure. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.boot import qemu, selftests, stress  # noqa: E402
from bot.boot.selftests import plan  # noqa: E402
from bot.boot.stage import base_key, base_run, revision_plan, selftests_result  # noqa: E402
from bot.boot.vm import boot_kernel, boot_timeout, stress_settings  # noqa: E402
from bot.config import load  # noqa: E402
from bot.results import RevisionResult  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=Path, required=True, help="patchsets/<series> of a checked series")
    ap.add_argument("--version", type=int, action="append", required=True)
    ap.add_argument("--arch", action="append")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--no-bare", action="store_true", help="only the bot's boots (the detection figures)")
    ap.add_argument("--two-boots", action="store_true",
                    help="also time the same work as two boots: stress only, then the selftests only")
    args = ap.parse_args()
    cfg = load()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-selftests-") as tmp:
        work = Path(tmp)
        for version in args.version:
            r = RevisionResult.from_json(json.loads((args.results / f"v{version}" / "result.json").read_text()))
            for arch in args.arch or list(r.stages.build):
                built = r.stages.build[arch]
                assert built.image and built.selftests, f"v{version} {arch}: no image or selftests in result.json"
                wanted = plan.wanted(cfg, arch, [], built.selftests.wanted)
                base = base_run(cfg, arch, r.base.commit, built.base_image, base_key(cfg, built.config_hash or ""),
                                work, built.base_selftests, wanted)
                boot = revision_plan(cfg, built.selftests, wanted, base)
                assert boot is not None
                for i in range(args.repeat):
                    t0 = time.monotonic()
                    b = boot_kernel(cfg, arch, Path(built.image), work / f"bot-{arch}.log", work, boot)
                    bot_s = time.monotonic() - t0
                    res = selftests_result(cfg, b, boot, wanted, built.selftests, base, built.base_selftests)
                    row = {"version": version, "arch": arch, "run": i, "bot_seconds": round(bot_s, 1),
                           "guest_test_seconds": res.seconds, "tests": len(res.tests or []),
                           "new_failures": res.new_failures, "flaky": res.flaky, "stress": b.con.result}
                    if not args.no_bare and i == 0:
                        row["bare_seconds"] = bare(cfg, arch, Path(built.image), boot, work)
                    if args.two_boots and i == 0:
                        t1 = time.monotonic()
                        boot_kernel(cfg, arch, Path(built.image), work / f"stress-{arch}.log", work)
                        t2 = time.monotonic()
                        boot_kernel(cfg, arch, Path(built.image), work / f"tests-{arch}.log", work, boot,
                                    {**stress_settings(cfg), "scenarios": ""})
                        row["two_boots_seconds"] = [round(t2 - t1, 1), round(time.monotonic() - t2, 1)]
                    rows.append(row)
                    bare_s = f"  bare qemu {row['bare_seconds']:6.1f}s" if "bare_seconds" in row else ""
                    print(f"v{version} {arch:7} run {i}: bot {bot_s:6.1f}s{bare_s}  tests {res.seconds}s guest, "
                          f"{len(res.tests or [])} tests, new {res.new_failures}, flaky {res.flaky}", flush=True)
    for x in rows:
        if "two_boots_seconds" in x:
            a, b = x["two_boots_seconds"]
            print(f"v{x['version']} {x['arch']:7}: one boot {x['bot_seconds']:.1f}s; two boots {a:.1f}s (stress) + "
                  f"{b:.1f}s (selftests) = {a + b:.1f}s")
    for (version, arch) in sorted({(x["version"], x["arch"]) for x in rows}):
        mine = [x for x in rows if x["version"] == version and x["arch"] == arch]
        caught = sum(1 for x in mine if x["new_failures"])
        flaky = sum(1 for x in mine if x["flaky"])
        ratio = [x["bot_seconds"] / x["bare_seconds"] for x in mine if "bare_seconds" in x]
        print(f"v{version} {arch:7}: {len(mine)} boots, median {statistics.median(x['bot_seconds'] for x in mine):.1f}s"
              f"; boots with a new failure {caught}/{len(mine)}, with a flaky test {flaky}/{len(mine)}"
              + (f"; bot/bare {ratio[0]:.2f}" if ratio else ""))
    print(json.dumps(rows))
    return 0


def bare(cfg, arch: str, image: Path, boot: selftests.SelftestsBoot, work: Path) -> float:  # type: ignore[no-untyped-def]
    """The same initramfs and command line as the bot's boot, QEMU started bare: wall seconds to its exit."""
    cc = cfg.arch_config(arch).stress_cc
    extra = selftests.initramfs_entries(selftests.build_runner(arch, cc, cfg.cache), boot)
    initrd = stress.make_initramfs(stress.build_init(arch, cc, cfg.cache), stress_settings(cfg),
                                   work / f"bare-{arch}.cpio", extra)
    cmd = qemu.qemu_command(cfg, arch, image, initrd, qemu.choose_accel(arch, cfg.boot.accel))
    t0 = time.monotonic()
    with open(work / f"bare-{arch}.log", "wb") as out:
        subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                       timeout=boot_timeout(cfg, arch) + boot.deadline())
    return round(time.monotonic() - t0, 1)


if __name__ == "__main__":
    sys.exit(main())
