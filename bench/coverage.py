"""How much of mm/ the bot's configs compile, per arch: the count, the total and the exceptions with reasons.

    .venv/bin/python bench/coverage.py [--arch x86_64 --arch arm64]

Reads the build dirs the build stage keeps under [paths] cache (the booted config's trusted dir, built by any
`bot check`/`make demo`/`make test` run), and compiles mm/ in the KASAN config's dir (the second config,
which the build stage uses for touched files the booted one does not compile) if that has not been done yet.
A file counts as compiled when its object exists in either dir, or when it is #included by one that does.
"Cannot exist" files are what no config of this arch (with gcc, an MMU and SMP) can build; the percentage is
of the files that can. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.build.builder import Builder  # noqa: E402
from bot.build.coverage import object_deps, why_not  # noqa: E402
from bot.build.kconfig import arch_notes  # noqa: E402
from bot.config import load  # noqa: E402

# What no config of the arch can compile here, and why (measured: see README "What the build compiles").
KMSAN = "KMSAN needs clang (-fsanitize=kernel-memory); the bot builds with gcc"
CANNOT = {
    "both": {
        "mm/nommu.c": "needs CONFIG_MMU=n",
        "mm/percpu-km.c": "#included by percpu.c only without SMP or MMU",
        **{f"mm/kmsan/{f}.c": KMSAN for f in ("core", "hooks", "init", "instrumentation", "kmsan_test", "report",
                                               "shadow")},
    },
    "x86_64": {
        "mm/ioremap.c": "GENERIC_IOREMAP: x86 has its own ioremap",
        **{f"mm/kasan/{f}.c": "tag-based KASAN: arm64 only" for f in ("hw_tags", "report_hw_tags", "sw_tags",
                                                                       "report_sw_tags", "tags", "report_tags")},
    },
    "arm64": {
        "mm/hugetlb_vmemmap.c": "ARCH_WANT_OPTIMIZE_HUGETLB_VMEMMAP: not selected by arm64 in 7.2",
        "mm/bootmem_info.c": "HAVE_BOOTMEM_INFO_NODE: only MEMORY_HOTREMOVE on x86_64 selects it",
        **{f"mm/kasan/{f}.c": "tag-based KASAN: one KASAN mode per build, the bot's is generic"
           for f in ("hw_tags", "report_hw_tags", "sw_tags", "report_sw_tags", "tags", "report_tags")},
    },
}


def compiled(build_dirs: list[Path], sources: list[str]) -> set[str]:
    found = {s for s in sources for d in build_dirs if (d / s).with_suffix(".o").is_file()}
    for d in build_dirs:
        for obj in d.glob("mm/**/*.o"):
            found |= {dep for dep in object_deps(obj) if dep in sources}
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", action="append", choices=["x86_64", "arm64"])
    args = ap.parse_args()
    config = load()
    tree = Path(config.paths.kernel_tree)
    sources = sorted(str(p.relative_to(tree)) for p in (tree / "mm").rglob("*.c"))
    for arch in args.arch or ["x86_64", "arm64"]:
        main_b = Builder(config, arch, tree, kasan=False)
        if not (main_b.trusted_dir / "vmlinux").is_file():
            print(f"{arch}: the booted config's build dir {main_b.trusted_dir} is not built: run `make test` first")
            continue
        kasan_b = Builder(config, arch, tree, kasan=True)
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "kasan.log"
            conf = kasan_b.configure(log)
            if (conf is not None and not conf.ok) or not kasan_b.run(kasan_b.make_args("-k", "mm/"), log).ok:
                print(f"{arch}: compiling mm/ in the KASAN config failed, see {log.read_text()[-2000:]}")
        cannot = CANNOT["both"] | CANNOT[arch]
        only_main = compiled([main_b.dir], sources)
        both = compiled([main_b.dir, kasan_b.dir], sources)
        possible = [s for s in sources if s not in cannot]
        print(f"{arch}: {len(sources)} mm/**/*.c files, {len(cannot)} cannot exist on {arch}, {len(possible)} can")
        print(f"{arch}:   booted config compiles {len(only_main & set(possible))}/{len(possible)} "
              f"({100 * len(only_main & set(possible)) / len(possible):.1f} %)")
        print(f"{arch}:   with the KASAN config    {len(both & set(possible))}/{len(possible)} "
              f"({100 * len(both & set(possible)) / len(possible):.1f} %)")
        dotconfig = (main_b.dir / ".config").read_text()
        notes = arch_notes(main_b.frags)
        for s in possible:
            if s not in both:
                print(f"{arch}:   not compiled: {s}: {why_not(tree, s, dotconfig, notes)}")
        for s, why in sorted(cannot.items()):
            print(f"{arch}:   cannot exist: {s}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
