"""The build stage: each applied revision built for x86_64 and arm64, sandboxed, reporting only new warnings.

- Config: `make tinyconfig` + the fragments in bot/kconfig/ (merge_config.sh -m) + `make olddefconfig`,
  then every requested option is checked in .config (a dropped one is an error, named).
- Build dirs persist under bot.tree.cache_dir()/build/<arch>-<config hash> (O=), so a revision touching
  mm/rmap.c recompiles a few objects; ccache sits under cache_dir()/ccache. Only trusted code (the base)
  is built there: a series is built in a fresh copy, <arch>-<hash>-series, with ccache read-only and the
  tree read-only, so nothing a patch's Makefile or generator writes can reach a later build or the host.
- Inside the sandbox the tree is always /src and the build dir /build: compiler command lines are the same
  whatever directory CI cloned into, so ccache hits survive a new checkout.
- New warnings: the base is built once with a full log (its warnings cached by base commit + arch + config
  hash); the revision is built after touching every file it changed relative to the base, so each changed
  file's warnings are in its log (ccache replays a hit's warnings too); new = revision's minus base's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot import build_warnings as bw
from bot import sandbox
from bot import tree as kt
from bot.config import Config
from bot.errors import OperationalError
from bot.results import RevisionResult, StageResult, revision_dir, write_json_atomic

log = logging.getLogger(__name__)

KCONFIG_DIR = Path(__file__).parent / "kconfig"
SRC, BUILD, CCACHE, KCONFIG = "/src", "/build", "/ccache", "/kconfig"  # fixed paths inside the sandbox
LOG_TAIL = 50
CONFIGURED = ".bot-configured"  # marker in a build dir: configured from its fragments
STATSLOG = ".bot-ccache-stats.log"  # a series build's ccache outcomes (its cache is read-only)
STATSLOG_MAX = 16 << 20  # bytes of it read at most
BUILT = ".bot-built"  # marker: a build of this dir finished (for humans and the boot stage)
WARNINGS_FORMAT = 2  # bump when the cached base-warnings format or matching changes


@dataclass(frozen=True)
class ArchSpec:
    karch: str  # ARCH= for make
    srcarch: str  # merge_config.sh's ARCH (the arch/ subdirectory)
    target: str
    image: str  # relative to the build dir
    package: str  # Debian package with the compiler


ARCH_SPECS = {
    "x86_64": ArchSpec("x86_64", "x86", "bzImage", "arch/x86/boot/bzImage", "gcc"),
    "arm64": ArchSpec("arm64", "arm64", "Image", "arch/arm64/boot/Image", "gcc-aarch64-linux-gnu"),
}


class ToolMissing(OperationalError):
    pass


# ---------------------------------------------------------------- kconfig


def fragments(config: Config, arch: str) -> list[Path]:
    names = ["common.config", f"{arch}.config"] + (["kasan.config"] if config.build.kasan else [])
    return [KCONFIG_DIR / n for n in names]


def config_hash(arch: str, frags: list[Path], cross: str) -> str:
    """Build dirs and cached base warnings are keyed by this: arch, compiler prefix, fragment contents."""
    h = hashlib.sha256(f"{arch}\0{cross}\0".encode())
    for f in frags:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def requested_options(frags: list[Path]) -> dict[str, str]:
    """CONFIG_X -> value ('n' for '# CONFIG_X is not set'); later fragments win, like merge_config.sh."""
    want: dict[str, str] = {}
    for f in frags:
        for line in f.read_text().splitlines():
            line = line.strip()
            if line.startswith("CONFIG_") and "=" in line:
                k, v = line.split("=", 1)
                want[k] = v
            elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
                want[line[2:].split()[0]] = "n"
    return want


def dropped_options(want: dict[str, str], dotconfig: str) -> list[str]:
    """Requested options that olddefconfig did not keep (unmet dependency, typo, arch without it)."""
    have: dict[str, str] = {}
    for line in dotconfig.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, v = line.split("=", 1)
            have[k] = v
    out = []
    for k, v in want.items():
        got = have.get(k, "n")
        if got != v:
            out.append(f"{k}={v} (got {got if k in have else 'unset'})")
    return out


# ---------------------------------------------------------------- one arch's builder


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
    cache: Path = field(default_factory=kt.cache_dir)
    notes: list[str] = field(default_factory=list)  # warnings about the build setup, for the result
    untrusted: bool = False  # a series' code: see for_series()

    def __post_init__(self) -> None:
        if self.arch not in ARCH_SPECS:
            raise OperationalError(f"unknown arch {self.arch!r} (known: {', '.join(ARCH_SPECS)})")
        self.spec = ARCH_SPECS[self.arch]
        self.cross = getattr(self.config.build, f"cross_compile_{self.arch}")
        self.cc = f"{self.cross}gcc"
        cc_path = shutil.which(self.cc)
        if cc_path is None:
            raise ToolMissing(f"compiler {self.cc} not found: install the Debian package {self.spec.package}"
                              f" (apt-get install {self.spec.package}) or set [build] cross_compile_{self.arch}")
        # Tools are looked up on the host but run inside, where only /usr is mounted.
        if not Path(cc_path).resolve().is_relative_to("/usr"):
            raise ToolMissing(f"compiler {cc_path} is outside /usr, which is all the sandbox sees")
        self.ccache: str | None = None
        if self.config.build.ccache:
            self.ccache = shutil.which(self.config.build.ccache)
            if self.ccache is None:
                self.notes.append(f"ccache ({self.config.build.ccache}) not found: building without it (slower)")
                log.warning("%s", self.notes[-1])
        self.frags = fragments(self.config, self.arch)
        self.hash = config_hash(self.arch, self.frags, self.cross)
        self.trusted_dir = self.cache / "build" / f"{self.arch}-{self.hash}"
        self.dir = self.trusted_dir.with_name(f"{self.trusted_dir.name}-series") if self.untrusted else self.trusted_dir
        self.ccache_dir = self.cache / "ccache"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ccache_dir.mkdir(parents=True, exist_ok=True)

    def for_series(self) -> Builder:
        """A builder for a series' (untrusted) code: a fresh copy of this build dir, ccache only read, so a
        planted object, script or future-dated file dies with the copy instead of reaching the next build."""
        b = dataclasses.replace(self, untrusted=True, notes=list(self.notes))
        shutil.rmtree(b.dir, ignore_errors=True)
        shutil.copytree(self.trusted_dir, b.dir, symlinks=True)  # copy2: mtimes kept, make stays incremental
        return b

    # -- sandbox

    def box(self) -> sandbox.Sandbox:
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
            sandbox.Bind(self.tree, SRC),  # O= builds never write the source tree (and .git stays out of reach)
            sandbox.Bind(self.dir, BUILD, writable=True),
            sandbox.Bind(KCONFIG_DIR, KCONFIG),
        ]
        if self.ccache:
            binds.append(sandbox.Bind(self.ccache_dir, CCACHE, writable=not self.untrusted))
        mem = self.config.build.memory_max_mib << 20
        return sandbox.Sandbox(binds=binds, env=env, cwd=SRC, memory_max=mem)

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
        out = sandbox.run(self.box(), cmd, timeout=self.config.build.timeout, log_path=log_path)
        with open(log_path, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        if out.timed_out:
            with open(log_path, "a") as f:
                f.write(f"\n*** killed: timeout after {self.config.build.timeout:.0f}s\n")
        return MakeRun(out.returncode == 0 and not out.timed_out, out.seconds, text, out.timed_out, out.oom)

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
        run = self.run(self.make_args(self.spec.target), log_path)
        if run.ok:
            (self.dir / BUILT).touch()
        return run

    def image(self) -> Path:
        return self.dir / self.spec.image

    def compiler(self) -> str:
        proc = kt.run([self.cc, "--version"], timeout=30, check=False)
        return (proc.stdout.splitlines() or ["?"])[0]

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
            proc = kt.run([self.ccache, "--print-stats"], timeout=30, env=env, check=False)
        except OperationalError:
            return {}
        stats = {}
        for line in proc.stdout.splitlines():
            k, _, v = line.partition("\t")
            if v.strip().isdigit():
                stats[k] = int(v)
        return stats


def ccache_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    def d(k: str) -> int:
        return after.get(k, 0) - before.get(k, 0)

    hits = d("direct_cache_hit") + d("preprocessed_cache_hit")
    return {"hits": hits, "misses": d("cache_miss")} if after else {}


# ---------------------------------------------------------------- base warnings


def _warnings_path(b: Builder, base: str) -> Path:
    return b.cache / "build" / "warnings" / f"{b.arch}-{b.hash}-{base}-v{WARNINGS_FORMAT}.json"


def reproduce_command(b: Builder) -> str:
    """The same build for a developer's own tree (fragments from the bot's bot/kconfig/), without the sandbox."""
    out = f"build-{b.arch}"
    make = f"make ARCH={b.spec.karch}" + (f" CROSS_COMPILE={b.cross}" if b.cross else "") + f" O={out}"
    frags = " ".join(f"bot/kconfig/{f.name}" for f in b.frags)
    return (f"{make} tinyconfig && ARCH={b.spec.srcarch} scripts/kconfig/merge_config.sh -m -O {out} "
            f"{out}/.config {frags} && {make} olddefconfig && {make} -j$(nproc) {b.spec.target}")


def base_image(b: Builder, base: str) -> Path:
    return _warnings_path(b, base).with_suffix("." + Path(b.spec.image).name)


def base_diagnostics(config: Config, b: Builder, base: str) -> tuple[list[bw.Diagnostic] | None, str]:
    """The base's warnings for this arch+config, from the cache or from one full build of the base.

    Returns (diagnostics, "") or (None, why not). Leaves the tree checked out at `base` if it built.
    """
    path = _warnings_path(b, base)
    if path.exists() and base_image(b, base).exists():  # an entry without the image predates it: rebuild
        data = json.loads(path.read_text())
        return [bw.Diagnostic.from_json(d) for d in data["diagnostics"]], ""
    kt.switch(config, base)
    log_path = path.with_suffix(".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    conf = b.configure(log_path)
    if conf is not None and not conf.ok:
        return None, _why("configuring the base", conf, log_path)
    if dropped := b.dropped():
        return None, f"config dropped requested options: {', '.join(dropped)}"
    # A full log needs every object compiled: clean first (ccache makes this ~1 min when warm).
    run = b.build(log_path, [], clean=True)
    if not run.ok:
        return None, _why(f"building the base {base[:12]}", run, log_path)
    diags = bw.with_text(bw.parse(run.output), bw.line_reader(b.tree, b.dir))
    shutil.copy2(b.image(), base_image(b, base))  # the boot stage may boot the base to tell old bugs from new
    write_json_atomic(path, {"base": base, "arch": b.arch, "config_hash": b.hash, "seconds": run.seconds,
                         "diagnostics": [d.to_json() for d in diags]})
    return diags, ""


def _why(what: str, run: MakeRun, log_path: Path) -> str:
    if run.timed_out:
        return f"{what}: timeout after {run.seconds:.0f}s (log: {log_path})"
    if run.oom:
        return f"{what}: memory limit hit (log: {log_path})"
    return f"{what} failed: {bw.first_error(bw.parse(run.output), run.output)} (log: {log_path})"


# ---------------------------------------------------------------- revision


def changed_files(tree: Path, base: str, rev: str) -> list[str]:
    return kt.git(tree, "diff", "--name-only", "--no-renames", base, rev).stdout.split()


def build_revision(config: Config, b: Builder, *, base: str, branch: str, commits: list[dict[str, Any]],
                   base_diags: list[bw.Diagnostic], rdir: Path) -> StageResult:
    """Build the checked-out `branch` (already switched to) for b.arch and compare with the base."""
    logs = rdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"build-{b.arch}.log"
    log_path.write_text("")
    stats0 = b.ccache_stats()
    extra: dict[str, Any] = {"log": str(log_path), "fragments": [f.name for f in b.frags],
                             "config_hash": b.hash, "build_dir": str(b.dir), "command": reproduce_command(b)}
    if b.notes:
        extra["notes"] = list(b.notes)
    conf = b.configure(log_path)
    if conf is not None and not conf.ok:
        return _failed_run("configure", conf, log_path, extra)
    run = b.build(log_path, changed_files(b.tree, base, branch))
    extra["seconds"] = round(run.seconds + (conf.seconds if conf else 0), 1)
    extra["compiler"] = b.compiler()
    extra["ccache"] = ccache_delta(stats0, b.ccache_stats())
    if not run.ok:
        return _failed_run("build", run, log_path, extra)
    if dropped := b.dropped():
        return StageResult("error", f"config dropped requested options: {', '.join(dropped)}", extra)
    diags = bw.with_text(bw.parse(run.output), bw.line_reader(b.tree, b.dir))
    new = bw.new_diagnostics(diags, base_diags)
    first = attribute(config, b, base, branch, commits, new, logs) if new else {}
    extra["new_warnings"] = [_warning_json(d, first.get(d.key)) for d in new]
    out = rdir / f"build-{b.arch}"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(b.image(), out / Path(b.spec.image).name)
    shutil.copy2(b.dir / ".config", out / "config")
    extra["image"] = str(out / Path(b.spec.image).name)
    extra["config"] = str(out / "config")
    if base_image(b, base).exists():
        extra["base_image"] = str(base_image(b, base))
    what = f"{len(new)} new warning(s)" if new else "no new warnings"
    return StageResult("ok", f"{b.spec.target} built in {run.seconds:.0f}s; {what}", extra)


def _warning_json(d: bw.Diagnostic, patch: dict[str, Any] | None) -> dict[str, Any]:
    return {"file": d.file, "line": d.line, "where": d.where(), "kind": d.kind, "message": d.message,
            "text": d.text, "patch": patch}


def _failed_run(step: str, run: MakeRun, log_path: Path, extra: dict[str, Any]) -> StageResult:
    extra["log_tail"] = run.output.splitlines()[-LOG_TAIL:]
    extra["seconds"] = round(run.seconds, 1)
    if run.timed_out:
        return StageResult("error", f"{step} timeout after {run.seconds:.0f}s (killed)", extra)
    if run.oom:
        return StageResult("error", f"{step} hit the memory limit ({run.seconds:.0f}s)", extra)
    diags = bw.parse(run.output)
    errors = [d for d in diags if d.kind == "error"]
    if errors:
        extra["error"] = {"file": errors[0].file, "line": errors[0].line, "message": errors[0].message}
    return StageResult("failed", bw.first_error(diags, run.output), extra)


def attribute(config: Config, b: Builder, base: str, branch: str, commits: list[dict[str, Any]],
              new: list[bw.Diagnostic], logs: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Which patch first introduces each new warning: build each applied commit in order (only when needed)."""
    def info(c: dict[str, Any]) -> dict[str, Any]:
        return {"index": c.get("index"), "subject": c.get("subject"), "commit": c.get("commit")}

    if len(commits) <= 1:
        return {d.key: info(commits[0]) for d in new} if commits else {}
    left = {d.key for d in new}
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    try:
        for c in commits[:-1]:
            kt.switch(config, c["commit"])
            run = b.build(logs / f"build-{b.arch}-patch{c.get('index')}.log", changed_files(b.tree, base, c["commit"]))
            if not run.ok:
                continue  # a broken intermediate patch: its warnings are attributed to a later one
            here = {d.key for d in bw.with_text(bw.parse(run.output), bw.line_reader(b.tree, b.dir))}
            for key in list(left):
                if key in here:
                    found[key] = info(c)
                    left.discard(key)
            if not left:
                break
    finally:
        kt.switch(config, branch)
    for key in left:
        found[key] = info(commits[-1])
    return found


