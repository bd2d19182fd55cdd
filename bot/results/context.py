"""What a stage runner gets (StageContext) and gives (Outputs), and what a driver hands a runner that needs the
archive (FixedPatch: a stage package never imports bot.fetch, so the pipeline looks it up for them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.config import Config
from bot.results.revision import RevisionResult, SeriesSummary, revision_dir
from bot.results.stages import StageResult


@dataclass
class StageContext:
    """What a stage runner gets: it reads these and returns its results; the pipeline stores them."""

    config: Config
    series: SeriesSummary
    revision: RevisionResult
    rdir: Path  # patchsets/<slug>/v<N>: series.mbx, thread.mbox, logs/
    previous: RevisionResult | None  # the revision before this one (for diffs), if the series has one
    arches: list[str]
    newest: int  # the newest version of the series that fetched ok

    def revision_dir(self, version: int) -> Path:
        return revision_dir(self.config.paths.patchsets, self.series.slug, version)


@dataclass(frozen=True)
class FixedPatch:
    """The patch a `Fixes: <sha> ("<subject>")` line names, as found on the archive by its subject: the patch
    mail of that subject in the latest revision of the series that carried it."""

    subject: str
    message_id: str
    version: int
    body: str  # the mail's body: commit message and diff
    posting: str  # the subject line of that patch mail


# A subject -> the patch found on the archive under it, or None (the walkdiff stage's archive lookup).
FindFixed = Callable[[str], "FixedPatch | None"]

# stage name -> its result, or {arch: result} for a per-arch stage (a runner may fill more than one stage)
Outputs = dict[str, "StageResult | Mapping[str, StageResult]"]
