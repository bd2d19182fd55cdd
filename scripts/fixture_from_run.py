#!/usr/bin/env python3
"""Copy a real pipeline run's results (patchsets/<slug>/) into a committed test fixture.

Keeps series.json, each v<N>/result.json and v<N>/logs/*.log; drops kernel images, configs, initramfs and
mboxes (large, and not read by what the fixture tests). Paths inside the results are trimmed so nothing points
back at the machine it ran on: the revision's folder becomes relative ("logs/build-x86_64.log"), the cache
root becomes ".cache/".

    scripts/fixture_from_run.py patchsets/<slug> tests/fixtures/demo-series
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any


def trim(value: Any, rdir: str, cache: str) -> Any:
    if isinstance(value, str):
        return value.replace(rdir.rstrip("/") + "/", "").replace(cache.rstrip("/") + "/", ".cache/")
    if isinstance(value, list):
        return [trim(v, rdir, cache) for v in value]
    if isinstance(value, dict):
        return {k: trim(v, rdir, cache) for k, v in value.items()}
    return value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("series", type=Path, help="patchsets/<slug> of a finished run")
    ap.add_argument("dest", type=Path, help="fixture folder; <dest>/<slug>/ is written")
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "mm-review-bot"), help="the run's cache root")
    args = ap.parse_args()
    src = args.series.resolve()
    out = args.dest / src.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copyfile(src / "series.json", out / "series.json")
    for rdir in sorted(src.glob("v*/")):
        data = json.loads((rdir / "result.json").read_text())
        data = trim(trim(data, str(rdir), args.cache), str(src.parent / "outbox"), args.cache)
        (out / rdir.name).mkdir()
        (out / rdir.name / "result.json").write_text(json.dumps(data, indent=2) + "\n")
        for log in sorted((rdir / "logs").glob("*.log")):
            (out / rdir.name / "logs").mkdir(exist_ok=True)
            shutil.copyfile(log, out / rdir.name / "logs" / log.name)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
