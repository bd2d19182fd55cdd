"""Running one stage's runner the way the pipeline does, for tests that drive a stage alone."""

from __future__ import annotations

from collections.abc import Callable

from bot import pipeline
from bot.config import Config
from bot.results import Outputs, RevisionResult, SeriesSummary, StageContext, revision_dir


def run_stage(runner: Callable[[StageContext], Outputs], config: Config, revision: RevisionResult,
              arches: list[str], slug: str = "t", previous: RevisionResult | None = None) -> RevisionResult:
    """Give `runner` the context the pipeline would and store what it returns on `revision`."""
    series = SeriesSummary(slug, revision.subject, revision.author, revision.message_id)
    ctx = StageContext(config, series, revision, revision_dir(config.paths.patchsets, slug, revision.version),
                       previous, arches, revision.version)
    pipeline.store(revision, runner(ctx))
    return revision
