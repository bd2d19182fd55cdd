"""Boot real kernels (x86_64, arm64; QEMU TCG here) with the stress /init: a clean kernel passes every scenario.

The kernel is the base of the Debian tree (debian/* branch) as the build stage builds it (bot/build/: sandbox,
build dir and ccache under the checkout's .cache/): a cold build is ~6 min per arch, later runs reuse it.
$MM_REVIEW_BOT_BOOT_IMAGE_X86_64 / _ARM64 point the tests at an existing image instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pygit2
import pytest

from bot import boot, repo
from bot.boot.stage import boot_result, stress_result
from bot.boot.vm import boot_kernel
from bot.build.base import base_diagnostics
from bot.build.base import base_image as base_image_of
from bot.build.builder import Builder
from bot.config import Config, PathsConfig
from bot.results import Base, BuildResult, RevisionResult
from tests.kernel.conftest import CACHE, KERNEL_TREE, git, no_tree, restored_tree
from tests.stages import run_stage

pytestmark = pytest.mark.kernel


def base_image(arch: str) -> Path:
    """The base kernel as the build stage builds it (the build dir and ccache tests/kernel/test_build.py uses)."""
    env_image = os.environ.get(f"MM_REVIEW_BOT_BOOT_IMAGE_{arch.upper()}")
    if env_image:
        return Path(env_image)
    try:
        tree = pygit2.Repository(str(KERNEL_TREE))
    except pygit2.GitError:
        no_tree(f"no kernel tree at {KERNEL_TREE}: run `bot setup`")
    bases = sorted(b for b in tree.branches.local if b.startswith("debian/"))
    if not bases:
        no_tree(f"{KERNEL_TREE} has no debian/* branch: run `bot setup`")
    head = tree.head.name if not tree.head_is_detached else str(tree.head.target)
    cfg = Config(paths=PathsConfig(kernel_tree=KERNEL_TREE, cache=CACHE))
    b = Builder(cfg, arch, KERNEL_TREE)
    base = str(tree.revparse_single(bases[-1]).id)
    try:
        diags, why = base_diagnostics(cfg, b, base)
    finally:
        subprocess.run(["git", "-C", str(KERNEL_TREE), "checkout", "-q", head.removeprefix("refs/heads/")],
                       check=True, timeout=600)
    assert diags is not None, why
    return base_image_of(b, base)


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_clean_kernel_passes_every_scenario(arch: str, tmp_path: Path) -> None:
    image = base_image(arch)
    cfg = Config(paths=PathsConfig(cache=CACHE))
    b = boot_kernel(cfg, arch, image, tmp_path / f"boot-{arch}.log", tmp_path)
    res, st = boot_result(b, set()), stress_result(b)
    log = (tmp_path / f"boot-{arch}.log").read_text(errors="replace")
    assert res.status == "ok", (res.detail, log[-3000:])
    assert res.accel in ("tcg", "kvm") and res.findings == [], res.findings
    assert [s.name for s in st.scenarios or []] == cfg.stress.scenarios
    assert st.status == "ok" and st.verdict == "pass", (st.detail, st.scenarios)


def test_bogus_init_is_a_failed_boot_with_the_panic(tmp_path: Path) -> None:
    import dataclasses

    image = base_image("x86_64")
    cfg = Config(paths=PathsConfig(cache=CACHE))
    arches = cfg.arch | {"x86_64": dataclasses.replace(cfg.arch["x86_64"], boot_timeout=120)}
    cfg = dataclasses.replace(cfg, boot=dataclasses.replace(cfg.boot, cmdline="rdinit=/bogus init=/bogus"),
                              arch=arches)
    b = boot_kernel(cfg, "x86_64", image, tmp_path / "boot.log", tmp_path)
    res = boot_result(b, None)
    assert res.status == "failed" and res.boot_status == "failed", res.detail
    assert any(f.kind == "panic" for f in res.findings or []), res.findings
    assert stress_result(b).status == "skipped"


def _commit_with_line(file: str, function: str, after: str, line: str, message: str) -> None:
    """Insert `line` after the first line equal to `after` below `function`'s signature in `file`; commit."""
    path = KERNEL_TREE / file
    lines = path.read_text().split("\n")
    start = lines.index(function)
    lines.insert(lines.index(after, start) + 1, line)
    path.write_text("\n".join(lines))
    git("commit", "-q", "-am", message)


def _build_head(cfg: Config, base: str, out: Path) -> Path:
    """Build the checked-out tree as the build stage builds a series (a copy of the base's build dir, ccache
    read-only); a copy of the image."""
    b = Builder(cfg, "x86_64", KERNEL_TREE).for_series()
    log = out / "build.log"
    out.mkdir(parents=True, exist_ok=True)
    conf = b.configure(log)
    assert conf is None or conf.ok, conf.output[-3000:]
    run = b.build(log, repo.changed_files(KERNEL_TREE, base, "HEAD"))
    assert run.ok, run.output[-3000:]
    return Path(shutil.copy2(b.image(), out / "bzImage"))


def test_finding_the_base_shows_too_is_preexisting_and_a_new_one_fails(tmp_path: Path) -> None:
    """boot.run_stage boots the base image as well: a WARN the base kernel hits under MADV_PAGEOUT is marked
    pre-existing and does not fail the stress verdict; the WARN the series adds (in reclaim's unmap) does."""
    cfg = Config(paths=PathsConfig(kernel_tree=KERNEL_TREE, patchsets=tmp_path / "patchsets", cache=CACHE))
    with restored_tree("pytest-preexisting/*") as tree:
        debian = sorted(b for b in tree.branches.local if b.startswith("debian/"))[-1]
        git("checkout", "-q", "-b", "pytest-preexisting/base", debian)
        _commit_with_line("mm/madvise.c", "static long madvise_pageout(struct madvise_behavior *madv_behavior)",
                          "\t\treturn -EINVAL;", '\tWARN_ONCE(1, "pytest: in the base\\n");',
                          "base: a WARN under MADV_PAGEOUT")
        base = git("rev-parse", "HEAD").strip()
        base_img = _build_head(cfg, base, tmp_path / "base")
        git("checkout", "-q", "-b", "pytest-preexisting/series")
        _commit_with_line("mm/rmap.c", "static bool try_to_unmap_one(struct folio *folio, struct vm_area_struct *vma,",
                          "\t\tpvmw.flags = PVMW_SYNC;", '\tWARN_ONCE(1, "pytest: new in the series\\n");',
                          "series: a WARN in try_to_unmap_one()")
        image = _build_head(cfg, base, tmp_path / "series")
    b = Builder(cfg, "x86_64", KERNEL_TREE)
    result = RevisionResult("m@x", 1, "s", "a", "d", [], [], base=Base(base, "test"))
    result.stages.build["x86_64"] = BuildResult("ok", "built", image=str(image), base_image=str(base_img),
                                                config_hash=b.hash)
    run_stage(boot.run_stage, cfg, result, ["x86_64"], slug="pytest-preexisting")

    res, st = result.stages.boot["x86_64"], result.stages.stress["x86_64"]
    findings = {f.fingerprint: f.preexisting for f in res.findings or []}
    # the base's WARN is reported in whatever madvise function madvise_pageout() was inlined into
    assert len(findings) == 2 and findings.pop("warning:try_to_unmap_one") is False, findings
    ((where, preexisting),) = findings.items()
    assert where.startswith("warning:madvise") and preexisting is True, findings
    assert st.status == "failed" and st.verdict == "fail", st.detail
    assert "try_to_unmap_one" in st.detail and "madvise" not in st.detail, st.detail  # not the series' problem
