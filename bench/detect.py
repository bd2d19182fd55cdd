"""Detection rate of the boot+stress stage: boot one kernel N times and count failing verdicts.

    .venv/bin/python bench/detect.py --arch x86_64 --image IMG [--runs 10] [--kasan] [--scenarios a,b]
        [--out DIR] [--label buggy]

A run "detects" when the stress verdict is fail (a scenario FAIL, no RESULT, or a kernel finding).
Prints one line per run and a JSON summary on stdout's last line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.boot.stage import boot_result, stress_result  # noqa: E402
from bot.boot.vm import boot_kernel  # noqa: E402
from bot.config import Config, load  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", required=True, choices=["x86_64", "arm64"])
    ap.add_argument("--image", required=True, type=Path)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--kasan", action="store_true", help="the kernel has KASAN (longer timeouts)")
    ap.add_argument("--scenarios", default="", help="comma list; default: [stress] scenarios")
    ap.add_argument("--rounds", type=int, default=0, help="override [stress] crossing_rounds")
    ap.add_argument("--out", type=Path, default=Path("/tmp/detect"))
    ap.add_argument("--label", default="")
    args = ap.parse_args()

    cfg: Config = load()
    st = cfg.stress
    if args.scenarios:
        st = dataclasses.replace(st, scenarios=args.scenarios.split(","))
    if args.rounds:
        st = dataclasses.replace(st, crossing_rounds=args.rounds)
    cfg = dataclasses.replace(cfg, stress=st, build=dataclasses.replace(cfg.build, kasan=args.kasan))
    label = args.label or args.image.name
    runs = []
    for i in range(args.runs):
        t0 = time.monotonic()
        log = args.out / f"{label}-{args.arch}-{i}.log"
        b = boot_kernel(cfg, args.arch, args.image, log, args.out)
        res, st_res = boot_result(b, set()), stress_result(b)
        detected = st_res.verdict == "fail" or res.status != "ok"
        kinds = sorted({f.kind for f in res.findings or []})
        crossing = next((s.detail for s in b.con.scenarios if s.name == "pte-table-crossing"), "")
        print(f"{label} {args.arch} run {i}: boot={res.boot_status} stress={st_res.status} "
              f"detected={detected} findings={kinds} {time.monotonic() - t0:.0f}s | {crossing} | {st_res.detail[:200]}",
              flush=True)
        runs.append({"detected": detected, "findings": kinds, "seconds": round(time.monotonic() - t0, 1),
                     "stress": st_res.status, "detail": st_res.detail, "crossing": crossing})
    n = sum(r["detected"] for r in runs)
    print(json.dumps({"label": label, "arch": args.arch, "kasan": args.kasan, "runs": len(runs), "detected": n,
                      "mean_seconds": round(sum(r["seconds"] for r in runs) / max(1, len(runs)), 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
