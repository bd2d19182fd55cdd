"""The pipeline's own cost: a full warm `bot check` of the demo series next to the raw commands of the same
work, split by stage, in one run; then a repeat `bot check` of the unchanged series (reused).

    .venv/bin/python bench/check.py [--stages fetch,apply,build,boot,walkdiff,report] [--arch x86_64,arm64]

Warm: the checkout's .cache/ (ccache, base build dirs and images, base boots, stress programs) is used as
`make demo` left it; the results go to a fresh patchsets/ so that every stage runs. Stage times of the bot
are the intervals between its `»` progress lines. Raw, per revision (and arch) the bot's stage handled:
  fetch     one HTTP GET of each revision's thread mbox (what the bot fetches at the least)
  apply     git checkout of the base + git am of series.mbx
  build     make on the arch's persistent build dir with the revision checked out (bench/build.py's raw_build:
            the same make command line and binds as the bot's sandbox, no cgroup, no copy, no parsing)
  boot      bare QEMU with the same kernel, initramfs and command line (as bench/boot.py), no parsing
  walkdiff, report   nothing: no raw equivalent (the bot's own work)
Prints a table and, last, a JSON line with every figure. Asserts nothing about speed. The kernel tree must
be clean; it is left checked out where it was, and the build dirs are brought back to the base.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bot import repo  # noqa: E402
from bot.boot import qemu, stress  # noqa: E402
from bot.boot.vm import boot_timeout, stress_settings  # noqa: E402
from bot.config import load  # noqa: E402
from bot.demo.localinbox import LocalInbox  # noqa: E402
from bot.demo.series import generate  # noqa: E402

BOT = ROOT / ".venv" / "bin" / "bot"
STAGE_LINE = re.compile(r"» (apply|build|boot|walkdiff|report): v\d+")


def timed_check(cmd: list[str], log: Path) -> tuple[float, dict[str, float], str]:
    """Run `bot check`, timing each stage by the progress lines on its stderr: (total, per stage, stderr)."""
    per: dict[str, float] = defaultdict(float)
    stage, mark = "fetch", time.monotonic()
    start = mark
    lines = []
    with subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True) as p:
        assert p.stderr is not None
        for line in p.stderr:
            lines.append(line)
            m = STAGE_LINE.search(line)
            if m:
                now = time.monotonic()
                per[stage] += now - mark
                stage, mark = m.group(1), now
    end = time.monotonic()
    per[stage] += end - mark
    log.write_text("".join(lines))
    if p.returncode != 0:
        sys.exit(f"bot check failed ({p.returncode}), see {log}")
    return end - start, dict(per), "".join(lines)


def raw_fetch(url: str, results: list[dict[str, Any]]) -> float:
    t0 = time.monotonic()
    with httpx.Client(timeout=60) as client:
        for r in results:
            client.get(f"{url}/linux-mm/{r['message_id']}/t.mbox.gz").raise_for_status()
    return time.monotonic() - t0


def raw_apply(tree: Path, rdirs: dict[int, Path], results: list[dict[str, Any]]) -> float:
    total = 0.0
    for r in results:
        if r["stages"]["apply"]["status"] != "ok":
            continue
        t0 = time.monotonic()
        repo.git(tree, "checkout", "-q", "--detach", r["base"]["commit"], timeout=600)
        repo.git(tree, "am", "-q", str(rdirs[r["version"]] / "series.mbx"), timeout=600)
        total += time.monotonic() - t0
    return total


def raw_builds(config: Any, tree: Path, results: list[dict[str, Any]], arches: list[str], logs: Path) -> float:
    spec = importlib.util.spec_from_file_location("bench_build", ROOT / "bench" / "build.py")
    assert spec is not None and spec.loader is not None
    bench_build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_build)
    from bot.build.builder import Builder

    total, base = 0.0, None
    for r in results:
        for arch in arches:
            b = r["stages"]["build"].get(arch, {})
            if b.get("status") != "ok":
                continue
            base = r["base"]["commit"]
            repo.git(tree, "checkout", "-q", "--detach", r["stages"]["apply"]["branch"], timeout=600)
            total += bench_build.raw_build(Builder(config, arch, tree), logs / f"raw-build-v{r['version']}-{arch}.log")
    if base is not None:  # leave the persistent build dirs matching the base again
        repo.git(tree, "checkout", "-q", "--detach", base, timeout=600)
        for arch in arches:
            bench_build.raw_build(Builder(config, arch, tree), logs / f"raw-build-restore-{arch}.log")
    return total


def raw_boots(config: Any, results: list[dict[str, Any]], arches: list[str], work: Path) -> float:
    total = 0.0
    for r in results:
        for arch in arches:
            b = r["stages"]["build"].get(arch, {})
            if r["stages"]["boot"].get(arch, {}).get("status") not in ("ok", "failed") or not b.get("image"):
                continue
            init = stress.build_init(arch, config.arch_config(arch).stress_cc, config.cache)
            initrd = stress.make_initramfs(init, stress_settings(config), work / f"raw-{arch}.cpio")
            cmd = qemu.qemu_command(config, arch, Path(b["image"]), initrd, qemu.choose_accel(arch, config.boot.accel))
            t0 = time.monotonic()
            with open(work / f"raw-boot-v{r['version']}-{arch}.log", "wb") as out:
                subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                               timeout=boot_timeout(config, arch))
            total += time.monotonic() - t0
    return total


def write_config(work: Path, url: str) -> Path:
    """The shipped config.toml pointed at the local archive, a fresh patchsets/, the checkout's cache."""
    text = ((ROOT / "config.toml").read_text().replace('url = "https://lore.kernel.org"', f'url = "{url}"')
            .replace('patchsets = "patchsets"', f'patchsets = "{work / "patchsets"}"')
            .replace('kernel_tree = "kernel-tree"', f'kernel_tree = "{ROOT / "kernel-tree"}"')
            .replace('cache = ".cache"', f'cache = "{ROOT / ".cache"}"'))
    path = work / "config.toml"
    path.write_text(text)
    return path


