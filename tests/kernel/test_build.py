"""The build stage on the real Debian kernel tree: base, generated v1 (no new warnings) and v4 (adds an unused
variable in mm/rmap.c), each for x86_64 and arm64 with the tinyconfig-based mm config.

Uses the bot's real cache dir (build dirs + ccache), so a second run is incremental. A cold first run takes
~6 min per arch on 2 cores. Branches review/pytest-build/* are made and deleted; HEAD is put back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pygit2
import pytest

from bot import apply, build, testseries
from bot.config import Config, PathsConfig
from bot.results import PatchInfo, RevisionResult
from tests.kernel.conftest import KERNEL_TREE, no_tree

pytestmark = pytest.mark.kernel

TREE = KERNEL_TREE
ARCHES = os.environ.get("MM_REVIEW_BOT_ARCHES", "x86_64,arm64").split(",")  # e.g. one arch at a time


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(TREE), *args], capture_output=True, text=True, check=True,
                          timeout=600).stdout


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    try:
        repo = pygit2.Repository(str(TREE))
    except (pygit2.GitError, KeyError):
        no_tree(f"no kernel tree at {TREE}: run `bot setup` (or set MM_REVIEW_BOT_KERNEL_TREE)")
    if not any(b.startswith("debian/") for b in repo.branches.local):
        no_tree(f"{TREE} has no debian/* branch: run `bot setup`")
    for tool in ("bwrap", "gcc", "aarch64-linux-gnu-gcc", "make", "flex", "bison", "bc"):
        if shutil.which(tool) is None:
            no_tree(f"{tool} is not installed (make test installs it)")
    head = repo.head.name if not repo.head_is_detached else str(repo.head.target)
    yield Config(paths=PathsConfig(kernel_tree=TREE, patchsets=tmp_path_factory.mktemp("patchsets")))
    git("reset", "-q", "--hard")
    git("checkout", "-q", head.removeprefix("refs/heads/"))
    for b in git("branch", "--format=%(refname:short)", "--list", "review/pytest-build/*").split():
        git("branch", "-q", "-D", b)


@pytest.fixture(scope="module")
def series(cfg, tmp_path_factory) -> dict[int, Path]:
    out = tmp_path_factory.mktemp("series")
    return {g.version: out / g.path for g in testseries.generate(TREE, out)}


def built(cfg: Config, mbox: Path, version: int) -> RevisionResult:
    stage, base = apply.apply_series(cfg, mbox, f"review/pytest-build/v{version}")
    assert stage.status == "ok", stage
    r = RevisionResult(f"v{version}@pytest", version, "s", "a", "d",
                       [PatchInfo(c["index"], c["subject"], "") for c in stage.extra["commits"]], [])
    r.base = base
    r.set_stage("apply", stage)
    build.run_stage(cfg, {"slug": "pytest-build"}, r, [r], ARCHES)
    return r


def test_v1_adds_no_warnings(cfg, series):
    r = built(cfg, series[1], 1)
    for arch in ARCHES:
        st = r.stages["build"][arch]
        assert st["status"] == "ok", (arch, st.get("detail"), st.get("log_tail"))
        assert st["new_warnings"] == [], st["new_warnings"]
        assert Path(st["image"]).stat().st_size > 100_000
        assert Path(st["config"]).read_text().count("CONFIG_ADVISE_SYSCALLS=y") == 1


def test_v4_reports_unused_variable_in_rmap(cfg, series):
    r = built(cfg, series[4], 4)
    for arch in ARCHES:
        st = r.stages["build"][arch]
        assert st["status"] == "ok", (arch, st.get("detail"), st.get("log_tail"))
        new = st["new_warnings"]
        assert len(new) == 1, new
        w = new[0]
        assert w["file"] == "mm/rmap.c" and "unused variable 'crossed'" in w["message"], w
        assert w["text"] == "int crossed;"
        assert w["patch"] is not None