# ---------------------------------------------------------------- runner


def run_stage(config: Config, series: dict[str, Any], result: RevisionResult, results: list[RevisionResult],
              arches: list[str]) -> None:
    """Pipeline runner: build the applied revision for each arch; stages.build.<arch>."""
    applied = result.stages.get("apply") or {}
    if applied.get("status") != "ok":
        for arch in arches:
            result.set_stage("build", StageResult("skipped", f"apply {applied.get('status', 'not run')}: not built"),
                             arch=arch)
        return
    tree = Path(config.paths.kernel_tree)
    rdir = revision_dir(config.paths.patchsets, series["slug"], result.version)
    branch = applied["branch"]
    base = result.base.commit or kt.git(tree, "rev-parse", f"{applied['commits'][0]['commit']}^").stdout.strip()
    builders: dict[str, Builder] = {}
    base_diags: dict[str, list[bw.Diagnostic]] = {}
    for arch in arches:  # every base first, then one switch to the revision
        try:
            builders[arch] = b = Builder(config, arch, tree)
            diags, why = base_diagnostics(config, b, base)
        except OperationalError as e:
            result.set_stage("build", StageResult("error", str(e)), arch=arch)
            builders.pop(arch, None)
            continue
        if diags is None:
            result.set_stage("build", StageResult("error", f"base {base[:12]}: {why}"), arch=arch)
            continue
        base_diags[arch] = diags
    if not base_diags:
        return
    kt.switch(config, branch)
    for arch, diags in base_diags.items():
        try:
            stage = build_revision(config, builders[arch].for_series(), base=base, branch=branch,
                                   commits=list(applied.get("commits", [])), base_diags=diags, rdir=rdir)
        except OperationalError as e:
            stage = StageResult("error", str(e))
        result.set_stage("build", stage, arch=arch)
