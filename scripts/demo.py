#!/usr/bin/env python3
"""The bundled demo: the bot reviews a generated five-revision series served by a local public-inbox.

lore.kernel.org is not reachable everywhere, so the demo serves its own archive on 127.0.0.1: the series
that scripts/gen_series.py writes on top of kernel-tree/ (v1 clean, v2 re-introducing the June 2025
out-of-bounds batched unmap, v3 fixing it, v4 adding a warning, v5 not applying), plus the real v4
thread of "mm: batched unmap lazyfree large folios" when ../shared/lore has it. Then it runs
`bot check <v3>` with every stage that exists, and leaves the results in patchsets/.
Safe to rerun: the archive is made anew each time under .cache/demo/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.localinbox import LocalInbox  # noqa: E402
from bot.testseries import generate  # noqa: E402

SHARED_THREAD = ROOT.parent / "shared" / "lore" / "barry-lazyfree-v4.mbox"


def main() -> int:
    work = ROOT / ".cache" / "demo"
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
        config.write_text(
            "# written by scripts/demo.py: the shipped config.toml, pointed at the local archive\n"
            + (ROOT / "config.toml").read_text().replace('url = "https://lore.kernel.org"', f'url = "{url}"')
            .replace('patchsets = "patchsets"', f'patchsets = "{ROOT / "patchsets"}"')
            .replace('kernel_tree = "kernel-tree"', f'kernel_tree = "{ROOT / "kernel-tree"}"')
            .replace('cache = ".cache"', f'cache = "{work / "cache"}"')
        )
        v3 = next(g for g in generated if g.kind == "fix")
        print(f"demo: archive at {url}/linux-mm/ ; reviewing <{v3.cover_msgid}> and every revision of its series",
              flush=True)
        cmd = [str(ROOT / ".venv" / "bin" / "bot"), "check", v3.cover_msgid, "--config", str(config), "--refetch"]
        print("demo: $ " + " ".join(cmd), flush=True)
        return subprocess.run(cmd, timeout=3600).returncode
    finally:
        inbox.stop()


if __name__ == "__main__":
    sys.exit(main())
