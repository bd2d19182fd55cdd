"""The only place that knows the order of the stages: fetch, then per revision apply, build, boot, walkdiff,
report, each result written to result.json as it lands.

In: a Message-ID (any message of the series) or a fetch.LocalSource (an mbox or a git range: a local check),
the stages and arches to run. Out: `Run` (series.json's summary and every revision's RevisionResult). Each
runner gets a results.StageContext and returns results.Outputs; nothing else writes result.json. A result
whose inputs are unchanged is reused (bot/reuse.py). The boots of the arches run side by side when the cores
allow (parallel_arches); apply and build share the kernel tree's one work tree and run one at a time.

A local check is never posted: it runs with [report] mode "dry-run" whatever the config says (the reply is
rendered into the outbox, for reading), every stage for the revision checked and, for the revisions before
it, only what the walk diff needs (apply).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot import boot, build, fetch, repo, report, reuse, tree, walkdiff, workers
from bot.arches import with_variants
from bot.config import STAGES, Config
from bot.errors import BadInput, UsageError
from bot.results import (
    PER_ARCH_STAGES,
    ApplyResult,
    Outputs,
    ReportResult,
    RevisionResult,
    SeriesSummary,
    StageContext,
    StageResult,
    revision_dir,
    save_revision,
)

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
StageHook = Callable[[str, RevisionResult], None]  # (stage, revision) before the stage runs
Runner = Callable[[StageContext], Outputs]

# Per-revision stages after fetch, in order. A runner may fill more than one stage (boot: boot, stress, selftests).
RUNNERS: dict[str, Runner] = {
    "apply": tree.run_stage,
    "build": build.run_stage,
    "boot": boot.run_stage,
    "walkdiff": lambda ctx: walkdiff.run_stage(ctx, functools.partial(fetch.find_fixed, ctx.config)),
    "report": lambda ctx: report.run_stage(ctx, functools.partial(fetch.has_message, ctx.config)),
}
FILLS = {"boot": ("boot", "stress", "selftests")}  # stages a runner fills besides its own name
CONTEXT_STAGES = ("apply",)  # what a local check runs for the revisions before the one checked (walkdiff)
USES_WORK_TREE = ("apply", "build")  # stages that check out in kernel-tree/: one process at a time
REMOTE = workers.STAGES  # stages run on Celery workers when [workers] engine = "celery"


def available_stages() -> list[str]:
    return [s for s in STAGES if s == "fetch" or s in RUNNERS]


def parse_stages(text: str | None) -> list[str]:
    if text is None:
        return available_stages()
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    for s in wanted:
        if s not in STAGES:
            raise UsageError(f"--stages: unknown stage '{s}' (stages: {', '.join(STAGES)})")
        if s not in available_stages():
            raise UsageError(f"--stages: stage '{s}' is not built yet (available: {', '.join(available_stages())})")
    return [s for s in STAGES if s in wanted]


@dataclass
class Run:
    series: SeriesSummary
    revisions: list[RevisionResult]
    reused: list[str] = field(default_factory=list)  # "v<N> <stage>[ <arch>]" taken from an earlier run

    def to_json(self) -> dict[str, Any]:
        summary = self.series.to_json()
        summary.pop("message_ids", None)  # the lookup index of series.json, not part of the result
        return {"series": summary, "revisions": [r.to_json() for r in self.revisions]}


def store(result: RevisionResult, outputs: Outputs,
          keys: Mapping[str | None, dict[str, str] | None] | None = None) -> None:
    """Put the runner's outputs into result, each stamped with the inputs it was made from (keys: per arch, or
    under None for a single stage)."""
    for name, value in outputs.items():
        for arch, entry in (value.items() if isinstance(value, Mapping) else [(None, value)]):
            entry.inputs = (keys or {}).get(arch)
        result.stages.set(name, value)
        if isinstance(value, ApplyResult):
            result.base = value.base or result.base


def never_send(config: Config) -> Config:
    """The config a local check runs with: replies rendered into the outbox, never mailed."""
    return dataclasses.replace(config, report=dataclasses.replace(config.report, mode="dry-run"))


def run(config: Config, target: str | fetch.LocalSource, stages: list[str], arches: list[str],
        refetch: bool = False, progress: Progress = lambda _: None, only: str | None = None,
        rerun: Collection[str] = (),
        on_stage: StageHook | None = None) -> Run:
    """Fetch the series of target (or read the local one) and run the stages for each revision.

    A stage whose result is there, finished, from the same inputs is reused (bot/reuse.py: the one rule of
    the CLI and the daemon, which also makes a restart after a crash go on from the last finished stage);
    rerun= names stages made again anyway ("fetch" fetches again). The daemon's knobs: only= runs the stages
    for one revision (its root Message-ID) alone; on_stage is called before each stage that runs.
    """
    context: tuple[str, ...] = ()
    arches = with_variants(arches, config.build.variants)
    if isinstance(target, fetch.LocalSource):
        config = never_send(config)
        summary, results = fetch.fetch_local(config, target, progress=progress)
        only, context = summary.requested, CONTEXT_STAGES
    else:
        summary, results = fetch.fetch_series(config, target, refetch=refetch or "fetch" in rerun,
                                              progress=progress)
    fetched = [r for r in results if r.stages.fetch.status == "ok"]
    newest = max((r.version for r in fetched), default=0)
    out = Run(summary, results)
    remote = [s for s in REMOTE if s in stages] if config.workers.engine == "celery" else []
    for name in stages:
        if name == "fetch" or (name in remote and name != remote[0]):
            continue
        ctxs = []
        for i, result in enumerate(results):
            if result not in fetched:
                continue
            aside = only is not None and result.message_id != only
            if aside and name not in context:  # reuse skips what a context revision has already
                continue
            rdir = revision_dir(config.paths.patchsets, summary.slug, result.version)
            ctxs.append(StageContext(config, summary, result, rdir, results[i - 1] if i > 0 else None, arches,
                                     newest))
        if name in remote:  # build and boot of every revision and arch, at once, on the workers
            _on_workers(ctxs, remote, rerun, out, progress, on_stage)
            continue
        for ctx in ctxs:
            _stage(ctx, name, name in rerun, out, progress, on_stage)
    return out


def _stage(ctx: StageContext, name: str, forced: bool, out: Run, progress: Progress,
           on_stage: StageHook | None) -> None:
    """Run one stage for one revision (on the arches whose results cannot be reused), and save result.json."""
    result = ctx.revision
    per_arch = name in PER_ARCH_STAGES
    keys = {a: _keys(ctx, name, a) if name in reuse.REUSABLE else None for a in (ctx.arches if per_arch else [None])}
    todo = [a for a, key in keys.items()
            if forced or key is None or not reuse.reusable(_filled(result, name, a), key)]
    reused = [a for a in keys if a not in todo]
    out.reused += [f"v{result.version} {name}" + (f" {a}" if a else "") for a in reused]
    if not todo:
        progress(f"{name}: v{result.version} reused (inputs unchanged)")
        return
    if on_stage is not None:
        on_stage(name, result)
    if per_arch:
        ctx = dataclasses.replace(ctx, arches=[a for a in todo if a is not None])
        progress(f"{name}: v{result.version}" + (f" {', '.join(ctx.arches)} ({', '.join(str(a) for a in reused)} "
                                                 "reused)" if reused else ""))
    else:
        progress(f"{name}: v{result.version}")
    with repo.work_tree_lock(ctx.config) if name in USES_WORK_TREE else contextlib.nullcontext():
        store(result, _run_arches(name, ctx), keys)
    save_revision(ctx.rdir / "result.json", result)


def _keys(ctx: StageContext, name: str, arch: str | None) -> dict[str, str]:
    """The inputs stage `name` (on `arch`) has now (bot/reuse.py)."""
    prev = ctx.previous
    prev_rdir = ctx.revision_dir(prev.version) if prev else None
    return reuse.inputs(ctx.config, name, ctx.revision, ctx.rdir, prev, prev_rdir, arch)


def _filled(result: RevisionResult, name: str, arch: str | None) -> list[StageResult | None]:
    """The results the runner of `name` fills (boot: boot, stress, selftests), on arch."""
    return [e for n in FILLS.get(name, (name,)) for e in result.stages.entries(n, [arch] if arch else None)]


def _on_workers(ctxs: list[StageContext], names: list[str], rerun: Collection[str], out: Run, progress: Progress,
                on_stage: StageHook | None) -> None:
    """[workers] engine = "celery": one task per revision and arch whose build or boot cannot be reused, all
    sent at once; each outcome is stored in its result.json as it lands. A revision that did not apply has
    nothing to send: its stages run here (they only say "not built")."""
    jobs: list[workers.Job] = []
    for ctx in ctxs:
        result = ctx.revision
        if result.stages.apply.status != "ok":
            for name in names:
                _stage(ctx, name, name in rerun, out, progress, on_stage)
            continue
        keys = {a: {n: _keys(ctx, n, a) for n in names} for a in ctx.arches}
        todo = [a for a in ctx.arches
                if any(n in rerun or not reuse.reusable(_filled(result, n, a), keys[a][n]) for n in names)]
        out.reused += [f"v{result.version} {n} {a}" for a in ctx.arches if a not in todo for n in names]
        if not todo:
            progress(f"{'+'.join(names)}: v{result.version} reused (inputs unchanged)")
            continue
        if on_stage is not None:
            for name in names:
                on_stage(name, result)
        progress(f"{'+'.join(names)}: v{result.version} {', '.join(todo)} sent to the workers")
        jobs += [workers.Job(ctx, a, names, keys[a]) for a in todo]
    for landed in workers.run_jobs(ctxs[0].config, jobs) if jobs else ():
        job = landed.job
        timing = landed.timing
        how = (f" (queued {timing['enqueue_to_start']:.0f} ms, stored {timing['finish_to_stored']:.0f} ms after "
               "it finished)") if "finish_to_stored" in timing else ""
        progress(f"{'+'.join(names)}: {job.name} {landed.detail}{how}")
        for name in names:  # each stamped with the inputs of the runner that fills it
            filled: Outputs = {n: per for n, per in landed.outputs.items() if n in FILLS.get(name, (name,))}
            store(job.ctx.revision, filled, {job.arch: job.keys[name]})
        save_revision(job.ctx.rdir / "result.json", job.ctx.revision)


def parallel_arches(name: str, config: Config, n: int) -> int:
    """How many arches of a stage run at the same time: boots (one QEMU of [boot] smp vCPUs each) side by side
    when the cores this process may use hold them; everything else, and build (one work tree), one by one."""
    if name != "boot" or n < 2:
        return 1
    cores = len(os.sched_getaffinity(0))
    return max(1, min(n, cores // max(1, config.boot.smp)))


def _run_arches(name: str, ctx: StageContext) -> Outputs:
    """The runner on ctx.arches: in one call, or one call per arch in threads (see parallel_arches)."""
    jobs = parallel_arches(name, ctx.config, len(ctx.arches))
    if jobs == 1:
        return RUNNERS[name](ctx)
    with ThreadPoolExecutor(jobs, thread_name_prefix=name) as pool:
        parts = list(pool.map(lambda a: RUNNERS[name](dataclasses.replace(ctx, arches=[a])), ctx.arches))
    merged: dict[str, dict[str, StageResult]] = {}
    for part in parts:  # arch order kept: the threads' results in the order the arches were asked for
        for stage, value in part.items():
            assert isinstance(value, Mapping), f"{stage} is per arch"
            merged.setdefault(stage, {}).update(value)
    return dict(merged)


def check_revision(config: Config, summary: SeriesSummary, result: RevisionResult, rdir: Path, stages: list[str],
                   arches: list[str]) -> RevisionResult:
    """Run `stages`, in pipeline order, for one revision whose series.mbx is in rdir already and that has no
    revision before it: `bot b4-check --prep`'s fast checks (apply, then build on a warm build dir). Never the
    report stage: nothing is rendered or sent."""
    config = never_send(config)
    for name in [s for s in STAGES if s in stages and s in RUNNERS and s != "report"]:
        ctx = StageContext(config, summary, result, rdir, None, arches, result.version)
        with repo.work_tree_lock(config) if name in USES_WORK_TREE else contextlib.nullcontext():
            store(result, RUNNERS[name](ctx))
        save_revision(rdir / "result.json", result)
    return result


def post(config: Config, target: str, force: bool = False, resend: bool = False
         ) -> tuple[ReportResult, RevisionResult]:
    """`bot post`: send (or with force, resend) the outbox reply for the revision target belongs to."""
    if config.report.mode == "dry-run":
        raise UsageError("[report] mode is \"dry-run\": nothing is sent; set mode = \"author\" or \"list\"")
    msgid = fetch.parse_msgid(target)
    sdir = fetch.find_known(config.paths.patchsets, msgid)
    if sdir is None:
        raise BadInput(f"<{msgid}> is not in any fetched series: run `bot check` first")
    summary, results = fetch.load(sdir)
    result = next((r for r in results if msgid == r.message_id or msgid in {p.message_id for p in r.patches}),
                  results[-1])
    outcome = report.post(config, summary, result, functools.partial(fetch.has_message, config), force=force,
                          resend=resend)
    result.stages.report = outcome
    save_revision(revision_dir(config.paths.patchsets, summary.slug, result.version) / "result.json", result)
    return outcome, result
