#!/usr/bin/env python3
"""The README's picture of the dashboard: the series page of the demo series, in Debian's headless Chromium.

By default from the committed real results of the demo run (tests/fixtures/demo-series/), so the picture
is the same on every machine; --patchsets takes another patchsets/ folder (e.g. the checkout's, after
`make demo`). The site is written to a temp dir with the real `bot dashboard`; nothing else is touched.

    .venv/bin/python scripts/screenshot.py [--patchsets DIR] [--out docs/dashboard-series.png]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.demo import browser  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "demo-series"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patchsets", type=Path, default=FIXTURE, help="results to show (default: the committed demo)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard-series.png")
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=1100, help="the picture's height (the top of the page)")
    args = ap.parse_args()
    why = browser.missing()
    if why:
        print(f"screenshot: {why}", file=sys.stderr)
        return 3
    with tempfile.TemporaryDirectory(prefix="screenshot-") as tmp:
        work = Path(tmp)
        shutil.copytree(args.patchsets, work / "patchsets", ignore=shutil.ignore_patterns("*.sqlite3*", "outbox"))
        (work / "config.toml").write_text('[lore]\nurl = "https://lore.kernel.org"\n')
        bot = str(Path(sys.executable).with_name("bot"))
        subprocess.run([bot, "dashboard", "--config", str(work / "config.toml")], check=True, timeout=600)
        pages = sorted((work / "dashboard" / "series").glob("*/index.html"))
        if not pages:
            print(f"screenshot: no series in {args.patchsets}", file=sys.stderr)
            return 1
        with browser.chromium(work / "profile", args.width, args.height) as driver:
            driver.get(pages[0].as_uri())
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
