"""Boot real kernels (x86_64, arm64; QEMU TCG here) with the stress /init: a clean kernel passes every scenario.

The kernel is the base of the Debian tree (debian/* branch) as the build stage builds it (bot.build: sandbox,
build dir and ccache under the bot's cache dir): a cold build is ~6 min per arch, later runs reuse it.
$MM_REVIEW_BOT_BOOT_IMAGE_X86_64 / _ARM64 point the tests at an existing image instead.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pygit2
import pytest

from bot import boot, build
from bot.config import Config, PathsConfig
from tests.kernel.conftest import KERNEL_TREE, no_tree

pytestmark = pytest.mark.kernel


def base_image(arch: str) -> Path:
    """The base kernel as the build stage builds it (the build dir and ccache tests/kernel/test_build.py uses)."""
    env_image = os.environ.get(f"MM_REVIEW_BOT_BOOT_IMAGE_{arch.upper()}")
    if env_image:
        return Path(env_image)
    try:
        repo = pygit2.Repository(str(KERNEL_TREE))
    except pygit2.GitError:
        no_tree(f"no kernel tree at {KERNEL_TREE}: run `bot setup`")
    bases = sorted(b for b in repo.branches.local if b.startswith("debian/"))
    if not bases:
        no_tree(f"{KERNEL_TREE} has no debian/* branch: run `bot setup`")
    head = repo.head.name if not repo.head_is_detached else str(repo.head.target)
    cfg = Config(paths=PathsConfig(kernel_tree=KERNEL_TREE))
    b = build.Builder(cfg, arch, KERNEL_TREE)
    base = str(repo.revparse_single(bases[-1]).id)
    try:
        diags, why = build.base_diagnostics(cfg, b, base)
    finally:
        subprocess.run(["git", "-C", str(KERNEL_TREE), "checkout", "-q", head.removeprefix("refs/heads/")],
                       check=True, timeout=600)
    assert diags is not None, why
    return build.base_image(b, base)


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_clean_kernel_passes_every_scenario(arch: str, tmp_path: Path) -> None:
    image = base_image(arch)
    cfg = Config()
    b = boot.boot_kernel(cfg, arch, image, tmp_path / f"boot-{arch}.log", tmp_path)
    res, st = boot.boot_result(b, set()), boot.stress_result(b)
    log = (tmp_path / f"boot-{arch}.log").read_text(errors="replace")
    assert res.status == "ok", (res.detail, log[-3000:])
    assert res.extra["accel"] in ("tcg", "kvm") and res.extra["findings"] == [], res.extra["findings"]
    assert [s["name"] for s in st.extra["scenarios"]] == cfg.stress.scenarios
    assert st.status == "ok" and st.extra["verdict"] == "pass", (st.detail, st.extra["scenarios"])


def test_bogus_init_is_a_failed_boot_with_the_panic(tmp_path: Path) -> None:
    import dataclasses

    image = base_image("x86_64")
    cfg = Config()
    cfg = dataclasses.replace(cfg, boot=dataclasses.replace(cfg.boot, cmdline="rdinit=/bogus init=/bogus",
                                                            timeout_x86_64=120))
    b = boot.boot_kernel(cfg, "x86_64", image, tmp_path / "boot.log", tmp_path)
    res = boot.boot_result(b, None)
    assert res.status == "failed" and res.extra["boot_status"] == "failed", res.detail
    assert any(f["kind"] == "panic" for f in res.extra["findings"]), res.extra["findings"]
    assert boot.stress_result(b).status == "skipped"
