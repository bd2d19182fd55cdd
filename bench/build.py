"""Build-stage timings: the bot's sandboxed build vs the raw `make` on the same build dir, same run.

    .venv/bin/python bench/build.py [--arch x86_64 --arch arm64] [--cold]

Prints figures, asserts nothing about speed. Phases per arch:
  cold         (--cold only) fresh build dir + empty ccache for the bot; fresh dir, no ccache for raw
  warm         no-change rebuild of the persistent build dir
  incremental  rebuild after a one-line change in try_to_unmap_one() (mm/rmap.c)
  w1           `make W=1 mm/rmap.o` after that change (the per-touched-file W=1 step), with the bot's
               diagnostics parsing, vs the same raw make
  coverage     measuring which touched files were compiled (bot only: raw make has no such step)
"Bot" is bot.build's whole path: sandbox (bwrap + memory cgroup), make, warning parsing, and for warm and
incremental the copy of the build dir a series is built in (Builder.for_series). "Raw" is the same
make command line with only the path binds the build dir was configured with (/src, /build, /ccache) -- a
host-path make would see every command line change and rebuild everything. The kernel tree must be clean;
mm/rmap.c is restored afterwards.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import repo as kt  # noqa: E402
from bot.build import coverage  # noqa: E402
from bot.build import warnings as bw  # noqa: E402
from bot.build.builder import BUILD, CCACHE, SRC, Builder  # noqa: E402
from bot.build.kconfig import arch_notes  # noqa: E402
from bot.config import load  # noqa: E402

RMAP = "mm/rmap.c"
ANCHOR = "\tint ptes = 0;\n"  # in try_to_unmap_one()
TIMEOUT = 3600.0


def bot_build(b: Builder, log: Path, series: bool = False) -> float:
    """The bot's build; with `series`, as it builds a series: in a fresh copy of the build dir (timed too)."""
    t0 = time.monotonic()
    if series:
        b = b.for_series()
    run = b.build(log, [])
    bw.with_text(bw.parse(run.output), bw.line_reader(b.tree, b.dir))
    if not run.ok:
        sys.exit(f"bot build failed, see {log}")
    return time.monotonic() - t0


def raw_build(b: Builder, log: Path, ccache: bool = True, targets: tuple[str, ...] = ()) -> float:
    args = b.make_args(*(targets or (b.spec.target,)))
    if not ccache:
        args = [a.replace(f"{b.ccache} ", "") for a in args]
    cmd = ["bwrap", "--bind", "/", "/", "--dev", "/dev", "--bind", str(b.tree), SRC, "--bind", str(b.dir), BUILD,
           "--bind", str(b.ccache_dir), CCACHE, "--chdir", SRC,
           *[x for k, v in b.box().env.items() for x in ("--setenv", k, v)], "--", *args]
    t0 = time.monotonic()
    with open(log, "ab") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=TIMEOUT).returncode
    if rc != 0:
        sys.exit(f"raw build failed, see {log}")
    return time.monotonic() - t0


def edit_rmap(tree: Path, n: int) -> None:
    p = tree / RMAP
    text = p.read_text()
    assert ANCHOR in text, f"{RMAP} has no {ANCHOR!r}"
    p.write_text(text.replace(ANCHOR, ANCHOR + f"\tptes += {n} * 0;\n", 1))


def row(phase: str, arch: str, bot: float, raw: float) -> None:
    print(f"{arch:8} {phase:12} bot {bot:8.1f}s   raw {raw:8.1f}s   bot/raw {bot / raw:5.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", action="append", choices=["x86_64", "arm64"])
    ap.add_argument("--tree", type=Path, default=Path("kernel-tree"))
    ap.add_argument("--cold", action="store_true", help="also time cold builds (~6 min each per arch on 2 cores)")
    ns = ap.parse_args()
    tree = ns.tree.resolve()
    config = load()  # ./config.toml: the checkout's .cache/ (build dirs, ccache)
    config = dataclasses.replace(config, paths=dataclasses.replace(config.paths, kernel_tree=tree))
    if kt.git(tree, "status", "--porcelain", "--untracked-files=no").stdout.strip():
        sys.exit(f"{tree} has local changes")
    logs = Path(tempfile.mkdtemp(prefix="bench-build-"))
    print(f"tree {tree} at {kt.git(tree, 'rev-parse', '--short', 'HEAD').stdout.strip()}; logs in {logs}")
    for arch in ns.arch or ["x86_64", "arm64"]:
        b = Builder(config, arch, tree)
        if ns.cold:
            with tempfile.TemporaryDirectory(prefix="cold-", dir=config.cache) as tmp:
                cold = Builder(dataclasses.replace(config, paths=dataclasses.replace(config.paths, cache=Path(tmp))),
                               arch, tree)
                c = cold.configure(logs / f"{arch}-cold-bot.log")
                t_bot = bot_build(cold, logs / f"{arch}-cold-bot.log") + (c.seconds if c else 0)
                shutil.rmtree(cold.dir)
                cold.dir.mkdir()
                c = cold.configure(logs / f"{arch}-cold-raw.log")
                t_raw = raw_build(cold, logs / f"{arch}-cold-raw.log", ccache=False) + (c.seconds if c else 0)
            row("cold", arch, t_bot, t_raw)
        c = b.configure(logs / f"{arch}-prep.log")
        b.build(logs / f"{arch}-prep.log", [])  # bring the persistent dir up to date (not timed)
        row("warm", arch, bot_build(b, logs / f"{arch}-warm-bot.log", series=True),
            raw_build(b, logs / f"{arch}-warm-raw.log"))
        try:
            edit_rmap(tree, 1)
            since = time.time() - 1
            t_bot = bot_build(b, logs / f"{arch}-incr-bot.log", series=True)
            series = dataclasses.replace(b, untrusted=True)  # a builder on the copy bot_build just built in
            kt.git(tree, "checkout", "--", RMAP)
            edit_rmap(tree, 2)
            t_raw = raw_build(b, logs / f"{arch}-incr-raw.log")
            row("incremental", arch, t_bot, t_raw)
            t0 = time.monotonic()
            run = series.w1(logs / f"{arch}-w1-bot.log", [RMAP])
            bw.with_text(bw.parse(run.output), bw.line_reader(series.tree, series.dir))
            t_bot = time.monotonic() - t0
            t_raw = raw_build(series, logs / f"{arch}-w1-raw.log", targets=("-k", "W=1", RMAP[:-2] + ".o"))
            row("w1 (1 file)", arch, t_bot, t_raw)
            t0 = time.monotonic()
            cov = coverage.measure(series.dir, tree, (series.dir / ".config").read_text(), [RMAP, "mm/ksm.c",
                                   "include/linux/mm.h"], since, arch_notes(series.frags))
            print(f"{arch:8} {'coverage':12} bot {time.monotonic() - t0:8.2f}s   "
                  f"({', '.join(f'{c.file}={c.compiled}' for c in cov)})", flush=True)
        finally:
            kt.git(tree, "checkout", "--", RMAP)
        b.build(logs / f"{arch}-prep.log", [])  # leave the build dir matching the clean tree


if __name__ == "__main__":
    main()
