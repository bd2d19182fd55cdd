"""The only place that knows the order of the stages: fetch, then per revision apply, build, boot, walkdiff,
report, each result written to result.json as it lands.

In: a Message-ID (any message of the series) or a fetch.LocalSource (an mbox or a git range: a local check),
the stages and arches to run. Out: `Run` (series.json's summary and every revision's RevisionResult). Each
runner gets a results.StageContext and returns results.Outputs; nothing else writes result.json.

A local check is never posted: it runs with [report] mode "dry-run" whatever the config says (the reply is
rendered into the outbox, for reading), every stage for the revision checked and, for the revisions before
it, only what the walk diff needs (apply).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import boot, build, fetch, repo, report, tree, walkdiff
from bot.config import STAGES, Config
from bot.errors import BadInput, UsageError
from bot.results import (
    ApplyResult,
    Outputs,
    ReportResult,
    RevisionResult,
    SeriesSummary,
    StageContext,
    revision_dir,
    save_revision,
)

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
StageHook = Callable[[str, RevisionResult], None]  # (stage, revision) before the stage runs
Runner = Callable[[StageContext], Outputs]

# Per-revision stages after fetch, in order. A runner may fill more than one stage (boot: boot and stress).
RUNNERS: dict[str, Runner] = {
    "apply": tree.run_stage,
    "build": build.run_stage,
    "boot": boot.run_stage,
    "walkdiff": walkdiff.run_stage,
    "report": lambda ctx: report.run_stage(ctx, functools.partial(fetch.has_message, ctx.config)),
}
FILLS = {"boot": ("boot", "stress")}  # stages a runner fills besides its own name
CONTEXT_STAGES = ("apply",)  # what a local check runs for the revisions before the one checked (walkdiff)
USES_WORK_TREE = ("apply", "build")  # stages that check out in kernel-tree/: one process at a time


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

    def to_json(self) -> dict[str, Any]:
        summary = self.series.to_json()
        summary.pop("message_ids", None)  # the lookup index of series.json, not part of the result
        return {"series": summary, "revisions": [r.to_json() for r in self.revisions]}


def finished(result: RevisionResult, name: str, arches: list[str]) -> bool:
    """Whether result.json holds a finished result of this stage on every arch asked for."""
    return all(e is not None and e.finished for n in FILLS.get(name, (name,))
               for e in result.stages.entries(n, arches))


def store(result: RevisionResult, outputs: Outputs) -> None:
    for name, value in outputs.items():
        result.stages.set(name, value)
        if isinstance(value, ApplyResult):
            result.base = value.base or result.base


def never_send(config: Config) -> Config:
    """The config a local check runs with: replies rendered into the outbox, never mailed."""
    return dataclasses.replace(config, report=dataclasses.replace(config.report, mode="dry-run"))


def run(config: Config, target: str | fetch.LocalSource, stages: list[str], arches: list[str],
        refetch: bool = False, progress: Progress = lambda _: None, only: str | None = None, resume: bool = False,
        on_stage: StageHook | None = None) -> Run:
    """Fetch the series of target (or read the local one) and run the stages for each revision.

    The daemon's knobs: only= runs the stages for one revision (its root Message-ID) alone; resume= skips
    stages that result.json shows finished (a restart after a crash); on_stage is called before each stage.
    """
    context: tuple[str, ...] = ()
    if isinstance(target, fetch.LocalSource):
        config = never_send(config)
        summary, results = fetch.fetch_local(config, target, progress=progress)
        only, context = summary.requested, CONTEXT_STAGES
    else:
        summary, results = fetch.fetch_series(config, target, refetch=refetch, progress=progress)
    fetched = [r for r in results if r.stages.fetch.status == "ok"]
    newest = max((r.version for r in fetched), default=0)
    for name in stages:
        if name == "fetch":
            continue
        for i, result in enumerate(results):
            if result not in fetched:
                continue
            aside = only is not None and result.message_id != only
            if aside and (name not in context or finished(result, name, arches)):
                continue
            if resume and finished(result, name, arches):
                progress(f"{name}: v{result.version} finished before, skipped")
                continue
            if on_stage is not None:
                on_stage(name, result)
            progress(f"{name}: v{result.version}")
            rdir = revision_dir(config.paths.patchsets, summary.slug, result.version)
            ctx = StageContext(config, summary, result, rdir, results[i - 1] if i > 0 else None, arches, newest)
            with repo.work_tree_lock(config) if name in USES_WORK_TREE else contextlib.nullcontext():
                store(result, RUNNERS[name](ctx))
            save_revision(rdir / "result.json", result)
    return Run(summary, results)


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
