"""Building a revision on every arch asked for, and telling which warnings it adds (and which patch added each).

The revision is built (make -k) after touching every file it changed relative to the base, so each changed
file's warnings are in its log (ccache replays a hit's warnings too); new = revision's minus the base's
(bot/build/base.py), matched by file, message and source line text (never by line number). Then the touched
files: which were compiled (coverage.py), W=1 of those, the KASAN config for the rest (objects.py). Last, the
revision's and the base's tools/testing/selftests/mm for the boot stage (selftests.py; shared when unchanged).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from bot import repo
from bot.build import coverage, objects, selftests
from bot.build import warnings as bw
from bot.build.base import BaseWork, base_image, prepare, reproduce_command
from bot.build.builder import Builder, MakeRun
from bot.build.kconfig import arch_notes
from bot.config import Config
from bot.errors import OperationalError
from bot.results import (
    BuildError,
    BuildResult,
    CompilerWarning,
    FileCoverage,
    Outputs,
    PatchRef,
    SelftestsBuild,
    StageContext,
)

log = logging.getLogger(__name__)

LOG_TAIL = 50
Key = tuple[str, str, str]


# ---------------------------------------------------------------- revision


def build_revision(config: Config, b: Builder, *, base: str, branch: str, commits: list[PatchRef],
                   work: BaseWork, rdir: Path) -> BuildResult:
    """Build the checked-out `branch` (already switched to) for b.arch and compare with the base: the new
    warnings (normal, W=1, KASAN config), which touched files were compiled, and the first error of a failure."""
    logs = rdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"build-{b.arch}.log"
    log_path.write_text("")
    stats0 = b.ccache_stats()
    res = BuildResult("ok", "", log=str(log_path), fragments=[f.name for f in b.frags], config_hash=b.hash,
                      build_dir=str(b.dir), command=reproduce_command(b), notes=list(b.notes) or None)
    conf = b.configure(log_path)
    if conf is not None and not conf.ok:
        return _failed_run("configure", conf, res)
    changed = repo.changed_files(b.tree, base, branch)
    since = time.time() - 1.0  # objects written from now on are this build's (mtime granularity)
    run = b.build(log_path, changed)
    res.seconds = round(run.seconds + (conf.seconds if conf else 0), 1)
    res.compiler = b.compiler()
    if run.timed_out or run.oom:
        return _failed_run("build", run, res)
    if dropped := b.dropped():
        res.status, res.detail = "error", f"config dropped requested options: {', '.join(dropped)}"
        return res
    diags = bw.with_text(bw.parse(run.output), bw.line_reader(b.tree, b.dir))
    res.coverage = coverage.measure(b.dir, b.tree, (b.dir / ".config").read_text(), changed, since,
                                    arch_notes(b.frags), {d.file for d in diags})
    new = bw.new_diagnostics(diags, work.diags)
    w1, variant, sources = _single_objects(b, work, res.coverage, diags, logs)
    res.ccache = ccache_delta(stats0, b.ccache_stats())
    first = attribute(config, b, base, branch, commits, new, w1.new, sources, logs) if new or w1.new else {}
    found = [(d, "") for d in new] + [(d, "w1") for d in w1.new] + [(d, "kasan") for d in variant.new]
    res.new_warnings = [_warning(d, first.get(d.key), how) for d, how in found if d.kind == "warning"]
    errors = [d for d in variant.new if d.kind == "error"]
    if not run.ok or errors:
        failed = _failed_run("build", run, res)
        if run.ok and errors:  # the image built; a touched file failed in the KASAN config
            failed.error = BuildError(errors[0].file, errors[0].line, errors[0].message)
            failed.detail = f"{errors[0].where()}: error: {errors[0].message} (KASAN config)"
        return failed
    _keep_image(b, base, rdir, res)
    count = len(res.new_warnings)
    what = f"{count} new warning(s)" if count else "no new warnings"
    res.detail = f"{b.spec.target} built in {run.seconds:.0f}s; {what}" + (
        f" (W=1 of {len(sources)} touched file(s): {w1.seconds:.0f}s)" if sources else "")
    return res


def _single_objects(b: Builder, work: BaseWork, cov: list[FileCoverage], diags: list[bw.Diagnostic],
                    logs: Path) -> tuple[objects.Compiled, objects.Compiled, list[str]]:
    """W=1 of the touched files the build compiled; the KASAN config for those it did not (their coverage
    entries then say so)."""
    sources = [c.file for c in cov if c.compiled and c.file.endswith(".c") and not c.via]
    w1 = objects.compile_new(b, sources, work.w1, diags, logs / f"build-{b.arch}-w1.log", w1=True)
    outside = [c for c in cov if not c.compiled and c.file.endswith(".c") and (b.tree / c.file).is_file()]
    if not outside or work.variant is None:
        return w1, objects.Compiled(), sources
    variant = work.variant.for_series()
    log = logs / f"build-{b.arch}-kasan-config.log"
    conf = variant.configure(log)
    if conf is not None and not conf.ok:
        return w1, objects.Compiled(), sources
    got = objects.compile_new(variant, [c.file for c in outside], work.variant_diags, [], log, w1=False)
    named = {d.file for d in got.new}
    for c in outside:
        if c.file in got.built or c.file in named:
            c.compiled, c.reason, c.config = True, None, "kasan"
    return w1, got, sources


def _warning(d: bw.Diagnostic, patch: PatchRef | None, how: str) -> CompilerWarning:
    """how: "" the normal build, "w1" its W=1 compile, "kasan" the KASAN config's compile of the file."""
    return CompilerWarning(d.file, d.line, d.where(), d.kind, d.message, d.text, patch, w1=how == "w1" or None,
                           config="kasan" if how == "kasan" else None)


