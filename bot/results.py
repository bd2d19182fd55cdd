"""The result contract between stages: one result.json per revision, written atomically.

A stage takes (config, revision, results so far) and returns a StageResult; the pipeline stores it
under `stages.<name>` (or `stages.<name>.<arch>` for per-arch stages) and rewrites result.json.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["ok", "failed", "skipped", "error"]
STATUSES: tuple[str, ...] = ("ok", "failed", "skipped", "error")
PER_ARCH_STAGES = ("build", "boot", "stress")
SINGLE_STAGES = ("fetch", "apply", "walkdiff", "report")


@dataclass
class StageResult:
    status: Status
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)  # stage-specific keys, stored beside status/detail

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"bad stage status {self.status!r}")

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "detail": self.detail, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StageResult:
        extra = {k: v for k, v in data.items() if k not in ("status", "detail")}
        return cls(data["status"], data["detail"], extra)


def not_run(detail: str = "stage not run") -> StageResult:
    return StageResult("skipped", detail)


@dataclass
class PatchInfo:
    index: int
    subject: str
    message_id: str


@dataclass
class Base:
    commit: str | None = None
    source: str | None = None  # which rule chose it: base-commit, blobs, branch:<name>


@dataclass
class RevisionResult:
    message_id: str
    version: int
    subject: str
    author: str
    date: str
    patches: list[PatchInfo]
    found_by: list[str]
    base: Base = field(default_factory=Base)
    stages: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in SINGLE_STAGES:
            self.stages.setdefault(name, not_run().to_json())
        for name in PER_ARCH_STAGES:
            self.stages.setdefault(name, {})

    def set_stage(self, name: str, result: StageResult, arch: str | None = None) -> None:
        if arch is None:
            self.stages[name] = result.to_json()
        else:
            self.stages.setdefault(name, {})[arch] = result.to_json()

    def stage(self, name: str, arch: str | None = None) -> StageResult | None:
        data = self.stages.get(name)
        if arch is not None:
            data = (data or {}).get(arch)
        return StageResult.from_json(data) if data else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RevisionResult:
        return cls(
            message_id=data["message_id"],
            version=data["version"],
            subject=data["subject"],
            author=data["author"],
            date=data["date"],
            patches=[PatchInfo(**p) for p in data["patches"]],
            found_by=list(data["found_by"]),
            base=Base(**data.get("base", {})),
            stages=dict(data.get("stages", {})),
        )


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one."""
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def revision_dir(patchsets: Path, slug: str, version: int) -> Path:
    return patchsets / slug / f"v{version}"


def load_revision(path: Path) -> RevisionResult | None:
    try:
        return RevisionResult.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def save_revision(path: Path, result: RevisionResult) -> None:
    write_json_atomic(path, result.to_json())
