"""What travels between the coordinator and a worker, both ways.

A task's payload is plain JSON: the revision's am-ready mbox (base64: patch mail need not be UTF-8), the
base the coordinator's apply chose, the series and revision records, the coordinator's review policy
([build], [boot], [stress], [selftests] and the arch's [arch.<name>] selftests: set in one place; a worker
keeps its own [paths], compilers, QEMU and [workers]) and its hash, and the key that makes it idempotent.

Logs travel in the result, zlib-compressed: a revision's logs on one arch are a few MiB at most, Redis holds
that easily, and the coordinator then has every log its result.json names in its own patchsets/ (the
dashboard and the reply's links serve them from there) without a second service or shared storage. Kernel
images stay on the worker (tens of MiB, needed only there): their paths are kept as the worker's, and
`extra.worker` names the machine.
"""

from __future__ import annotations

import base64
import dataclasses
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import reuse
from bot.config import BootConfig, BuildConfig, Config, SelftestsConfig, StressConfig
from bot.errors import OperationalError
from bot.results import (
    BootResult,
    BuildResult,
    Outputs,
    SelftestsResult,
    StageContext,
    StageResult,
    Stages,
    StressResult,
)

REVIEW_SECTIONS = {"build": BuildConfig, "boot": BootConfig, "stress": StressConfig, "selftests": SelftestsConfig}
STAGES = ("build", "boot")  # the pipeline stages a task runs (boot fills boot, stress and selftests)
FILLED = {"build": ("build",), "boot": ("boot", "stress", "selftests")}
KEEP_PATHS = ("image", "base_image", "build_dir")  # the worker's own files: not sent, paths not rewritten
MAX_FILE = 64 << 20  # a log bigger than this stays on the worker (its path is kept)


@dataclass
class Job:
    """One task: one revision on one arch, for the stages asked (build; boot needs the build it boots)."""

    ctx: StageContext
    arch: str
    stages: list[str]
    keys: dict[str, dict[str, str]]  # stage -> its reuse inputs on this arch (stamped on what comes back)

    @property
    def key(self) -> str:
        """Idempotency: the same revision, arch, stages and inputs are the same task, however often sent."""
        r = self.ctx.revision
        return reuse.digest([r.message_id, r.version, self.arch, self.stages, self.keys])

    @property
    def name(self) -> str:
        return f"v{self.ctx.revision.version} {self.arch}"


def review_config(config: Config, arch: str) -> dict[str, Any]:
    """The coordinator's review policy for a task on `arch`: the sections, and [arch.<arch>] selftests."""
    return {**{s: dataclasses.asdict(getattr(config, s)) for s in REVIEW_SECTIONS},
            "arch_selftests": list(config.arch_config(arch).selftests)}


def with_review_config(config: Config, sections: Mapping[str, Any], arch: str) -> Config:
    """The worker's config with the coordinator's review policy (its own paths, tools and [workers])."""
    own = dataclasses.replace(config.arch_config(arch), selftests=list(sections["arch_selftests"]))
    return dataclasses.replace(config, **{s: cls(**sections[s]) for s, cls in REVIEW_SECTIONS.items()},
                               arch={**config.arch, arch: own})


def make_payload(job: Job) -> dict[str, Any]:
    ctx = job.ctx
    applied = ctx.revision.stages.apply
    if applied.status != "ok" or not applied.branch or not ctx.revision.base.commit:
        raise OperationalError(f"{job.name}: nothing to send (apply {applied.status})")
    sections = review_config(ctx.config, job.arch)
    return {
        "key": job.key, "arch": job.arch, "stages": job.stages,
        "series": ctx.series.to_json(), "revision": ctx.revision.to_json(), "newest": ctx.newest,
        "mbox": base64.b64encode((ctx.rdir / "series.mbx").read_bytes()).decode(),
        "base": ctx.revision.base.commit, "branch": f"worker/{applied.branch}",
        "config": sections, "config_hash": reuse.digest(sections), "sent": time.time(),
    }


# ---------------------------------------------------------------- the result


def _files(value: Any, rdir: Path, key: str = "") -> set[Path]:
    """The files under rdir a stage result names (logs), except the worker's own (KEEP_PATHS)."""
    if isinstance(value, dict):
        return {p for k, v in value.items() for p in _files(v, rdir, k)}
    if isinstance(value, list):
        return {p for v in value for p in _files(v, rdir, key)}
    if isinstance(value, str) and key not in KEEP_PATHS and value.startswith(f"{rdir}/"):
        p = Path(value)
        if p.is_file() and p.stat().st_size <= MAX_FILE:
            return {p}
    return set()


def pack(outputs: Outputs, rdir: Path, worker: str, started: float) -> dict[str, Any]:
    stages = {name: {a: r.to_json() for a, r in value.items()} for name, value in outputs.items()
              if isinstance(value, Mapping)}
    files = {str(p.relative_to(rdir)): base64.b64encode(zlib.compress(p.read_bytes(), 6)).decode()
             for p in sorted(_files(stages, rdir))}
    return {"stages": stages, "files": files, "rdir": str(rdir), "worker": worker, "started": started,
            "finished": time.time()}


def _rewrite(value: Any, old: str, new: str, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _rewrite(v, old, new, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, old, new, key) for v in value]
    if isinstance(value, str) and key not in KEEP_PATHS and value.startswith(f"{old}/"):
        return new + value[len(old):]
    return value


def unpack(data: Mapping[str, Any], rdir: Path) -> dict[str, dict[str, StageResult]]:
    """The worker's stage results as typed records, its logs written under this rdir (and named there)."""
    for rel, blob in data.get("files", {}).items():
        target = (rdir / rel).resolve()
        if not target.is_relative_to(rdir.resolve()):
            raise OperationalError(f"worker {data.get('worker')}: refused file outside the revision: {rel}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(zlib.decompress(base64.b64decode(blob)))
    stages = _rewrite(data.get("stages", {}), str(data.get("rdir", "")), str(rdir))
    typed = Stages.from_json(stages)
    out: dict[str, dict[str, StageResult]] = {}
    for name in stages:
        per: dict[str, StageResult] = getattr(typed, name)
        for r in per.values():
            r.worker = data.get("worker", "?")
        out[name] = per
    return out


def error_outputs(job: Job, detail: str) -> dict[str, dict[str, StageResult]]:
    """The stage results of a task that did not finish: `error` (retried by a later run) with the reason."""
    kinds: dict[str, type[StageResult]] = {"build": BuildResult, "boot": BootResult, "stress": StressResult,
                                           "selftests": SelftestsResult}
    return {n: {job.arch: kinds[n]("error", detail)} for s in job.stages for n in FILLED[s]}
