#!/usr/bin/env python3
"""Write the multi-revision test series (bot/demo/series.py) as mboxes: gen_series.py --tree kernel-tree --out DIR"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.demo.series import generate  # noqa: E402
from bot.errors import BotError  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tree", type=Path, default=Path("kernel-tree"), help="kernel tree (git) to base on")
    ap.add_argument("--out", type=Path, required=True, help="output directory for v<N>.mbx + manifest.json")
    ap.add_argument("--base", help="base commit or branch (default: newest debian/* branch)")
    args = ap.parse_args()
    try:
        for g in generate(args.tree, args.out, args.base):
            print(f"{args.out / g.path}\tv{g.version}\t{g.kind}\t<{g.cover_msgid}>")
    except BotError as e:
        print(f"gen_series: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
