"""How long `b4 prep --check` takes per patch with `bot b4-check --prep` as its check command, on the real
kernel tree: a b4 prep branch made of a generated revision (scripts/gen_series.py), next to `b4 prep --check`
with a check command that does nothing (`true`: b4's own cost per patch).

    .venv/bin/python bench/b4prep.py --mbox DIR/v3.mbx [--tree kernel-tree] [--cache .cache] [--repeat 2]

The author's tree is a --shared clone of --tree; the bot applies to --tree itself (it checks out a
review/prep-* branch there). With --cache pointing at a cache whose build dirs are warm for the base, the
build's new warnings are part of the check (the output says which arches built); without, a fresh cache:
apply and walk exits only. The first run checks every patch; later runs find the results under the cache.
Prints a table and, last, a JSON line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def sh(cmd: list[str], cwd: Path, env: dict[str, str], stdin: str | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=1800)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)}: {proc.stderr.strip()[-500:]}")
    return proc.stdout + proc.stderr


def prep_check(author: Path, env: dict[str, str], command: str) -> tuple[float, str]:
    run = {**env, "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "b4.prep-perpatch-check-cmd",
           "GIT_CONFIG_VALUE_0": command}
    t0 = time.monotonic()
    out = sh([str(BIN / "b4"), "prep", "--check", "--no-cache"], author, run)
    return time.monotonic() - t0, re.sub(r"\x1b\[[0-9;]*m", "", out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mbox", type=Path, required=True, help="a generated revision (scripts/gen_series.py)")
    ap.add_argument("--tree", type=Path, default=Path("kernel-tree"))
    ap.add_argument("--cache", type=Path, help="the bot's cache (default: a fresh one, so nothing is warm)")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    tree = args.tree.resolve()
    with tempfile.TemporaryDirectory(prefix="bench-b4prep-") as tmp:
        work = Path(tmp)
        (work / "gitconfig").write_text("[user]\n\tname = Ada Lovelace\n\temail = ada@example.org\n")
        env = {**os.environ, "GIT_CONFIG_GLOBAL": str(work / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
               "XDG_DATA_HOME": str(work / "data"), "XDG_CACHE_HOME": str(work / "xdg-cache")}
        text = args.mbox.read_text()
        base = re.search(r"^base-commit: (\S+)", text, re.M)
        assert base, "the mbox has no base-commit: line"
        author = work / "author"
        sh(["git", "clone", "-q", "--shared", "--no-checkout", str(tree), str(author)], work, env)
        sh(["git", "checkout", "-q", "-b", "work", base.group(1)], author, env)
        sh([str(BIN / "b4"), "prep", "-n", "bench", "-f", base.group(1)], author, env)
        mails = [m for m in re.split(r"(?m)^(?=From [0-9a-f]{40} )", text) if m.strip()]
        for mail in mails:
            if not re.search(r"^Subject: .*\b0/\d+\]", mail, re.M):
                sh(["git", "am", "-q"], author, env, stdin=mail)
        patches = len(sh(["git", "rev-list", "HEAD", f"^{base.group(1)}"], author, env).split()) - 1
        cache = args.cache.resolve() if args.cache else work / "cache"
        (work / "config.toml").write_text(f'[paths]\nkernel_tree = "{tree}"\npatchsets = "{work / "patchsets"}"\n'
                                          f'cache = "{cache}"\n')
        bot = f"{BIN / 'bot'} b4-check --prep --config {work / 'config.toml'}"
        figures: dict[str, list[float]] = {"true (b4 alone)": [], "bot b4-check --prep": []}
        output = ""
        for _ in range(args.repeat):
            figures["true (b4 alone)"].append(prep_check(author, env, "true")[0])
            seconds, output = prep_check(author, env, bot)
            figures["bot b4-check --prep"].append(seconds)
        built = sorted(p.name for p in (cache / "prep").glob("*/logs/build-*.log")) if (cache / "prep").exists() \
            else []
    print(f"{patches} patches; bot's build: {', '.join(built) or 'none (no warm build dir)'}")
    print(output)
    print(f"{'check command':24} " + " ".join(f"{'run ' + str(i + 1):>10}" for i in range(args.repeat))
          + "   (seconds for the whole branch; per patch in the JSON)")
    for name, runs in figures.items():
        print(f"{name:24} " + " ".join(f"{s:9.1f}s" for s in runs))
    print(json.dumps({"patches": patches, "builds": built, **{
        k: {"runs": [round(s, 2) for s in v], "per_patch": [round(s / patches, 2) for s in v]}
        for k, v in figures.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
