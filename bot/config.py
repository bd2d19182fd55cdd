"""config.toml read with tomllib into one typed dataclass per section.

Every key has a default; an unknown section or key is an error that names it, and a key that moved
names its new place. Relative paths are taken relative to the directory of the config file.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bot.arches import ARCHES as KNOWN_ARCHES
from bot.arches import NAMES as ARCHES
from bot.arches import VARIANTS
from bot.errors import UsageError

KEY_ALIASES = {("report", "from"): "sender"}
SHIPPED_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"  # the checkout's top-level templates/
STAGES = ("fetch", "apply", "build", "boot", "walkdiff", "report")
# Keys of earlier config.toml files, and where they live now.
MOVED = {
    **{("build", f"cross_compile_{a}"): f"[arch.{a}] cross_compile" for a in ARCHES},
    **{("boot", f"qemu_{a}"): f"[arch.{a}] qemu" for a in ARCHES},
    **{("boot", f"timeout_{a}"): f"[arch.{a}] boot_timeout" for a in ARCHES},
    **{("stress", f"cc_{a}"): f"[arch.{a}] stress_cc" for a in ARCHES},
    ("daemon", "backoff"): "[lore] backoff",
}


@dataclass(frozen=True)
class LoreConfig:
    url: str = "https://lore.kernel.org"
    list: str = "linux-mm"
    timeout: float = 30.0  # seconds per HTTP request, all of it (connect, headers and body)
    retries: int = 2  # extra attempts after a 5xx or a timeout
    backoff: float = 1.0  # seconds before the first retry, doubled each time

    @property
    def inbox_url(self) -> str:
        return f"{self.url.rstrip('/')}/{self.list}"


@dataclass(frozen=True)
class PathsConfig:
    patchsets: Path = Path("patchsets")
    kernel_tree: Path = Path("kernel-tree")
    cache: Path = Path(".cache")  # everything the bot caches: b4, Debian source, build dirs, ccache, base results
    templates: Path = SHIPPED_TEMPLATES  # the reply templates; set it to a copy beside your config to customise
    dashboard: Path = Path("dashboard")  # the static results site `bot dashboard` writes (and the daemon updates)


@dataclass(frozen=True)
class TreeConfig:
    source: str = "debian"  # or "git"
    remote: str = "https://git.kernel.org/pub/scm/linux/kernel/git/akpm/mm.git"
    branches: list[str] = field(default_factory=lambda: ["mm-new", "mm-unstable", "master"])
    debian_package: str = "linux-source-7.2"
    debian_mirror: str = "http://deb.debian.org/debian"
    debian_suite: str = "unstable"


@dataclass(frozen=True)
class DiscoveryConfig:
    """[discovery]: the bounds on finding a series' revisions (bot/fetch/discovery.py) and the patch a Fixes: line
    names; each request also has the [lore] timeout and retries."""

    max_searches: int = 20  # archive searches per series: b4's change-id / subject+author queries and link-backs
    max_link_fetches: int = 30  # changelog links followed (one thread fetched each) per series
    max_hits: int = 200  # messages read from one search answer; the rest are left out, and that is reported
    max_rounds: int = 10  # rounds of searching and following links, until a round finds nothing new

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 1:
                raise UsageError(f"config: [discovery] {f.name} must be at least 1, not {getattr(self, f.name)}")


@dataclass(frozen=True)
class WalkdiffConfig:
    functions: list[str] = field(
        default_factory=lambda: [
            "try_to_unmap_one",
            "try_to_migrate_one",
            "folio_referenced_one",
            "page_mkclean_one",
            "page_vma_mapped_walk",
            "remove_migration_pte",
            "page_idle_clear_pte_refs_one",
            "folio_lock_anon_vma_read",
        ]
    )
    labels: list[str] = field(default_factory=lambda: ["walk_done", "walk_abort", "discard", "out"])


@dataclass(frozen=True)
class ReportConfig:
    """[report]: how the review summary is posted. Opt-in: nothing is mailed unless mode says so."""

    mode: str = "dry-run"  # "dry-run" (outbox only) | "author" (To the author + cc) | "list" (also Cc the list)
    sender: str = "mm-review-bot <mm-review-bot@localhost>"  # the From: ("from" is a Python keyword)
    operator: str = ""  # how to reach whoever runs the bot (an address or URL), shown in every reply
    dashboard_url: str = ""  # where the dashboard is served (its index), e.g. https://mm-bot.example.org/; "" = none
    list_address: str = "linux-mm@kvack.org"  # Cc'd in list mode only
    cc: list[str] = field(default_factory=list)
    optout: list[str] = field(default_factory=list)  # addresses or fnmatch patterns never mailed
    max_per_hour: int = 20  # replies sent per rolling hour, all series together; the rest stay queued
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_timeout: float = 30.0  # seconds per SMTP connection/command
    smtp_retries: int = 3  # extra attempts after a temporary SMTP failure
    smtp_backoff: float = 2.0  # seconds before the first retry, doubled each time
    reconcile_grace: float = 3600.0  # seconds an unconfirmed "sending" waits for the archive before a resend

    def __post_init__(self) -> None:
        if self.mode not in ("dry-run", "author", "list"):
            raise UsageError(f"config: [report] mode must be dry-run, author or list, not {self.mode!r}")


@dataclass(frozen=True)
class BuildConfig:
    kasan: bool = False  # add kasan.config (slower build and boot; catches more)
    jobs: int = 0  # make -j; 0 = number of CPUs
    timeout: float = 3600.0  # seconds per make invocation (a cold build is ~6 min per arch on 2 cores)
    memory_max_mib: int = 8192  # memory limit of the sandboxed make; 0 = none
    ccache: str = "ccache"  # command; "" to build without it
    # extra kernels per revision besides each arch's own (bot/arches.py VARIANTS: "arm64-16k", "arm64-64k",
    # "x86_64-kasan"), each built, booted and tested like an arch of its own; off by default (one machine)
    variants: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        known = ", ".join(f"{v} ({KNOWN_ARCHES[v].about})" for v in VARIANTS)
        for v in self.variants:
            if v not in VARIANTS:
                raise UsageError(f"config: [build] variants: unknown variant {v!r} (known: {known})")
            if self.variants.count(v) > 1:
                raise UsageError(f"config: [build] variants: {v!r} is listed twice")
            if self.kasan and KNOWN_ARCHES[v].kasan:
                raise UsageError(f"config: [build] variants: {v!r} is the {KNOWN_ARCHES[v].base} kernel itself "
                                 "when [build] kasan = true: drop one of them")


@dataclass(frozen=True)
class BootConfig:
    """[boot]: QEMU boot of each built kernel with the stress initramfs (bot/boot/)."""

    memory_mib: int = 1024  # guest RAM
    smp: int = 2  # guest vCPUs
    kasan_timeout_factor: float = 3.0  # timeouts are multiplied by this when [build] kasan = true
    accel: str = "auto"  # "auto" (KVM for x86_64 when /dev/kvm works, else TCG) | "tcg" | "kvm"
    cmdline: str = ""  # appended to the kernel command line


@dataclass(frozen=True)
class StressConfig:
    """[stress]: the reclaim scenarios run by the stress /init inside the VM (bot/boot/stress/stress.c)."""

    scenarios: list[str] = field(
        default_factory=lambda: ["lazyfree-pageout", "lazyfree-memcg", "pte-table-crossing", "swap-pressure"]
    )
    scenario_timeout: int = 120  # seconds per scenario inside the VM (alarm())
    lazyfree_mib: int = 32  # lazyfree-pageout region
    memcg_mib: int = 32  # lazyfree-memcg region
    swap_mib: int = 96  # swap-pressure: dirty anon memory written and read back
    memcg_max_mib: int = 48  # swap-pressure: memory.max of its cgroup
    zram_mib: int = 256  # zram swap device size
    crossing_rounds: int = 8  # pte-table-crossing rounds (fresh page tables each)
    crossing_slots: int = 64  # pte-table-crossing: straddling folios per round


DEFAULT_SELFTESTS = [  # measured for value per TCG second (README "The mm selftests"): ~60 s per arch
    "map_fixed_noreplace", "mremap_dontunmap", "mlock2-tests", "madv_populate", "droppable", "process_madv",
    "merge", "mseal_test", "mdwe_test", "mkdirty", "memfd_secret", "on-fault-limit", "mrelease_test",
    "hugetlb-madvise", "hugetlb-mremap", "hugetlb-vmemmap", "hugetlb_dio", "hugetlb_madv_vs_map",
    "gup_test -u -n 1", "gup_test -a -n -1", "gup_test -ct -F 0x1 0 19 0x1000", "gup_longterm",
    "transhuge-stress -d 2 64", "uffd-unit-tests -f register-ioctls", "uffd-unit-tests -f zeropage",
    "uffd-unit-tests -f wp-unpopulated", "uffd-unit-tests -f poison", "uffd-unit-tests -f mmap-changing",
    "memory-failure", "rmap", "guard-regions", "khugepaged all:shmem", "cow",
]
DEFAULT_FOR_FILES = {  # the slower tests, run when a revision touches the code they exercise
    "mm/ksm.c": ["ksm_functional_tests"],
    "mm/khugepaged.c": ["khugepaged madvise:anon"],
    "mm/mremap.c": ["mremap_test"],
    "mm/userfaultfd.c": ["uffd-unit-tests -f move", "uffd-unit-tests -f wp-fork", "uffd-unit-tests -f sigbus"],
    "fs/userfaultfd.c": ["uffd-unit-tests -f move", "uffd-unit-tests -f wp-fork", "uffd-unit-tests -f sigbus"],
    "mm/migrate.c": ["migration"],
    "mm/huge_memory.c": ["split_huge_page_test"],
    "mm/hugetlb.c": ["hugetlb-mmap", "hugetlb-read-hwpoison"],
    "fs/proc/task_mmu.c": ["pagemap_ioctl", "soft-dirty"],
    "mm/mlock.c": ["mlock-random-test"],
}


@dataclass(frozen=True)
class SelftestsConfig:
    """[selftests]: the tree's own tools/testing/selftests/mm, built per revision and run after the stress
    scenarios in the same boot (bot/build/selftests.py, bot/boot/selftests/)."""

    enabled: bool = True
    tests: list[str] = field(default_factory=lambda: list(DEFAULT_SELFTESTS))  # commands, run in this order
    for_files: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_FOR_FILES))
    budget_s: float = 150.0  # guest seconds of tests per boot; tests not started by then are reported not run
    timeout_s: int = 300  # per test (and per rerun) inside the VM; a timed-out test is rerun once
    reruns: int = 2  # a test that fails here but not on the base is run again this many times (same boot)
    full: bool = False  # every test run_vmtests.sh runs instead of the default set (`bot check --full`)
    full_budget_s: float = 3600.0  # the budget when full


@dataclass(frozen=True)
class ArchConfig:
    """[arch.<name>]: the per-arch settings (the facts about each arch are in bot/arches.py)."""

    cross_compile: str = ""  # CROSS_COMPILE prefix for the kernel; "" = native gcc
    qemu: str = ""  # QEMU system emulator
    boot_timeout: float = 600.0  # wall clock per boot, seconds (TCG: a clean run takes ~15 s)
    stress_cc: str = "gcc"  # compiler for the static programs run in the VM
    selftests: list[str] = field(default_factory=list)  # run on this arch besides [selftests] tests


DEFAULT_ARCH = {
    # x86_64's guest is uniprocessor (no ACPI in the config): split_huge_page_test is not flaky there (0 of 14
    # runs, 2 of 14 on arm64), and these fit its budget
    "x86_64": ArchConfig(cross_compile="", qemu="qemu-system-x86_64", stress_cc="gcc",
                         selftests=["split_huge_page_test", "prctl_thp_disable", "pagemap_ioctl", "uffd-wp-mremap"]),
    "arm64": ArchConfig(cross_compile="aarch64-linux-gnu-", qemu="qemu-system-aarch64",
                        stress_cc="aarch64-linux-gnu-gcc"),
}


@dataclass(frozen=True)
class DaemonConfig:
    """[daemon]: `bot daemon` polls the list for new mm series and reviews each revision once (bot/daemon/)."""

    interval: float = 900.0  # seconds between rounds without --once
    stages: list[str] = field(default_factory=lambda: list(STAGES))  # stages run for each revision
    arches: list[str] = field(default_factory=lambda: list(ARCHES))
    lookback_days: int = 2  # the first poll looks this far back; later polls from the newest date seen
    overlap_days: int = 1  # re-ask this much before the newest date seen (late mail, clock skew)
    max_pages: int = 10  # search result pages (200 entries each) read per poll
    max_attempts: int = 3  # tries per revision after operational failures before it is marked failed
    patterns: list[str] = field(default_factory=list)  # extra mm file patterns (MAINTAINERS F: syntax)
    maintainers_sections: str = "MEMORY MANAGEMENT"  # sections whose name starts with this are mm


@dataclass(frozen=True)
class WorkersConfig:
    """[workers]: where builds and boots run (bot/workers/): in this process ("local"), or as Celery tasks
    on `bot worker` processes, one task per revision and arch, through a Redis broker ("celery")."""

    engine: str = "local"  # "local" | "celery"
    broker: str = "redis://127.0.0.1:6379/0"
    backend: str = ""  # Celery's result backend; "" = the broker's Redis
    task_time_limit_s: float = 10800.0  # one task: apply, build and boot of one revision on one arch
    visibility_timeout_s: float = 24000.0  # unacked task redelivered after this; must exceed the time limit
    lost_after_s: float = 120.0  # a started task whose worker answers no ping this long is sent again
    queued_timeout_s: float = 86400.0  # a task no worker started within this is an error (no worker for it)
    retries: int = 2  # times a task is sent again after its worker was lost
    outage_s: float = 1800.0  # the broker unreachable this long (Redis down) fails the tasks in flight
    result_ttl_s: float = 7 * 86400.0  # how long Redis keeps a finished task's result

    def __post_init__(self) -> None:
        if self.engine not in ("local", "celery"):
            raise UsageError(f"config: [workers] engine must be \"local\" or \"celery\", not {self.engine!r}")
        if self.visibility_timeout_s <= self.task_time_limit_s:
            raise UsageError("config: [workers] visibility_timeout_s must be above task_time_limit_s (else a "
                             "running task is delivered again to another worker)")


@dataclass(frozen=True)
class Config:
    lore: LoreConfig = field(default_factory=LoreConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    tree: TreeConfig = field(default_factory=TreeConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    walkdiff: WalkdiffConfig = field(default_factory=WalkdiffConfig)
    build: BuildConfig = field(default_factory=BuildConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    boot: BootConfig = field(default_factory=BootConfig)
    stress: StressConfig = field(default_factory=StressConfig)
    selftests: SelftestsConfig = field(default_factory=SelftestsConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    workers: WorkersConfig = field(default_factory=WorkersConfig)
    arch: dict[str, ArchConfig] = field(default_factory=lambda: dict(DEFAULT_ARCH))
    source: Path | None = None  # the file it was read from, if any

    def arch_config(self, name: str) -> ArchConfig:
        """[arch.<name>]; a build variant without a table of its own has its base arch's settings."""
        if name not in self.arch and name in KNOWN_ARCHES:
            return self.arch[KNOWN_ARCHES[name].base]
        return self.arch[name]

    @property
    def cache(self) -> Path:
        """The one cache root ([paths] cache)."""
        return self.paths.cache


