"""One arch's kernel build: a persistent build dir per config, make in the sandbox, ccache.

Build dirs persist under <cache>/build/<arch>-<config hash> (O=), so a revision touching mm/rmap.c recompiles
a few objects; ccache sits under <cache>/ccache. Only trusted code (the base) is built there: a series is
built in a fresh copy, <arch>-<hash>-series, with ccache read-only and the tree read-only, so nothing a
patch's Makefile or generator writes can reach a later build or the host. Inside the sandbox the tree is
always /src and the build dir /build: compiler command lines are the same whatever directory CI cloned
into, so ccache hits survive a new checkout.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from bot import proc
from bot.arches import ARCHES
from bot.build.kconfig import config_hash, dropped_options, fragments, requested_options
from bot.config import Config
from bot.errors import OperationalError

log = logging.getLogger(__name__)

SRC, BUILD, CCACHE, KCONFIG = "/src", "/build", "/ccache", "/kconfig"  # fixed paths inside the sandbox
CONFIGURED = ".bot-configured"  # marker in a build dir: configured from its fragments
STATSLOG = ".bot-ccache-stats.log"  # a series build's ccache outcomes (its cache is read-only)
STATSLOG_MAX = 16 << 20  # bytes of it read at most
BUILT = ".bot-built"  # marker: a build of this dir finished (for humans and the boot stage)


class ToolMissing(OperationalError):
    pass


@dataclass
class MakeRun:
    ok: bool
    seconds: float
    output: str  # what this invocation wrote to the log
    timed_out: bool = False
    oom: bool = False


@dataclass
class Builder:
    config: Config
    arch: str
    tree: Path
    notes: list[str] = field(default_factory=list)  # warnings about the build setup, for the result
    untrusted: bool = False  # a series' code: see for_series()
    kasan: bool | None = None  # the KASAN fragments too (None: as [build] kasan says)

    def __post_init__(self) -> None:
        if self.arch not in ARCHES:
            raise OperationalError(f"unknown arch {self.arch!r} (known: {', '.join(ARCHES)})")
        self.spec = ARCHES[self.arch]
        self.cache = self.config.cache
        self.cross = self.config.arch_config(self.arch).cross_compile
        self.cc = f"{self.cross}gcc"
        cc_path = shutil.which(self.cc)
        if cc_path is None:
            pkg = self.spec.compiler_package
            raise ToolMissing(f"compiler {self.cc} not found: install the Debian package {pkg} (apt-get install "
                              f"{pkg}) or set [arch.{self.spec.base}] cross_compile")
        # Tools are looked up on the host but run inside, where only /usr is mounted.
        if not Path(cc_path).resolve().is_relative_to("/usr"):
            raise ToolMissing(f"compiler {cc_path} is outside /usr, which is all the sandbox sees")
        self.ccache: str | None = None
        if self.config.build.ccache:
            self.ccache = shutil.which(self.config.build.ccache)
            if self.ccache is None:
                self.notes.append(f"ccache ({self.config.build.ccache}) not found: building without it (slower)")
                log.warning("%s", self.notes[-1])
        self.frags = fragments(self.config, self.arch, self.kasan)
        self.hash = config_hash(self.arch, self.frags, self.cross)
        self.trusted_dir = self.cache / "build" / f"{self.arch}-{self.hash}"
        self.dir = self.trusted_dir.with_name(f"{self.trusted_dir.name}-series") if self.untrusted else self.trusted_dir
        self.ccache_dir = self.cache / "ccache"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ccache_dir.mkdir(parents=True, exist_ok=True)

    @property
    def kasan_enabled(self) -> bool:
        return any(f.name == "kasan.config" for f in self.frags)

    def for_series(self) -> Builder:
        """A builder for a series' (untrusted) code: a fresh copy of this build dir, ccache only read, so a
        planted object, script or future-dated file dies with the copy instead of reaching the next build."""
        b = dataclasses.replace(self, untrusted=True, notes=list(self.notes))
        shutil.rmtree(b.dir, ignore_errors=True)
        shutil.copytree(self.trusted_dir, b.dir, symlinks=True)  # copy2: mtimes kept, make stays incremental
        return b

    # -- sandbox

    def box(self) -> proc.Sandbox:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/tmp",
            "LC_ALL": "C",  # diagnostics are parsed: English, plain quotes
            "KBUILD_BUILD_TIMESTAMP": "2023-11-14",  # reproducible: version.c etc. don't change per run
            "KBUILD_BUILD_USER": "mm-review-bot",
            "KBUILD_BUILD_HOST": "sandbox",
            "CCACHE_DIR": CCACHE,
            "CCACHE_BASEDIR": "/",  # relative paths in the hash; with /src and /build fixed, belt and braces
            "CCACHE_NOHASHDIR": "1",  # the cwd (build dir) must not split the cache
            "CCACHE_MAXSIZE": "10G",
            # compiler_check stays mtime (default): dpkg keeps a package's mtimes, an upgrade changes them
        }
        if self.untrusted:  # hits are used, nothing is stored: a series cannot plant objects for others
            # a read-only cache cannot count its hits: each compile's outcome goes to a log in the build dir
            env |= {"CCACHE_READONLY": "1", "CCACHE_TEMPDIR": "/tmp", "CCACHE_STATSLOG": f"{BUILD}/{STATSLOG}"}
        binds = [
            proc.Bind(self.tree, SRC),  # O= builds never write the source tree (and .git stays out of reach)
            proc.Bind(self.dir, BUILD, writable=True),
            proc.Bind(self.frags[0].parent, KCONFIG),
        ]
        if self.ccache:
            binds.append(proc.Bind(self.ccache_dir, CCACHE, writable=not self.untrusted))
        mem = self.config.build.memory_max_mib << 20
        return proc.Sandbox(binds=binds, env=env, cwd=SRC, memory_max=mem)

    def make_args(self, *targets: str) -> list[str]:
        jobs = self.config.build.jobs or os.cpu_count() or 1
        cc = f"{self.ccache} {self.cc}" if self.ccache else self.cc
        hostcc = f"{self.ccache} gcc" if self.ccache else "gcc"
        return ["make", f"O={BUILD}", f"ARCH={self.spec.karch}", f"CROSS_COMPILE={self.cross}", f"CC={cc}",
                f"HOSTCC={hostcc}", f"-j{jobs}", *targets]

    def run(self, cmd: list[str], log_path: Path) -> MakeRun:
        start = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as f:
            f.write(f"$ {' '.join(cmd)}\n".encode())
        out = proc.run(cmd, timeout=self.config.build.timeout, log=log_path, sandbox=self.box())
        with open(log_path, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        if out.timed_out:
            with open(log_path, "a") as f:
                f.write(f"\n*** killed: timeout after {self.config.build.timeout:.0f}s\n")
        return MakeRun(out.ok, out.seconds, text, out.timed_out, out.oom)

    # -- steps

    def configure(self, log_path: Path) -> MakeRun | None:
        """tinyconfig + fragments + olddefconfig, once per build dir (make's syncconfig follows Kconfig edits)."""
        if (self.dir / CONFIGURED).exists() and (self.dir / ".config").exists():
            return None
        (self.dir / CONFIGURED).unlink(missing_ok=True)
        make = " ".join(f"'{a}'" for a in self.make_args())
        frags = " ".join(f"{KCONFIG}/{f.name}" for f in self.frags)
        # merge_config.sh makes its temp file in the cwd: run it in the build dir, the tree is read-only
        script = (f"{make} tinyconfig && (cd {BUILD} && ARCH={self.spec.srcarch} CROSS_COMPILE='{self.cross}' "
                  f"{SRC}/scripts/kconfig/merge_config.sh -m -O {BUILD} {BUILD}/.config {frags}) && "
                  f"{make} olddefconfig")
        run = self.run(["sh", "-c", script], log_path)
        if run.ok:
            (self.dir / CONFIGURED).write_text(self.hash + "\n")
        return run

    def dropped(self) -> list[str]:
        try:
            return dropped_options(requested_options(self.frags), (self.dir / ".config").read_text())
        except FileNotFoundError:
            return ["(no .config)"]

    def build(self, log_path: Path, changed: list[str], clean: bool = False) -> MakeRun:
        """make the image; `changed` files are touched first so their warnings are emitted again."""
        if clean:  # always: a build killed midway leaves objects whose warnings would be missing from the log
            c = self.run(self.make_args("clean"), log_path)
            if not c.ok:
                return c
        now = time.time()
        for rel in changed:
            p = self.tree / rel
            if p.is_file():
                os.utime(p, (now, now))
        # a series builds with -k: every error and warning of the revision in one build, not just the first
        run = self.run(self.make_args(*(["-k"] if self.untrusted else []), self.spec.target), log_path)
        if run.ok:
            (self.dir / BUILT).touch()
        return run

    def compile(self, log_path: Path, sources: list[str], w1: bool = False) -> MakeRun:
        """`make -k [W=1] <objects>` for the given .c files (W=1: the extra warnings 0-day reports for mm)."""
        return self.run(self.make_args("-k", *(["W=1"] if w1 else []), *(s[:-2] + ".o" for s in sources)), log_path)

    def w1(self, log_path: Path, sources: list[str]) -> MakeRun:
        return self.compile(log_path, sources, w1=True)

    def rebuild_objects(self, log_path: Path, sources: list[str]) -> MakeRun:
        """The given objects again with the normal flags (after w1() in the trusted dir)."""
        return self.run(self.make_args(*(s[:-2] + ".o" for s in sources)), log_path)

    def image(self) -> Path:
        return self.dir / self.spec.image

    def compiler(self) -> str:
        return (proc.run([self.cc, "--version"], timeout=30).stdout.splitlines() or ["?"])[0]

    def ccache_stats(self) -> dict[str, int]:
        if not self.ccache:
            return {}
        if self.untrusted:  # lines like "direct_cache_hit" per compile, "# file" before each
            try:
                with open(self.dir / STATSLOG, "rb") as f:
                    lines = f.read(STATSLOG_MAX).decode(errors="replace").split()  # the series wrote it: bounded
            except FileNotFoundError:  # nothing compiled
                lines = []
            return {k: lines.count(k) for k in ("direct_cache_hit", "preprocessed_cache_hit", "cache_miss")}
        env = {**os.environ, "CCACHE_DIR": str(self.ccache_dir)}
        try:
            out = proc.run([self.ccache, "--print-stats"], timeout=30, env=env)
        except OperationalError:
            return {}
        stats = {}
        for line in out.stdout.splitlines():
            k, _, v = line.partition("\t")
            if v.strip().isdigit():
                stats[k] = int(v)
        return stats


def ccache_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    def d(k: str) -> int:
        return after.get(k, 0) - before.get(k, 0)

    hits = d("direct_cache_hit") + d("preprocessed_cache_hit")
    return {"hits": hits, "misses": d("cache_miss")} if after else {}
