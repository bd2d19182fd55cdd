"""The result contract between stages: one typed dataclass per stage result, one result.json per revision.

A stage runner gets a `StageContext` (context.py) and returns its result(s); the pipeline stores them under
`stages.<name>` (per-arch stages: `stages.<name>.<arch>`) and rewrites result.json atomically after each.
Every result has `status` (ok | failed | skipped | error | not_run) and a human `detail`; `not_run` means the
stage never ran for this revision (not in --stages, or not reached yet), `skipped` that it ran and had
nothing to do (e.g. no build because the series did not apply).

JSON shape: a dataclass field becomes a key of the same name (None values are left out); keys a reader does
not know are kept in `extra` and written back, so a newer file survives an older bot. result.json carries
`schema_version`; a file written before it (version 1, "stage not run" as a skipped detail) still loads.

verdict.py says what a revision's results add up to (the verdict line, new warnings across arches), and
links.py where a series is published (the dashboard's paths, lore links), for the reply and the dashboard alike.
"""

from __future__ import annotations

from bot.results.context import FindFixed, FixedPatch, Outputs, StageContext
from bot.results.records import Record
from bot.results.revision import (
    PER_ARCH_STAGES,
    SCHEMA_VERSION,
    SINGLE_STAGES,
    PatchInfo,
    RevisionRef,
    RevisionResult,
    SeriesSummary,
    Stages,
    load_revision,
    revision_dir,
    save_revision,
    write_bytes_atomic,
    write_json_atomic,
)
from bot.results.selftests import FAILING, SelftestRun, SelftestsResult
from bot.results.stages import (
    STATUSES,
    AppliedCommit,
    ApplyResult,
    Base,
    BootResult,
    BuildError,
    BuildResult,
    CompilerWarning,
    FetchResult,
    FileCoverage,
    Finding,
    FixesWalkdiff,
    PatchRef,
    ReportResult,
    Scenario,
    SelftestsBuild,
    StageResult,
    Status,
    StressResult,
    WalkdiffResult,
)

__all__ = [
    "AppliedCommit", "ApplyResult", "Base", "BootResult", "BuildError", "BuildResult", "CompilerWarning", "FAILING",
    "FetchResult", "FileCoverage", "FindFixed", "Finding", "FixedPatch", "FixesWalkdiff", "Outputs",
    "PER_ARCH_STAGES", "PatchInfo", "PatchRef", "Record", "ReportResult", "RevisionRef", "RevisionResult",
    "SCHEMA_VERSION", "SINGLE_STAGES", "STATUSES", "Scenario", "SelftestRun", "SelftestsBuild", "SelftestsResult",
    "SeriesSummary", "StageContext", "StageResult", "Stages", "Status", "StressResult", "WalkdiffResult",
    "load_revision", "revision_dir", "save_revision", "write_bytes_atomic", "write_json_atomic",
]
