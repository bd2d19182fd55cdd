"""Building a revision on every arch asked for, and telling which warnings it adds (and which patch added each).

New warnings: the base is built once with a full log (its warnings cached by base commit + arch + config
hash, its image kept for the boot stage); the revision is built after touching every file it changed
relative to the base, so each changed file's warnings are in its log (ccache replays a hit's warnings too);
new = revision's minus base's, matched by file, message and source line text (never by line number).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from bot import repo
from bot.build import coverage, w1
from bot.build import warnings as bw
from bot.build.builder import Builder, MakeRun
from bot.build.kconfig import arch_notes
from bot.config import Config
from bot.errors import OperationalError
from bot.results import BuildError, BuildResult, CompilerWarning, Outputs, PatchRef, StageContext, write_json_atomic

log = logging.getLogger(__name__)

LOG_TAIL = 50
WARNINGS_FORMAT = 2  # bump when the cached base-warnings format or matching changes
Key = tuple[str, str, str]


# ---------------------------------------------------------------- base warnings


def _warnings_path(b: Builder, base: str) -> Path:
    return b.cache / "build" / "warnings" / f"{b.arch}-{b.hash}-{base}-v{WARNINGS_FORMAT}.json"


def reproduce_command(b: Builder) -> str:
    """The same build for a developer's own tree (fragments from the bot's checkout), without the sandbox."""
    out = f"build-{b.arch}"
    make = f"make ARCH={b.spec.karch}" + (f" CROSS_COMPILE={b.cross}" if b.cross else "") + f" O={out}"
    frags = " ".join(f"bot/build/kconfig/{f.name}" for f in b.frags)
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
    repo.switch(config, base)
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


def build_revision(config: Config, b: Builder, *, base: str, branch: str, commits: list[PatchRef],
                   base_diags: list[bw.Diagnostic], base_w1: dict[str, list[bw.Diagnostic]],
                   rdir: Path) -> BuildResult:
    """Build the checked-out `branch` (already switched to) for b.arch and compare with the base: the new
    warnings (normal and W=1), which touched files were compiled, and the first error of a failed build."""
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
    new = bw.new_diagnostics(diags, base_diags)
    sources = [c.file for c in res.coverage if c.compiled and c.file.endswith(".c") and not c.via]
    new_w1, w1_seconds = w1.new_w1(b, sources, base_w1, diags, logs / f"build-{b.arch}-w1.log")
    res.ccache = ccache_delta(stats0, b.ccache_stats())
    first = attribute(config, b, base, branch, commits, new, new_w1, sources, logs) if new or new_w1 else {}
    res.new_warnings = [_warning(d, first.get(d.key), False) for d in new if d.kind == "warning"] + [
        _warning(d, first.get(d.key), True) for d in new_w1 if d.kind == "warning"]
    if not run.ok:
        return _failed_run("build", run, res)
    _keep_image(b, base, rdir, res)
    count = len(res.new_warnings)
    what = f"{count} new warning(s)" if count else "no new warnings"
    res.detail = f"{b.spec.target} built in {run.seconds:.0f}s; {what}" + (
        f" (W=1 of {len(sources)} touched file(s): {w1_seconds:.0f}s)" if sources else "")
    return res


def _warning(d: bw.Diagnostic, patch: PatchRef | None, w1: bool) -> CompilerWarning:
    return CompilerWarning(d.file, d.line, d.where(), d.kind, d.message, d.text, patch, w1=w1 or None)


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
    builders: dict[str, Builder] = {}
    base_diags: dict[str, list[bw.Diagnostic]] = {}
    base_w1: dict[str, dict[str, list[bw.Diagnostic]]] = {}
    for arch in ctx.arches:  # every base first (normal and W=1 of the touched files), then one switch
        try:
            builders[arch] = b = Builder(config, arch, tree)
            diags, why = base_diagnostics(config, b, base)
            if diags is not None:
                if sources:
                    repo.switch(config, base)  # W=1 compiles the base's own sources (cached base results don't)
                base_w1[arch] = w1.base_w1(b, base, sources, _warnings_path(b, base).with_suffix(".w1.log"))
        except OperationalError as e:
            out[arch] = BuildResult("error", str(e))
            continue
        if diags is None:
            out[arch] = BuildResult("error", f"base {base[:12]}: {why}")
            continue
        base_diags[arch] = diags
    if base_diags:
        repo.switch(config, branch)
    for arch, diags in base_diags.items():
        try:
            out[arch] = build_revision(config, builders[arch].for_series(), base=base, branch=branch,
                                       commits=commits, base_diags=diags, base_w1=base_w1[arch], rdir=ctx.rdir)
        except OperationalError as e:
            out[arch] = BuildResult("error", str(e))
    return {"build": out}
