"""The Celery engine's parts that need no broker: the payload both ways (logs travel in the result, paths
rewritten, nothing written outside the revision), the idempotency key, which arches a machine serves, the
[workers] settings. The real engine (redis-server, `bot worker` processes): tests/kernel/test_workers.py."""

from __future__ import annotations

import base64
import dataclasses
import zlib
from pathlib import Path

import pytest

from bot.config import ArchConfig, Config, PathsConfig, SelftestsConfig, WorkersConfig
from bot.errors import OperationalError, UsageError
from bot.results import (
    ApplyResult,
    Base,
    BootResult,
    BuildResult,
    FetchResult,
    RevisionResult,
    SeriesSummary,
    StageContext,
    revision_dir,
)
from bot.workers import payload, status, worker


def context(tmp_path: Path, config: Config | None = None) -> StageContext:
    cfg = config or Config(paths=PathsConfig(patchsets=tmp_path / "p", kernel_tree=tmp_path / "t",
                                             cache=tmp_path / "c"))
    result = RevisionResult("m@x", 2, "[PATCH v2] x", "A <a@x>", "2025-01-01T00:00:00+00:00", [], ["requested"])
    result.stages.fetch = FetchResult("ok", "1 patch")
    result.stages.apply = ApplyResult("ok", "applied", branch="review/s/v2")
    result.base = Base("a" * 40, "base-commit")
    rdir = revision_dir(cfg.paths.patchsets, "s", 2)
    rdir.mkdir(parents=True)
    (rdir / "series.mbx").write_bytes(b"From x\n\n\xff not utf-8\n")
    series = SeriesSummary("s", "x", "A <a@x>", [])
    return StageContext(cfg, series, result, rdir, None, ["x86_64"], 2)


def job(ctx: StageContext, **keys: dict[str, str]) -> payload.Job:
    return payload.Job(ctx, "x86_64", ["build", "boot"], keys or {"build": {"patches": "1"}, "boot": {"patches": "1"}})


def test_the_payload_carries_the_mbox_base_and_review_settings(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    p = payload.make_payload(job(ctx))
    assert base64.b64decode(p["mbox"]) == b"From x\n\n\xff not utf-8\n"  # bytes as they are
    assert p["base"] == "a" * 40 and p["branch"] == "worker/review/s/v2" and p["arch"] == "x86_64"
    mine = Config(selftests=SelftestsConfig(tests=["cow"]))
    mine = dataclasses.replace(mine, arch={**mine.arch, "x86_64": ArchConfig(qemu="/opt/qemu", selftests=["rmap"])})
    theirs = payload.with_review_config(mine, p["config"], "x86_64")
    assert theirs.selftests == ctx.config.selftests and theirs.paths == mine.paths  # policy theirs, paths mine
    assert theirs.arch_config("x86_64").selftests == ctx.config.arch_config("x86_64").selftests
    assert theirs.arch_config("x86_64").qemu == "/opt/qemu"  # the worker's own QEMU


def test_nothing_to_send_for_a_revision_that_did_not_apply(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    ctx.revision.stages.apply = ApplyResult("failed", "patch 1 does not apply")
    with pytest.raises(OperationalError, match="nothing to send"):
        payload.make_payload(job(ctx))


def test_the_key_is_the_same_for_the_same_inputs_only(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    assert job(ctx).key == job(ctx).key
    assert job(ctx).key != job(ctx, build={"patches": "2"}, boot={"patches": "1"}).key
    assert job(ctx).key != dataclasses.replace(job(ctx), arch="arm64").key


def test_logs_travel_in_the_result_and_land_in_the_coordinators_revision(tmp_path: Path) -> None:
    there = tmp_path / "worker" / "v2"
    (there / "logs").mkdir(parents=True)
    (there / "logs" / "build-x86_64.log").write_text("warning: x\n" * 1000)
    (there / "build-x86_64").mkdir()
    (there / "build-x86_64" / "bzImage").write_bytes(b"\0" * 100)
    built = BuildResult("ok", "built", log=str(there / "logs" / "build-x86_64.log"),
                        image=str(there / "build-x86_64" / "bzImage"))
    packed = payload.pack({"build": {"x86_64": built}, "boot": {"x86_64": BootResult("ok", "booted")}}, there,
                          "w1@h", 0.0)
    assert list(packed["files"]) == ["logs/build-x86_64.log"]  # the image stays on the worker
    assert len(packed["files"]["logs/build-x86_64.log"]) < 1000  # compressed
    here = tmp_path / "coordinator" / "v2"
    here.mkdir(parents=True)
    out = payload.unpack(packed, here)
    got = out["build"]["x86_64"]
    assert isinstance(got, BuildResult) and got.worker == "w1@h" and out["boot"]["x86_64"].worker == "w1@h"
    assert got.log == str(here / "logs" / "build-x86_64.log")
    assert Path(got.log).read_text() == "warning: x\n" * 1000
    assert got.image == str(there / "build-x86_64" / "bzImage")  # where it is: on the worker


def test_a_result_cannot_write_outside_the_revision(tmp_path: Path) -> None:
    blob = base64.b64encode(zlib.compress(b"x")).decode()
    with pytest.raises(OperationalError, match="outside the revision"):
        payload.unpack({"worker": "evil", "files": {"../../etc/passwd": blob}, "stages": {}}, tmp_path / "v1")


def test_an_unfinished_task_is_an_error_on_every_stage_it_owed(tmp_path: Path) -> None:
    out = payload.error_outputs(job(context(tmp_path)), "the task exceeded its time limit of 5 s")
    assert sorted(out) == ["boot", "build", "selftests", "stress"]
    assert all(r.status == "error" and "time limit" in r.detail for per in out.values() for r in per.values())


def test_a_machine_serves_only_the_arches_it_has_the_tools_for(monkeypatch: pytest.MonkeyPatch) -> None:
    have = {"gcc", "qemu-system-x86_64"}
    monkeypatch.setattr(worker.shutil, "which", lambda t: f"/usr/bin/{t}" if t in have else None)
    served, lacking = worker.servable(Config(), None)
    assert served == ["x86_64"] and lacking == {"arm64": ["aarch64-linux-gnu-gcc", "qemu-system-aarch64"]}
    with pytest.raises(UsageError, match=r"cannot serve arm64 \(aarch64-linux-gnu-gcc, qemu-system-aarch64"):
        worker.servable(Config(), ["arm64"])
    with pytest.raises(UsageError, match="unknown sparc"):
        worker.servable(Config(), ["sparc"])


def test_workers_settings_are_checked() -> None:
    with pytest.raises(UsageError, match="engine must be"):
        WorkersConfig(engine="threads")
    with pytest.raises(UsageError, match="visibility_timeout_s must be above task_time_limit_s"):
        WorkersConfig(engine="celery", task_time_limit_s=100, visibility_timeout_s=100)


def test_status_of_the_local_engine_says_so() -> None:
    assert status.render_lines(status.collect(Config())) == [
        "workers: engine local (builds and boots run in this process)"]
