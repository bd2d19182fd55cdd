"""Which selftests a boot runs, in which order, and the plan file the runner reads.

The default set ([selftests] tests, plus [arch.<name>] selftests), then for the files the revision touches:
every selftest whose own source it changes (a series that adds or fixes a test sees it run) and the slower
tests [selftests] for_files names for the code it changes. Those come first, so the budget never cuts them.
`full` is what run_vmtests.sh runs (that needs bash; the bot's VM has no shell), with its arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.config import Config

MM = "tools/testing/selftests/mm/"
# run_vmtests.sh's runs, in its order (the tests that need a shell, modules or another filesystem left out:
# the README lists them)
FULL = [
    "hugetlb-mmap", "hugetlb-shm", "hugetlb-mremap", "hugetlb-vmemmap", "hugetlb-madvise", "hugetlb_dio",
    "hugetlb_fault_after_madv", "hugetlb_madv_vs_map", "map_fixed_noreplace", "gup_test -u -n 1", "gup_test -u -n -1",
    "gup_test -a -n 1", "gup_test -a -n -1", "gup_test -ct -F 0x1 0 19 0x1000", "gup_longterm",
    "uffd-unit-tests", "uffd-stress anon 20 16", "uffd-stress hugetlb 128 32", "uffd-stress hugetlb-private 128 32",
    "uffd-stress shmem 20 16", "uffd-stress shmem-private 20 16", "uffd-wp-mremap", "compaction_test",
    "on-fault-limit", "map_populate", "mlock-random-test", "mlock2-tests", "mrelease_test", "mremap_test",
    "thuge-gen", "va_high_addr_switch", "hmm-tests", "madv_populate", "memfd_secret", "ksm_tests -M -p 10",
    "ksm_tests -U", "ksm_tests -Z -p 10 -z 0", "ksm_tests -Z -p 10 -z 1", "ksm_tests -N -m 1", "ksm_tests -N -m 0",
    "ksm_functional_tests", "protection_keys_64", "pkey_sighandler_tests_64", "protection_keys",
    "pkey_sighandler_tests", "soft-dirty", "pagemap_ioctl", "pfnmap", "cow", "khugepaged", "khugepaged -s 2",
    "khugepaged all:shmem", "khugepaged -s 4 all:shmem", "transhuge-stress -d 20", "split_huge_page_test",
    "migration", "mkdirty", "mdwe_test", "rmap", "droppable", "process_madv", "guard-regions", "merge",
    "mseal_test", "prctl_thp_disable", "folio_split_race_test", "hugetlb-soft-offline", "hugetlb-read-hwpoison",
    "memory-failure", "mremap_dontunmap",
]
AS_NOBODY = {"on-fault-limit"}  # run_vmtests.sh runs it as nobody: root has no RLIMIT_MEMLOCK
# settings a test needs, set before it and restored after (measured: README "The mm selftests")
AROUND = {
    "mremap_test": [("/proc/sys/vm/overcommit_memory", "1", "0")],  # its 2 GB cases in a 1 GiB guest
    "hugetlb-read-hwpoison": [("/proc/sys/vm/nr_hugepages", "16", "0")],  # it reserves none itself
    # cow's io_uring fixed-buffer cases hung on arm64 under TCG in 2 of ~25 boots of clean kernels ("R/O-mapping
    # a page registered as iouring fixed buffer ... with partially shared THP"): skipped until understood
    "cow": [("/proc/sys/kernel/io_uring_disabled", "2", "0")],
}
_WORD = re.compile(r"^[\w.,:+=/-]+$")


@dataclass(frozen=True)
class Entry:
    n: int  # its number in this boot's plan
    name: str  # the command: binary and arguments
    why: str  # default | touched | for <file> | full
    reruns: int

    @property
    def binary(self) -> str:
        return self.name.split()[0]


def default_names(config: Config, arch: str) -> list[str]:
    return [*config.selftests.tests, *config.arch_config(arch).selftests]


def wanted(config: Config, arch: str, touched: list[str], built: list[str], full: bool = False
           ) -> list[tuple[str, str]]:
    """(command, why) in run order: what the revision touches first, then the default (or full) set."""
    out: dict[str, str] = {}
    for f in touched:
        if f.startswith(MM) and f.endswith(".c") and f[len(MM):-2] in built:
            out.setdefault(f[len(MM):-2], "touched")
    for f in touched:
        for name in config.selftests.for_files.get(f, []):
            out.setdefault(name, f"for {f}")
    for name in FULL if full else default_names(config, arch):
        out.setdefault(name, "full" if full else "default")
    return [(name, why) for name, why in out.items() if all(_WORD.match(w) for w in name.split())]


def entries(names: list[tuple[str, str]], reruns: dict[str, int]) -> list[Entry]:
    return [Entry(i, name, why, reruns.get(name, 0)) for i, (name, why) in enumerate(names, start=1)]


def plan_text(config: Config, plan: list[Entry], budget: float) -> str:
    lines = [f"budget {budget:.0f}"]
    for e in plan:
        uid = "65534" if e.binary in AS_NOBODY else "-"
        around = AROUND.get(e.binary, [])
        lines += [f"write {path} {value}" for path, value, _ in around]
        lines.append(f"run {e.n} {config.selftests.timeout_s} {e.reruns} {uid} {e.name}")
        lines += [f"write {path} {restore}" for path, _, restore in around]
    return "\n".join(lines) + "\n"


def reproduce(entry_name: str) -> str:
    """How to run one by hand, in a VM booted with this kernel (the tree's own build of the test)."""
    return f"make -C tools/testing/selftests/mm && cd tools/testing/selftests/mm && ./{entry_name}"
