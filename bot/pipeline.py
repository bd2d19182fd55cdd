"""Runs the stages in order for every revision of a series and persists each result as it lands."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot import apply, boot, build, fetch, post, walkdiff
from bot.config import STAGES, Config
from bot.errors import UsageError
from bot.lore import Archive, b4_session, parse_msgid
from bot.results import PER_ARCH_STAGES, RevisionResult, not_run, revision_dir, save_revision

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
StageHook = Callable[[str, RevisionResult], None]  # (stage, revision) before the stage runs

# Per-revision stages after fetch: name -> runner(config, series summary, revision, all results, arches) -> None.
# Each runner stores its StageResult(s) on the revision; the pipeline writes result.json after each one.
Runner = Callable[[Config, dict[str, Any], RevisionResult, list[RevisionResult], list[str]], None]
RUNNERS: dict[str, Runner] = {
    "apply": apply.run_stage,
    "build": build.run_stage,
    "boot": boot.run_stage,  # fills stages.boot.<arch> and stages.stress.<arch>
    "walkdiff": walkdiff.run_stage,
    "report": post.run_stage,
}


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
    series: dict[str, Any]
    revisions: list[RevisionResult]

    def to_json(self) -> dict[str, Any]:
        return {"series": self.series, "revisions": [r.to_json() for r in self.revisions]}


def finished(result: RevisionResult, name: str, arches: list[str]) -> bool:
    """Whether result.json holds a finished result of this stage (an "error" is retried, not finished)."""
    if name in PER_ARCH_STAGES:
        entries = [result.stages.get(name, {}).get(a) for a in arches]
    else:
        entries = [result.stages.get(name)]
    return all(e and e != not_run().to_json() and e.get("status") != "error" for e in entries)


def run(config: Config, target: str, stages: list[str], arches: list[str], refetch: bool = False,
        progress: Progress = lambda _: None, only: str | None = None, resume: bool = False,
        on_stage: StageHook | None = None) -> Run:
    """Fetch the series of target and run the stages for each revision.

    The daemon's knobs: only= runs the stages for one revision (its root Message-ID) alone; resume= skips
    stages that result.json shows finished (a restart after a crash); on_stage is called before each stage.
    """
    msgid = parse_msgid(target)
    known = None if refetch else fetch.find_known(config.paths.patchsets, msgid)
    if known is not None:
        progress(f"reusing {known} (fetched before; --refetch to fetch again)")
        summary, results = fetch.load(known)
    else:
        with b4_session(config):
            archive = Archive(config, nocache=refetch)
            progress(f"fetching <{msgid}> and every revision of its series from {archive.url}")
            series = fetch.discover(config, archive, msgid)
            for rev in series.revisions:
                state = rev.problem or f"{len(rev.posting.patches)} patches"
                progress(f"  v{rev.posting.version}: {state} (found by {rev.posting.found_by})")
            results = fetch.save(config, archive, series)
            summary = series.summary()
    for name in stages:
        if name == "fetch":
            continue
        for result in results:
            if result.stages["fetch"]["status"] != "ok" or (only is not None and result.message_id != only):
                continue
            if resume and finished(result, name, arches):
                progress(f"{name}: v{result.version} finished before, skipped")
                continue
            if on_stage is not None:
                on_stage(name, result)
            progress(f"{name}: v{result.version}")
            RUNNERS[name](config, summary, result, results, arches)
            save_revision(revision_dir(config.paths.patchsets, summary["slug"], result.version) / "result.json", result)
    return Run(summary, results)
