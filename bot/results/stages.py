"""One typed result per stage (and the small records inside them), as stored under stages.<name>[.<arch>]."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.results.records import R, Record

Status = Literal["ok", "failed", "skipped", "error", "not_run"]
STATUSES: tuple[str, ...] = typing.get_args(Status)



@dataclass
class StageResult(Record):
    status: Status
    detail: str
    extra: dict[str, Any] = field(default_factory=dict, kw_only=True)
    # What the result was made from (bot/reuse.py): a later run reuses it when today's inputs are the same.
    inputs: dict[str, str] | None = field(default=None, kw_only=True)
    worker: str | None = field(default=None, kw_only=True)  # the `bot worker` that made it (engine "celery")

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"bad stage status {self.status!r}")

    @classmethod
    def not_run(cls: type[R], detail: str = "not run") -> R:
        return cls("not_run", detail)  # type: ignore[call-arg]

    @property
    def ran(self) -> bool:
        return self.status != "not_run"

    @property
    def finished(self) -> bool:
        """Ran to a final outcome; an error (archive down, timeout) is retried, not finished."""
        return self.status not in ("not_run", "error")


@dataclass
class FetchResult(StageResult):
    base_commit_trailer: str | None = None  # the cover letter's `base-commit:` line
    cover: bool | None = None


@dataclass
class Base(Record):
    commit: str | None = None
    source: str | None = None  # which rule chose it: base-commit, blobs, branch:<name>

    def to_json(self) -> dict[str, Any]:
        return {"commit": self.commit, "source": self.source}


@dataclass
class AppliedCommit(Record):
    index: int
    subject: str
    commit: str


@dataclass
class PatchRef(Record):
    """The patch a finding belongs to (1-based index in the series)."""

    index: int | None = None
    subject: str | None = None
    commit: str | None = None


@dataclass
class ApplyResult(StageResult):
    branch: str | None = None
    commits: list[AppliedCommit] | None = None
    base_notes: list[str] | None = None
    patch: PatchRef | None = None  # the patch that failed
    file: str | None = None
    hunk: str | None = None
    base: Base | None = field(default=None, metadata={"json": False})  # the pipeline stores it as result.base


@dataclass
class CompilerWarning(Record):
    file: str
    line: int
    where: str
    kind: str
    message: str
    text: str = ""
    patch: PatchRef | None = None
    w1: bool | None = None  # found by the W=1 compile of the touched files, not by the normal build
    config: str | None = None  # found by another of the bot's configs ("kasan"), not the booted one
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FileCoverage(Record):
    """Whether this arch's build compiled one file the revision touches (bot/build/coverage.py)."""

    file: str
    compiled: bool
    reason: str | None = None  # why not
    objects: int | None = None  # a header: objects rebuilt that include it; a .c built into another object
    via: str | None = None  # that other object (mm/percpu-km.c -> mm/percpu.o)
    config: str | None = None  # compiled by another of the bot's configs, not the booted one ("kasan")


@dataclass
class BuildError(Record):
    file: str
    line: int
    message: str


@dataclass
class SelftestsBuild(Record):
    """tools/testing/selftests/mm built statically for one arch from one tree (cached by `key`)."""

    key: str  # hash of the selftests' sources, the uapi headers, the compiler and the libraries
    dir: str  # the binaries
    built: list[str] = field(default_factory=list)
    not_built: dict[str, str] = field(default_factory=dict)  # binary -> why (the first compiler error)
    wanted: list[str] = field(default_factory=list)  # every binary the tree's Makefile builds for this arch
    log: str | None = None
    seconds: float | None = None  # 0 when it came from the cache
    notes: list[str] = field(default_factory=list)  # e.g. libraries not available for this arch
    error: str | None = None  # nothing could be built (the uapi headers failed): no test runs


@dataclass
class BuildResult(StageResult):
    log: str | None = None
    fragments: list[str] | None = None
    config_hash: str | None = None
    build_dir: str | None = None
    command: str | None = None  # how to reproduce it outside the bot
    notes: list[str] | None = None
    seconds: float | None = None
    compiler: str | None = None
    ccache: dict[str, int] | None = None
    new_warnings: list[CompilerWarning] | None = None
    coverage: list[FileCoverage] | None = None
    image: str | None = None
    config: str | None = None  # the .config used
    base_image: str | None = None  # the base kernel, kept so boot can tell old findings from new
    selftests: SelftestsBuild | None = None  # tools/testing/selftests/mm of this revision, built for the VM
    base_selftests: SelftestsBuild | None = None  # the same of the base, run on the base kernel
    log_tail: list[str] | None = None
    error: BuildError | None = None


@dataclass
class Finding(Record):
    """A kernel report in the console: BUG/KASAN/WARNING/Oops/panic/lockup/stall."""

    kind: str
    first_line: str
    fingerprint: str
    excerpt: str
    scenario: str | None = None  # the stress scenario running when it was printed
    selftest: str | None = None  # the selftest running when it was printed
    preexisting: bool | None = None  # None: the base kernel was not booted


@dataclass
class BootResult(StageResult):
    boot_status: str | None = None  # ok | failed | timeout
    accel: str | None = None
    accel_note: str | None = None
    command: str | None = None
    log: str | None = None
    seconds: float | None = None
    findings: list[Finding] | None = None
    base_note: str | None = None
    page_size: int | None = None  # bytes, as the guest's stress init measured it (sysconf)


@dataclass
class Scenario(Record):
    name: str
    verdict: str  # pass | fail
    detail: str


@dataclass
class StressResult(StageResult):
    verdict: str | None = None  # pass | fail
    scenarios: list[Scenario] | None = None
    failing: list[str] | None = None


@dataclass
class WalkdiffResult(StageResult):
    against: str | None = None  # "base", "v<N>", "fixes:<sha12>"
    revision: str | None = None
    mode: str | None = None  # tree | hunks
    partial: bool | None = None
    functions: list[dict[str, Any]] | None = None
    notes: list[str] | None = None
    hunks_because: str | None = None
    fixes: list[FixesWalkdiff] | None = None  # one per `Fixes:` line of the revision's patches

    @property
    def finished(self) -> bool:
        """An archive error looking up a fixed patch is retried too."""
        return super().finished and not any(f.status == "error" for f in self.fixes or [])


@dataclass
class FixesWalkdiff(WalkdiffResult):
    """stages.walkdiff.fixes[]: the exits as the patch a `Fixes:` line names left them vs as this revision
    leaves them. skipped: that patch was not found; failed: the line is malformed."""

    line: str = ""  # the Fixes: line as written
    patch: int | None = None  # the patch of this revision that carries it
    sha: str | None = None
    subject: str | None = None
    source: str | None = None  # where the fixed patch was found: git (the kernel tree's history) | archive
    found: str | None = None  # the fixed commit (git), or the Message-ID of the fixed patch's mail (archive)
    version: int | None = None  # archive: the revision of its series the fixed patch was taken from


@dataclass
class ReportResult(StageResult):
    message_id: str | None = None
    state: str | None = None
    outbox: str | None = None
    digest: str | None = None
    to: str | None = None
    cc: str | None = None
    in_reply_to: str | None = None
    notes: list[str] | None = None
    attempts: int | None = None