def _keep_image(b: Builder, base: str, rdir: Path, res: BuildResult) -> None:
    """Copy the image and .config next to the results (the boot stage boots them), and name the base image."""
    out = rdir / f"build-{b.arch}"
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(b.image(), out / Path(b.spec.image).name)
    shutil.copy2(b.dir / ".config", out / "config")
    res.image, res.config = str(out / Path(b.spec.image).name), str(out / "config")
    if base_image(b, base).exists():
        res.base_image = str(base_image(b, base))


def ccache_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    def d(k: str) -> int:
        return after.get(k, 0) - before.get(k, 0)

    hits = d("direct_cache_hit") + d("preprocessed_cache_hit")
    return {"hits": hits, "misses": d("cache_miss")} if after else {}


def _failed_run(step: str, run: MakeRun, res: BuildResult) -> BuildResult:
    res.log_tail = run.output.splitlines()[-LOG_TAIL:]
    res.seconds = round(run.seconds, 1)
    if run.timed_out:
        res.status, res.detail = "error", f"{step} timeout after {run.seconds:.0f}s (killed)"
        return res
    if run.oom:
        res.status, res.detail = "error", f"{step} hit the memory limit ({run.seconds:.0f}s)"
        return res
    diags = bw.parse(run.output)
    errors = [d for d in diags if d.kind == "error"]
    if errors:
        res.error = BuildError(errors[0].file, errors[0].line, errors[0].message)
    res.status, res.detail = "failed", bw.first_error(diags, run.output)
    return res