def report(stages: list[str], bot: dict[str, float], raw: dict[str, float], total: float,
           repeat: tuple[float, int]) -> dict[str, Any]:
    print(f"{'stage':10} {'bot s':>8} {'raw s':>8} {'bot/raw':>8}")
    for s in stages:
        ratio = f"{bot.get(s, 0) / raw[s]:8.2f}" if raw.get(s) else f"{'-':>8}"
        print(f"{s:10} {bot.get(s, 0):8.1f} {raw.get(s, 0):8.1f} {ratio}")
    raw_total = sum(raw.values())
    print(f"{'total':10} {total:8.1f} {raw_total:8.1f} {total / raw_total if raw_total else 0:8.2f}")
    outside = sum(v for k, v in bot.items() if k not in ("build", "boot"))
    print(f"outside build and boot: {outside:.1f} s; repeat check of the unchanged series: {repeat[0]:.1f} s, "
          f"{repeat[1]} stage results reused")
    return {"stages": stages, "bot": bot, "raw": raw, "bot_total": round(total, 1), "raw_total": round(raw_total, 1),
            "outside_build_boot": round(outside, 1), "repeat_seconds": round(repeat[0], 2), "reused": repeat[1]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stages", default="fetch,apply,build,boot,walkdiff,report")
    ap.add_argument("--arch", default="x86_64,arm64")
    args = ap.parse_args()
    stages, arches = args.stages.split(","), args.arch.split(",")
    tree = ROOT / "kernel-tree"
    if repo.git(tree, "status", "--porcelain", "--untracked-files=no").stdout.strip():
        sys.exit(f"{tree} has local changes")
    head = repo.git(tree, "rev-parse", "HEAD").stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="bench-check-"))
    generated = generate(tree, work / "series")
    inbox = LocalInbox(work / "archive").init()
    for g in generated:
        inbox.deliver_mbox(work / "series" / g.path)
    url = inbox.serve()
    try:
        config_path = write_config(work, url)
        v3 = next(g for g in generated if g.kind == "fix")
        cmd = [str(BOT), "check", v3.cover_msgid, "--config", str(config_path), "--stages", args.stages,
               "--arch", args.arch]
        total, bot, _ = timed_check(cmd, work / "check.log")
        again, _, err = timed_check(cmd, work / "repeat.log")
        reused = len(re.findall(r"reused \(inputs unchanged\)", err))
        config = load(config_path)
        (sdir,) = (work / "patchsets").glob("*/series.json")
        rdirs = {int(p.name[1:]): p for p in sdir.parent.glob("v*")}
        results = [json.loads((rdirs[v] / "result.json").read_text()) for v in sorted(rdirs)]
        raw = {"fetch": raw_fetch(url, results)} if "fetch" in stages else {}
        try:
            if "apply" in stages:
                raw["apply"] = raw_apply(tree, rdirs, results)
            if "build" in stages:
                raw["build"] = raw_builds(config, tree, results, arches, work)
            if "boot" in stages:
                raw["boot"] = raw_boots(config, results, arches, work)
        finally:
            repo.git(tree, "checkout", "-q", "--detach", head, timeout=600)
        figures = report(stages, bot, raw, total, (again, reused))
        print(json.dumps(figures))
    finally:
        inbox.stop()
        shutil.rmtree(work / "archive", ignore_errors=True)
    print(f"logs in {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
