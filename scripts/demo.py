#!/usr/bin/env python3
"""The bundled demo: the bot reviews a generated eight-revision series served by a local public-inbox.

lore.kernel.org is not reachable everywhere, so the demo serves its own archive on 127.0.0.1: the series
that scripts/gen_series.py writes on top of kernel-tree/ (v1 clean, v2 re-introducing the June 2025
out-of-bounds batched unmap, v3 fixing it, v4 adding a warning, v5 not applying, v6/v7 a warning and a
build error in files the old config never compiled, v8 a bug only the mm selftests see), plus the real v4
thread of "mm: batched unmap lazyfree large folios" when ../shared/lore has it. Then it runs
`bot check <v3>` with every stage that exists, and leaves the results in patchsets/; then `bot dashboard`
writes dashboard/ and the demo ends with the path of the series page.
Safe to rerun: the archive is made anew each time under .cache/demo/.

    scripts/demo.py [--kasan] [--arch x86_64,arm64] [--stages ...]

--kasan builds with [build] kasan = true and keeps its results apart, in .cache/demo/patchsets-kasan/
(the KASAN images that bench/detect.py boots); --arch and --stages are passed to `bot check`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.demo.localinbox import LocalInbox  # noqa: E402
from bot.demo.series import generate  # noqa: E402
from bot.results import links  # noqa: E402

SHARED_THREAD = ROOT.parent / "shared" / "lore" / "barry-lazyfree-v4.mbox"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kasan", action="store_true", help="build with KASAN; results in .cache/demo/patchsets-kasan")
    ap.add_argument("--arch", help="passed to bot check")
    ap.add_argument("--stages", help="passed to bot check")
    args = ap.parse_args()
    work = ROOT / ".cache" / "demo"
    patchsets = work / "patchsets-kasan" if args.kasan else ROOT / "patchsets"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    missing = LocalInbox.available()
    if missing:
        print(f"demo: {missing}; run `make demo`, which installs it", file=sys.stderr)
        return 3
    generated = generate(ROOT / "kernel-tree", work / "series")
    inbox = LocalInbox(work / "archive").init()
    for g in generated:
        inbox.deliver_mbox(work / "series" / g.path)
    if SHARED_THREAD.exists():
        inbox.deliver_mbox(SHARED_THREAD)
    url = inbox.serve()
    try:
        config = work / "config.toml"
        text = (
            "# written by scripts/demo.py: the shipped config.toml, pointed at the local archive (the cache is the\n"
            "# checkout's .cache/, as for the tests: kernels built once serve both)\n"
            + (ROOT / "config.toml").read_text().replace('url = "https://lore.kernel.org"', f'url = "{url}"')
            .replace('patchsets = "patchsets"', f'patchsets = "{patchsets}"')
            .replace('kernel_tree = "kernel-tree"', f'kernel_tree = "{ROOT / "kernel-tree"}"')
            .replace('cache = ".cache"', f'cache = "{ROOT / ".cache"}"')
            .replace('templates = "templates"', f'templates = "{ROOT / "templates"}"')
            .replace('dashboard = "dashboard"', f'dashboard = "{ROOT / "dashboard"}"')
        )
        if args.kasan:
            assert "\nkasan = false " in text, "config.toml: [build] kasan line not found"
            text = text.replace("\nkasan = false ", "\nkasan = true  ")
        config.write_text(text)
        v3 = next(g for g in generated if g.kind == "fix")
        print(f"demo: archive at {url}/linux-mm/ ; reviewing <{v3.cover_msgid}> and every revision of its series",
              flush=True)
        cmd = [str(ROOT / ".venv" / "bin" / "bot"), "check", v3.cover_msgid, "--config", str(config), "--refetch"]
        cmd += [f"--{k}={v}" for k, v in (("arch", args.arch), ("stages", args.stages)) if v]
        print("demo: $ " + shlex.join(cmd), flush=True)
        code = subprocess.run(cmd, timeout=7200).returncode  # cold: two kernel builds, then 8 revisions
        if code == 0:
            code = subprocess.run([cmd[0], "dashboard", "--config", str(config)], timeout=600).returncode
            print(f"demo: series page {series_page(patchsets, v3.cover_msgid, ROOT / 'dashboard')}")
        return code
    finally:
        inbox.stop()


def series_page(patchsets: Path, msgid: str, site: Path) -> Path:
    """The dashboard page of the series msgid belongs to (series.json lists every Message-ID of a series)."""
    for path in patchsets.glob("*/series.json"):
        if msgid in json.loads(path.read_text()).get("message_ids", []):
            return site / links.series_page(path.parent.name)
    return site / "index.html"


if __name__ == "__main__":
    sys.exit(main())