def attribute(config: Config, b: Builder, base: str, branch: str, commits: list[PatchRef],
              new: list[bw.Diagnostic], new_w1: list[bw.Diagnostic], sources: list[str],
              logs: Path) -> dict[Key, PatchRef]:
    """Which patch first introduces each new warning: build each applied commit in order (only when needed;
    W=1 of the touched sources too when a W=1 warning is left to place)."""
    if len(commits) <= 1:
        return {d.key: commits[0] for d in new + new_w1} if commits else {}
    left = {d.key for d in new + new_w1}
    w1_left = {d.key for d in new_w1}
    found: dict[Key, PatchRef] = {}
    try:
        for c in commits[:-1]:
            assert c.commit is not None
            repo.switch(config, c.commit)
            log = logs / f"build-{b.arch}-patch{c.index}.log"
            run = b.build(log, repo.changed_files(b.tree, base, c.commit))
            output = run.output
            present = [s for s in sources if (b.tree / s).is_file()]
            if left & w1_left and present:
                output += b.w1(log, present).output
            here = {d.key for d in bw.with_text(bw.parse(output), bw.line_reader(b.tree, b.dir))}
            for key in list(left):
                if key in here:
                    found[key] = c
                    left.discard(key)
            if not left:
                break
    finally:
        repo.switch(config, branch)
    for key in left:
        found[key] = commits[-1]
    return found


# ---------------------------------------------------------------- the mm selftests (run by the boot stage)


def build_selftests(config: Config, b: Builder, ref: str, log_path: Path) -> SelftestsBuild | None:
    """tools/testing/selftests/mm of `ref` for b.arch (cached by its sources; checks `ref` out to build);
    None when [selftests] is off."""
    if not config.selftests.enabled:
        return None
    try:
        return selftests.build(config, b.arch, ref, b.compiler(), log_path)
    except OperationalError as e:
        return SelftestsBuild("", "", error=str(e), log=str(log_path))


def _with_selftests(res: BuildResult, config: Config, work: BaseWork, branch: str, base_tests: SelftestsBuild | None,
                    rdir: Path) -> BuildResult:
    """The revision's selftests beside its kernel (only when the kernel built: they are booted with it)."""
    if res.status == "ok":
        log_path = rdir / "logs" / f"selftests-{work.builder.arch}.log"
        res.selftests = build_selftests(config, work.builder, branch, log_path)
        res.base_selftests = base_tests
    return res


# ---------------------------------------------------------------- runner


def run_stage(ctx: StageContext) -> Outputs:
    """Build the applied revision for each arch: stages.build.<arch>."""
    config, applied = ctx.config, ctx.revision.stages.apply
    if applied.status != "ok" or not applied.branch or not applied.commits:
        why: str = "not run" if applied.status == "not_run" else applied.status
        return {"build": {a: BuildResult("skipped", f"apply {why}: not built") for a in ctx.arches}}
    tree = Path(config.paths.kernel_tree)
    branch = applied.branch
    commits = [PatchRef(c.index, c.subject, c.commit) for c in applied.commits]
    base = ctx.revision.base.commit or repo.git(tree, "rev-parse", f"{commits[0].commit}^").stdout.strip()
    sources = [f for f in repo.changed_files(tree, base, branch) if f.endswith(".c")]
    out: dict[str, BuildResult] = {}
    works: dict[str, BaseWork] = {}
    for arch in ctx.arches:  # every base first (with the touched files' single-object compiles), then one switch
        try:
            work, why = prepare(config, Builder(config, arch, tree), base, sources)
        except OperationalError as e:
            out[arch] = BuildResult("error", str(e))
            continue
        if work is None:
            out[arch] = BuildResult("error", f"base {base[:12]}: {why}")
            continue
        works[arch] = work
    logs = ctx.rdir / "logs"
    base_tests = {arch: build_selftests(config, w.builder, base, logs / f"selftests-base-{arch}.log")
                  for arch, w in works.items()}  # the base's, for the base kernel's run of the same tests
    if works:
        repo.switch(config, branch)
    for arch, work in works.items():
        try:
            res = build_revision(config, work.builder.for_series(), base=base, branch=branch,
                                 commits=commits, work=work, rdir=ctx.rdir)
            out[arch] = _with_selftests(res, config, work, branch, base_tests[arch], ctx.rdir)
        except OperationalError as e:
            out[arch] = BuildResult("error", str(e))
    return {"build": out}
