"""The reuse rule (bot/reuse.py) and how the pipeline follows it, with a stand-in fetch and runner (the real
ones: tests/integration/test_reuse.py)."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from bot import pipeline, reuse
from bot.config import Config, PathsConfig, WalkdiffConfig
from bot.results import (
    BootResult,
    BuildResult,
    FetchResult,
    ReportResult,
    RevisionRef,
    RevisionResult,
    SeriesSummary,
    StressResult,
    revision_dir,
)


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return Config(paths=PathsConfig(patchsets=tmp_path / "p", kernel_tree=tmp_path / "no-tree", cache=tmp_path / "c"))


def revision(cfg: Config, mbox: bytes = b"From x\n\npatch\n") -> RevisionResult:
    result = RevisionResult("m@x", 1, "[PATCH] x", "A <a@x>", "2025-01-01T00:00:00+00:00", [], ["requested"])
    result.stages.fetch = FetchResult("ok", "1 patch")
    rdir = revision_dir(cfg.paths.patchsets, "s", 1)
    rdir.mkdir(parents=True, exist_ok=True)
    (rdir / "series.mbx").write_bytes(mbox)
    return result


def key(cfg: Config, stage: str, result: RevisionResult, arch: str | None = None) -> dict[str, str]:
    rdir = revision_dir(cfg.paths.patchsets, "s", 1)
    return reuse.inputs(cfg, stage, result, rdir, None, None, arch)


def test_the_inputs_follow_patches_config_sections_and_arch(cfg: Config) -> None:
    result = revision(cfg)
    before = {s: key(cfg, s, result) for s in ("apply", "walkdiff")}
    other = dataclasses.replace(cfg, walkdiff=WalkdiffConfig(labels=["walk_done"]))
    assert key(other, "walkdiff", result) != before["walkdiff"]
    assert key(other, "apply", result) == before["apply"]
    arm = dataclasses.replace(cfg, arch={**cfg.arch, "arm64": dataclasses.replace(cfg.arch["arm64"],
                                                                                  cross_compile="aarch64-x-")})
    assert key(arm, "build", result, "arm64") != key(cfg, "build", result, "arm64")
    assert key(arm, "build", result, "x86_64") == key(cfg, "build", result, "x86_64")
    revision(cfg, b"From x\n\nanother patch\n")
    assert key(cfg, "apply", result)["patches"] != before["apply"]["patches"]


def test_only_a_finished_result_from_the_same_inputs_is_reusable() -> None:
    k = {"bot": "1", "patches": "p"}
    assert reuse.reusable([BuildResult("ok", "", inputs=dict(k)), BuildResult("failed", "", inputs=dict(k))], k)
    assert not reuse.reusable([BuildResult("error", "timeout", inputs=dict(k))], k)
    assert not reuse.reusable([BuildResult("ok", "")], k)  # written before inputs were recorded
    assert not reuse.reusable([BuildResult("ok", "", inputs={**k, "patches": "q"})], k)
    assert not reuse.reusable([None], k)


def test_a_per_arch_stage_runs_only_the_arches_it_cannot_reuse(cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    result = revision(cfg)
    summary = SeriesSummary("s", result.subject, result.author, "m@x", [RevisionRef(1, "m@x", "requested")])
    monkeypatch.setattr(pipeline.fetch, "fetch_series", lambda *_a, **_k: (summary, [result]))
    calls: list[list[str]] = []

    def build(ctx: pipeline.StageContext) -> pipeline.Outputs:
        calls.append(list(ctx.arches))
        return {"build": {a: BuildResult("ok", f"built {a}") for a in ctx.arches}}

    monkeypatch.setitem(pipeline.RUNNERS, "build", build)
    arches = ["x86_64", "arm64"]
    assert pipeline.run(cfg, "m@x", ["fetch", "build"], arches).reused == []
    assert pipeline.run(cfg, "m@x", ["fetch", "build"], arches).reused == ["v1 build x86_64", "v1 build arm64"]
    assert calls == [arches]
    result.stages.build["arm64"].status = "error"  # e.g. a timeout: tried again, x86_64 reused
    assert pipeline.run(cfg, "m@x", ["fetch", "build"], arches).reused == ["v1 build x86_64"]
    assert calls[-1] == ["arm64"]
    assert pipeline.run(cfg, "m@x", ["fetch", "build"], arches, rerun=["build"]).reused == []
    assert calls[-1] == arches
    assert result.stages.build["x86_64"].inputs == key(cfg, "build", result, "x86_64")


def test_the_report_stage_always_runs(cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its outbox already sends each reply once, and it must see a newer revision or a reply that may go now."""
    result = revision(cfg)
    summary = SeriesSummary("s", result.subject, result.author, "m@x", [RevisionRef(1, "m@x", "requested")])
    monkeypatch.setattr(pipeline.fetch, "fetch_series", lambda *_a, **_k: (summary, [result]))
    calls: list[int] = []
    monkeypatch.setitem(pipeline.RUNNERS, "report", lambda ctx: calls.append(1) or {"report": ReportResult("ok", "")})
    for _ in range(2):
        assert pipeline.run(cfg, "m@x", ["fetch", "report"], ["x86_64"]).reused == []
    assert calls == [1, 1] and result.stages.report.inputs is None


@pytest.mark.parametrize(("cores", "smp", "together"), [(4, 2, True), (2, 2, False), (2, 1, True)])
def test_boots_of_the_two_arches_run_side_by_side_when_cores_allow(cfg: Config, monkeypatch: pytest.MonkeyPatch,
                                                                  cores: int, smp: int, together: bool) -> None:
    cfg = dataclasses.replace(cfg, boot=dataclasses.replace(cfg.boot, smp=smp))
    result = revision(cfg)
    summary = SeriesSummary("s", result.subject, result.author, "m@x", [RevisionRef(1, "m@x", "requested")])
    monkeypatch.setattr(pipeline.fetch, "fetch_series", lambda *_a, **_k: (summary, [result]))
    monkeypatch.setattr(pipeline.os, "sched_getaffinity", lambda _pid: set(range(cores)))
    both = threading.Barrier(2, timeout=10)  # passes only when two boots are running at the same time
    seen: list[list[str]] = []

    def boot(ctx: pipeline.StageContext) -> pipeline.Outputs:
        seen.append(list(ctx.arches))
        if together:
            both.wait()
        return {"boot": {a: BootResult("ok", a) for a in ctx.arches},
                "stress": {a: StressResult("ok", a) for a in ctx.arches}}

    monkeypatch.setitem(pipeline.RUNNERS, "boot", boot)
    pipeline.run(cfg, "m@x", ["fetch", "boot"], ["x86_64", "arm64"])
    assert sorted(seen) == ([["arm64"], ["x86_64"]] if together else [["x86_64", "arm64"]])
    assert list(result.stages.boot) == ["x86_64", "arm64"] and result.stages.stress["arm64"].detail == "arm64"
    assert result.stages.boot["arm64"].inputs == key(cfg, "boot", result, "arm64")
