"""Runs the stages in order for every revision of a series and persists each result as it lands."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot import apply, fetch, walkdiff
from bot.config import STAGES, Config
from bot.errors import UsageError
from bot.lore import Archive, b4_session, parse_msgid
from bot.results import RevisionResult, revision_dir, save_revision

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

# Per-revision stages after fetch: name -> runner(config, series summary, revision, all results, arches) -> None.
# Each runner stores its StageResult(s) on the revision; the pipeline writes result.json after each one.
Runner = Callable[[Config, dict[str, Any], RevisionResult, list[RevisionResult], list[str]], None]
RUNNERS: dict[str, Runner] = {
    "apply": apply.run_stage,
    "walkdiff": walkdiff.run_stage,
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


def run(config: Config, target: str, stages: list[str], arches: list[str], refetch: bool = False,
        progress: Progress = lambda _: None) -> Run:
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
            if result.stages["fetch"]["status"] != "ok":
                continue
            progress(f"{name}: v{result.version}")
            RUNNERS[name](config, summary, result, results, arches)
            save_revision(revision_dir(config.paths.patchsets, summary["slug"], result.version) / "result.json", result)
    return Run(summary, results)
