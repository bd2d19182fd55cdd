#!/usr/bin/env python3
"""How long the dashboard takes: the whole site for N generated series (default 1,000), and updating one.

The series are made from the demo's real results (tests/fixtures/demo-series/: five revisions, both arches,
their build and boot logs), each with its own slug, subject, author, date and a verdict picked from the five
the demo has, so the index and every page are as big as real ones. Printed beside each figure: the raw
`cp -a` of the same results (the bytes the site copies, without any page), in the same run.

    .venv/bin/python bench/dashboard.py [--series 1000] [--runs 3] [--dir DIR]

Targets (issue 17): the whole site for 1,000 series in under 10 s; one series updated in under 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import dashboard  # noqa: E402
from bot.config import Config, LoreConfig, PathsConfig  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "demo-series" / "20260105-mm-rmap-lazyfree-batched-unmap-cleanups"


def generate(patchsets: Path, n: int) -> list[str]:
    """n series, each the demo series under a new name; series i keeps its first 1 + i % 5 revisions, so
    the newest revision's verdict varies (pass, fail, pass, warn, fail)."""
    series = json.loads((FIXTURE / "series.json").read_text())
    results = {d.name: json.loads((d / "result.json").read_text()) for d in FIXTURE.glob("v*")}
    slugs = []
    for i in range(n):
        slug = f"2026{1 + i % 12:02d}{1 + i % 28:02d}-mm-bench-series-{i:04d}-{i * 2654435761 % 2**32:08x}"
        sdir = patchsets / slug
        keep = 1 + i % 5
        for v in range(1, keep + 1):
            (sdir / f"v{v}").mkdir(parents=True)
            r = dict(results[f"v{v}"], date=f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00+00:00")
            (sdir / f"v{v}" / "result.json").write_text(json.dumps(r))
            if (FIXTURE / f"v{v}" / "logs").is_dir():  # v5 did not apply: no logs
                shutil.copytree(FIXTURE / f"v{v}" / "logs", sdir / f"v{v}" / "logs")
        s = dict(series, slug=slug, subject=f"[PATCH v{keep} 0/3] mm/bench: series number {i}",
                 author=f"Author {i % 97} <author{i % 97}@example.org>", revisions=series["revisions"][:keep])
        (sdir / "series.json").write_text(json.dumps(s))
        slugs.append(slug)
    return slugs


def timed(fn: Callable[..., object], *args: object) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its children) of fn(*args)."""
    def cpu() -> float:
        return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                      resource.getrusage(resource.RUSAGE_CHILDREN)))
    c0, t0 = cpu(), time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0, cpu() - c0


def fig(xs: list[tuple[float, float]]) -> str:
    walls = [w for w, _ in xs]
    return (f"median {statistics.median(walls):.2f} s (min {min(walls):.2f}, max {max(walls):.2f}; "
            f"CPU {statistics.median(c for _, c in xs):.2f} s)")


def cp(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", type=Path, help="where to generate the series (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-", dir=args.dir) as tmp:
        work = Path(tmp)
        slugs = generate(work / "patchsets", args.series)
        files = sum(1 for p in (work / "patchsets").rglob("*") if p.is_file())
        cfg = Config(paths=PathsConfig(patchsets=work / "patchsets", dashboard=work / "site"),
                     lore=LoreConfig(url="https://lore.kernel.org", list="linux-mm"))
        print(f"{args.series} series, {files} result and log files; {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}")
        cold, warm, raw, update, raw_one = [], [], [], [], []
        one = slugs[len(slugs) // 2]
        for _ in range(args.runs):
            shutil.rmtree(work / "site", ignore_errors=True)
            shutil.rmtree(work / "copy", ignore_errors=True)
            raw.append(timed(cp, work / "patchsets", work / "copy"))
            cold.append(timed(dashboard.build_site, cfg))
            warm.append(timed(dashboard.build_site, cfg))
            update.append(timed(dashboard.update_series, cfg, one))
            raw_one.append(timed(cp, work / "patchsets" / one, work / "copy" / f"{one}.again"))
        pages = [p for p in (work / "site").rglob("*") if p.suffix in (".html", ".json", ".sh")]
        mib = sum(p.stat().st_size for p in pages) / 2**20
        index = (work / "site" / "index.html").stat().st_size / 2**20
        print(f"site: {sum(p.suffix == '.html' for p in pages)} pages, {len(pages)} pages/rows/scripts "
              f"({mib:.0f} MiB; index {index:.1f} MiB), logs linked beside them")
        print(f"whole site, empty dir:      bot {fig(cold)}")
        print(f"                            raw cp -a of the results {fig(raw)}")
        print(f"whole site, rebuilt:        bot {fig(warm)}")
        print(f"one series updated + index: bot {fig(update)}")
        print(f"                            raw cp -a of that series {fig(raw_one)}")
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
        ok = statistics.median(w for w, _ in cold) < 10 and statistics.median(w for w, _ in update) < 0.5
        print(f"targets (whole site < 10 s, one series < 0.5 s, medians): {'met' if ok else 'MISSED'}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
