"""The build stage on the real Debian kernel tree: base, generated v1 (no new warnings) and v4 (adds an unused
variable in mm/rmap.c), each for x86_64 and arm64 with the tinyconfig-based mm config.

Uses the bot's real cache dir (build dirs + ccache), so a second run is incremental. A cold first run takes
~6 min per arch on 2 cores. Branches review/pytest-build/* are made and deleted; HEAD is put back.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bot import build
from bot.config import Config, PathsConfig
from bot.demo import series as testseries
from bot.results import PatchInfo, RevisionResult
from bot.tree import apply_series
from tests.kernel.conftest import CACHE, KERNEL_TREE, no_tree, restored_tree
from tests.stages import run_stage

pytestmark = pytest.mark.kernel

TREE = KERNEL_TREE
ARCHES = os.environ.get("MM_REVIEW_BOT_ARCHES", "x86_64,arm64").split(",")  # e.g. one arch at a time


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    for tool in ("bwrap", "gcc", "aarch64-linux-gnu-gcc", "make", "flex", "bison", "bc"):
        if shutil.which(tool) is None:
            no_tree(f"{tool} is not installed (make test installs it)")
    with restored_tree("review/pytest-build/*"):
        yield Config(paths=PathsConfig(kernel_tree=TREE, patchsets=tmp_path_factory.mktemp("patchsets"), cache=CACHE))


@pytest.fixture(scope="module")
def series(cfg, tmp_path_factory) -> dict[int, Path]:
    out = tmp_path_factory.mktemp("series")
    return {g.version: out / g.path for g in testseries.generate(TREE, out)}


def built(cfg: Config, mbox: Path, version: int) -> RevisionResult:
    stage = apply_series(cfg, mbox, f"review/pytest-build/v{version}")
    assert stage.status == "ok" and stage.commits and stage.base, stage
    r = RevisionResult(f"v{version}@pytest", version, "s", "a", "d",
                       [PatchInfo(c.index, c.subject, "") for c in stage.commits], [])
    r.base = stage.base
    r.stages.apply = stage
    return run_stage(build.run_stage, cfg, r, ARCHES, slug="pytest-build")


def test_v1_adds_no_warnings(cfg, series):
    r = built(cfg, series[1], 1)
    for arch in ARCHES:
        st = r.stages.build[arch]
        assert st.status == "ok", (arch, st.detail, st.log_tail)
        assert st.new_warnings == [], st.new_warnings
        assert st.image and st.config and Path(st.image).stat().st_size > 100_000
        assert Path(st.config).read_text().count("CONFIG_ADVISE_SYSCALLS=y") == 1


def test_v4_reports_unused_variable_in_rmap(cfg, series):
    r = built(cfg, series[4], 4)
    for arch in ARCHES:
        st = r.stages.build[arch]
        assert st.status == "ok", (arch, st.detail, st.log_tail)
        new = st.new_warnings or []
        assert len(new) == 1, new
        w = new[0]
        assert w.file == "mm/rmap.c" and "unused variable 'crossed'" in w.message, w
        assert w.text == "int crossed;"
        assert w.patch is not None