def _check_value(section: str, key: str, value: Any, hint: Any) -> Any:
    """Return value converted to the field's type, or raise UsageError naming the key."""
    where = f"[{section}] {key}"
    origin = typing.get_origin(hint)
    if hint is Path:
        if not isinstance(value, str):
            raise UsageError(f"config: {where} must be a string path, not {value!r}")
        return Path(value)
    if origin is dict:
        _, inner = typing.get_args(hint)
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise UsageError(f"config: {where} must be a table, not {value!r}")
        return {k: _check_value(section, f"{key}.{k}", v, inner) for k, v in value.items()}
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list) or not all(isinstance(v, item) for v in value):
            raise UsageError(f"config: {where} must be a list of {item.__name__}, not {value!r}")
        return list(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(hint, type) and (not isinstance(value, hint) or (hint is int and isinstance(value, bool))):
        raise UsageError(f"config: {where} must be {hint.__name__}, not {value!r}")
    return value


def _section(cls: type, name: str, data: Any, defaults: Any = None) -> Any:
    if not isinstance(data, dict):
        raise UsageError(f"config: [{name}] must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    # TOML keys that are Python keywords, spelled as the operator writes them ([report] from = ...).
    data = {KEY_ALIASES.get((name, k), k): v for k, v in data.items()}
    for key in data:
        if (name, key) in MOVED:
            raise UsageError(f"config: [{name}] {key} has moved: write it as {MOVED[(name, key)]}")
        if key not in known:
            raise UsageError(f"config: unknown key '{key}' in [{name}] (known: {', '.join(sorted(known))})")
    values = {k: _check_value(name, k, v, hints[k]) for k, v in data.items()}
    return dataclasses.replace(defaults, **values) if defaults is not None else cls(**values)


# What a build variant's [arch.<variant>] may not set: it shares these with its base arch (its selftests and
# stress programs are the base's; the kernel is built with the base's compiler).
BASE_ONLY = ("cross_compile", "stress_cc")


def _arches(data: Any) -> dict[str, ArchConfig]:
    """[arch.<name>] of the real arches (over DEFAULT_ARCH), then of build variants (over their base's)."""
    if not isinstance(data, dict):
        raise UsageError("config: [arch] must hold tables [arch.<name>]")
    out = dict(DEFAULT_ARCH)
    for name, table in data.items():
        if name not in DEFAULT_ARCH and name not in VARIANTS:
            raise UsageError(f"config: unknown architecture [arch.{name}] (known: {', '.join(DEFAULT_ARCH)}; "
                             f"build variants: {', '.join(VARIANTS)})")
        if name in DEFAULT_ARCH:
            out[name] = _section(ArchConfig, f"arch.{name}", table, DEFAULT_ARCH[name])
    for name, table in data.items():
        if name in VARIANTS:
            base = KNOWN_ARCHES[name].base
            for key in BASE_ONLY:
                if isinstance(table, dict) and key in table:
                    raise UsageError(f"config: [arch.{name}] {key}: a build variant uses its base arch's; set it "
                                     f"in [arch.{base}]")
            out[name] = _section(ArchConfig, f"arch.{name}", table, out[base])
    return out


def _resolve(paths: PathsConfig, base: Path) -> PathsConfig:
    resolved = PathsConfig(**{f.name: (base / getattr(paths, f.name)).resolve() for f in fields(paths)})
    if not (resolved.templates / "review.txt.j2").is_file():
        raise UsageError(f"config: [paths] templates: no review.txt.j2 in {resolved.templates}")
    return resolved


def load(path: Path | None = None) -> Config:
    """Read the config: --config, then $BOT_CONFIG, then ./config.toml, else all defaults."""
    explicit = path is not None or "BOT_CONFIG" in os.environ
    if path is None:
        path = Path(os.environ.get("BOT_CONFIG", "config.toml"))
    if not path.exists():
        if explicit:
            raise UsageError(f"config: {path} does not exist")
        return Config(paths=_resolve(PathsConfig(), Path.cwd()))
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"config: {path}: {e}") from e
    hints = typing.get_type_hints(Config)
    sections = {f.name for f in fields(Config) if f.name not in ("source", "arch")}
    for name in data:
        if name not in sections | {"arch"}:
            known = ", ".join(sorted(sections | {"arch.<name>"}))
            raise UsageError(f"config: unknown section [{name}] in {path} (known: {known})")
    parts: dict[str, Any] = {name: _section(hints[name], name, data.get(name, {})) for name in sections}
    parts["paths"] = _resolve(parts["paths"], path.resolve().parent)
    return Config(**parts, arch=_arches(data.get("arch", {})), source=path.resolve())
