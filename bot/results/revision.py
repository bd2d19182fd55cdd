"""A revision's result.json (RevisionResult: what was fetched, the base, every stage's result), the series'
series.json (SeriesSummary), and writing them atomically."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import OperationalError
from bot.results.records import Record
from bot.results.selftests import SelftestsResult
from bot.results.stages import (
    ApplyResult,
    Base,
    BootResult,
    BuildResult,
    FetchResult,
    ReportResult,
    StageResult,
    StressResult,
    WalkdiffResult,
)

SCHEMA_VERSION = 2
PER_ARCH_STAGES = ("build", "boot", "stress", "selftests")
SINGLE_STAGES = ("fetch", "apply", "walkdiff", "report")
LEGACY_NOT_RUN = "stage not run"  # schema 1 spelled not_run as skipped with this detail



@dataclass
class Stages(Record):
    fetch: FetchResult = field(default_factory=FetchResult.not_run)
    apply: ApplyResult = field(default_factory=ApplyResult.not_run)
    build: dict[str, BuildResult] = field(default_factory=dict)
    boot: dict[str, BootResult] = field(default_factory=dict)
    stress: dict[str, StressResult] = field(default_factory=dict)
    selftests: dict[str, SelftestsResult] = field(default_factory=dict)
    walkdiff: WalkdiffResult = field(default_factory=WalkdiffResult.not_run)
    report: ReportResult = field(default_factory=ReportResult.not_run)
    extra: dict[str, Any] = field(default_factory=dict)

    def set(self, name: str, value: StageResult | Mapping[str, StageResult]) -> None:
        """Store a stage's result; a per-arch stage's {arch: result} is merged into what is there."""
        if name in PER_ARCH_STAGES:
            assert isinstance(value, Mapping), f"{name} is per arch"
            getattr(self, name).update(value)
        else:
            assert isinstance(value, StageResult), f"{name} is not per arch"
            setattr(self, name, value)

    def entries(self, name: str, arches: list[str] | None = None) -> list[StageResult | None]:
        """The stage's result(s): one, or one per arch asked for (None where that arch has none)."""
        if name in PER_ARCH_STAGES:
            per: dict[str, StageResult] = getattr(self, name)
            return [per.get(a) for a in (arches if arches is not None else list(per))]
        return [getattr(self, name)]


@dataclass
class PatchInfo(Record):
    index: int
    subject: str
    message_id: str


@dataclass
class RevisionRef(Record):
    version: int
    message_id: str
    found_by: str


@dataclass
class SeriesSummary(Record):
    """series.json: the series and how each revision was found (message_ids: the lookup index of its mails;
    ignored: postings left out, and why)."""

    slug: str
    subject: str
    author: str
    requested: str
    revisions: list[RevisionRef] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    local: str | None = None  # a local check, never posted: the `bot check` options it came from (--mbox F)
    notes: list[str] = field(default_factory=list)  # what a [discovery] bound cut off, links not on the archive
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RevisionResult(Record):
    message_id: str
    version: int
    subject: str
    author: str
    date: str
    patches: list[PatchInfo]
    found_by: list[str]
    base: Base = field(default_factory=Base)
    stages: Stages = field(default_factory=Stages)

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **super().to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RevisionResult:
        data = dict(data)
        if data.pop("schema_version", 1) < 2:
            data["stages"] = _upgrade_v1(data.get("stages", {}))
        return super().from_json(data)


def _upgrade_v1(stages: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 wrote "not run" as {"status": "skipped", "detail": "stage not run"}."""
    out = {}
    for name, entry in stages.items():
        if isinstance(entry, dict) and entry.get("detail") == LEGACY_NOT_RUN and entry.get("status") == "skipped":
            entry = {"status": "not_run", "detail": "not run"}
        out[name] = entry
    return out



def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one."""
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one; a full disk is an OperationalError naming the file (the old
    file, if any, stays whole)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise _disk_error(path, e) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        os.unlink(tmp)
        if isinstance(e, OSError):
            raise _disk_error(path, e) from e
        raise


def _disk_error(path: Path, e: OSError) -> OSError | OperationalError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return OperationalError(f"disk full: cannot write {path} ({e.strerror}); nothing half-written, rerun "
                                "when there is room")
    return OperationalError(f"cannot write {path}: {e.strerror or e}")


def revision_dir(patchsets: Path, slug: str, version: int) -> Path:
    return patchsets / slug / f"v{version}"


def load_revision(path: Path) -> RevisionResult | None:
    try:
        return RevisionResult.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def save_revision(path: Path, result: RevisionResult) -> None:
    write_json_atomic(path, result.to_json())
