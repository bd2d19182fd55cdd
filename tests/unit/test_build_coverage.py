"""bot/build/coverage.py on a synthetic tree and build dir: what was compiled, and why not."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bot.build.coverage import measure, why_not
from bot.build.kconfig import arch_notes

MM_MAKEFILE = """\
obj-y := rmap.o memory.o
obj-$(CONFIG_KSM) += ksm.o
obj-$(CONFIG_NUMA) += mempolicy.o \\
\t\t\tnuma.o
obj-$(CONFIG_DAMON) += damon/
obj-$(CONFIG_HUGETLBFS) += hugetlb.o
hugetlb-$(CONFIG_CGROUP_HUGETLB) += hugetlb_cgroup.o
obj-$(CONFIG_HUGETLBFS) += hugetlb_cgroup.o
"""
DAMON_MAKEFILE = "obj-y := core.o\nobj-$(CONFIG_DAMON_VADDR) += vaddr.o\n"
DOTCONFIG = "CONFIG_NUMA=y\nCONFIG_DAMON=y\n# CONFIG_KSM is not set\n"


def tree(tmp_path: Path) -> Path:
    t = tmp_path / "src"
    for path, text in {"mm/Makefile": MM_MAKEFILE, "mm/damon/Makefile": DAMON_MAKEFILE}.items():
        (t / path).parent.mkdir(parents=True, exist_ok=True)
        (t / path).write_text(text)
    for c in ("rmap.c", "memory.c", "ksm.c", "mempolicy.c", "numa.c", "new.c", "percpu-km.c", "damon/core.c",
              "damon/vaddr.c", "hugetlb.c"):
        (t / "mm" / c).write_text("int x;\n")
    (t / "include/linux").mkdir(parents=True)
    (t / "include/linux/mm.h").write_text("/* */\n")
    (t / "include/linux/unused.h").write_text("/* */\n")
    return t


def obj(build: Path, name: str, deps: list[str], mtime: float) -> None:
    o = build / name
    o.parent.mkdir(parents=True, exist_ok=True)
    o.write_bytes(b"\x7fELF")
    lines = "".join(f"  ../src/{d} \\\n" for d in deps)  # as make writes them, relative to /build
    o.with_name(f".{o.name}.cmd").write_text(f"savedcmd_{name} := gcc ...\n\ndeps_{name} := \\\n{lines}\n")
    os.utime(o, (mtime, mtime))


def test_compiled_rebuilt_included_and_not(tmp_path: Path) -> None:
    src, build = tree(tmp_path), tmp_path / "build"
    old, since = time.time() - 3600, time.time() - 5
    obj(build, "mm/rmap.o", ["mm/rmap.c", "include/linux/mm.h"], time.time())
    obj(build, "mm/memory.o", ["mm/memory.c", "include/linux/mm.h", "mm/percpu-km.c"], time.time())
    obj(build, "mm/numa.o", ["mm/numa.c", "include/linux/mm.h"], old)  # from the base, not rebuilt
    touched = ["mm/rmap.c", "mm/percpu-km.c", "include/linux/mm.h", "include/linux/unused.h", "mm/ksm.c",
               "mm/new.c", "mm/gone.c", "mm/Kconfig", "Documentation/mm/x.rst"]
    got = {c.file: c for c in measure(build, src, DOTCONFIG, touched, since, {})}
    assert set(got) == {"mm/rmap.c", "mm/percpu-km.c", "include/linux/mm.h", "include/linux/unused.h",
                        "mm/ksm.c", "mm/new.c", "mm/gone.c"}  # only C sources and headers
    assert got["mm/rmap.c"].compiled and got["mm/rmap.c"].reason is None
    assert got["mm/percpu-km.c"].compiled and got["mm/percpu-km.c"].via == "mm/memory.o"
    assert got["include/linux/mm.h"].compiled and got["include/linux/mm.h"].objects == 2  # numa.o was not rebuilt
    assert not got["include/linux/unused.h"].compiled and got["include/linux/unused.h"].objects == 0
    assert got["mm/ksm.c"].reason == "needs CONFIG_KSM, which this config does not set"
    assert got["mm/new.c"].reason and got["mm/new.c"].reason.startswith("no Makefile builds it")
    assert got["mm/gone.c"].reason == "deleted by the series"


def test_why_not_follows_directories_continuations_and_composites(tmp_path: Path) -> None:
    src = tree(tmp_path)
    cfg = "CONFIG_NUMA=y\n"
    assert why_not(src, "mm/damon/core.c", cfg, {}) == "needs CONFIG_DAMON, which this config does not set"
    assert why_not(src, "mm/damon/vaddr.c", DOTCONFIG, {}).startswith("needs CONFIG_DAMON_VADDR")
    assert why_not(src, "mm/mempolicy.c", "", {}).startswith("needs CONFIG_NUMA")  # a continuation line
    notes = {"CONFIG_HUGETLBFS": "not on this arch (no ARCH_SUPPORTS_HUGETLBFS)"}
    assert why_not(src, "mm/hugetlb.c", cfg, notes) == (
        "needs CONFIG_HUGETLBFS, which this config does not set: not on this arch (no ARCH_SUPPORTS_HUGETLBFS)")


def test_fragment_comments_say_why_an_arch_lacks_an_option(tmp_path: Path) -> None:
    frag = tmp_path / "arm64-mm.config"
    frag.write_text("# arm64 has no NUMA emulation:\n# CONFIG_NUMA_EMU: x86 only (arch/x86/mm/numa_emulation.c)\n"
                    "# CONFIG_MEM_SOFT_DIRTY is not set\nCONFIG_KSM=y\n")
    assert arch_notes([frag]) == {"CONFIG_NUMA_EMU": "x86 only (arch/x86/mm/numa_emulation.c)"}
