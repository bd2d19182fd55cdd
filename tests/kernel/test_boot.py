"""Boot real kernels (x86_64, arm64; QEMU TCG here) with the stress /init: a clean kernel passes every scenario.

The kernel is the base of the Debian tree (debian/* branch) built with the bot's kconfig fragments, in a git
worktree and build dirs under the bot's cache dir (kernel-tree's own checkout is never touched), with ccache:
a cold build is ~6 min per arch, later runs reuse it. $MM_REVIEW_BOT_BOOT_IMAGE_X86_64 / _ARM64 point the tests
at an existing image instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bot import boot
from bot.config import Config
from bot.tree import cache_dir
from tests.kernel.conftest import KERNEL_TREE, no_tree

pytestmark = pytest.mark.kernel

KCONFIG = Path(__file__).resolve().parents[2] / "bot" / "kconfig"
ARCH = {  # arch: (make ARCH, merge_config ARCH, CROSS_COMPILE, target, image path)
    "x86_64": ("x86_64", "x86", "", "bzImage", "arch/x86/boot/bzImage"),
    "arm64": ("arm64", "arm64", "aarch64-linux-gnu-", "Image", "arch/arm64/boot/Image"),
}


def sh(cmd: list[str] | str, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> None:
    subprocess.run(cmd, cwd=cwd, shell=isinstance(cmd, str), check=True, timeout=timeout, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def base_image(arch: str) -> Path:
    env_image = os.environ.get(f"MM_REVIEW_BOT_BOOT_IMAGE_{arch.upper()}")
    if env_image:
        return Path(env_image)
    if not (KERNEL_TREE / ".git").exists():
        no_tree(f"no kernel tree at {KERNEL_TREE}")
    branches = subprocess.run(["git", "-C", str(KERNEL_TREE), "branch", "--list", "debian/*", "--format=%(refname)"],
                              capture_output=True, text=True, timeout=60).stdout.split()
    if not branches:
        no_tree(f"{KERNEL_TREE} has no debian/* branch")
    march, sarch, cross, target, image = ARCH[arch]
    if shutil.which(f"{cross}gcc") is None:
        pytest.skip(f"{cross}gcc not installed")
    root = cache_dir() / "boot" / "test-kernel"
    wt, out = root / "src", root / f"build-{arch}"
    if not wt.exists():
        sh(["git", "-C", str(KERNEL_TREE), "worktree", "add", "--detach", str(wt), branches[0]], KERNEL_TREE, 600)
    make = ["make", f"O={out}", f"ARCH={march}", f"CROSS_COMPILE={cross}", f"CC=ccache {cross}gcc"]
    env = {**os.environ, "CCACHE_DIR": str(cache_dir() / "ccache")}
    if not (out / ".config").exists():
        out.mkdir(parents=True, exist_ok=True)
        sh([*make, "tinyconfig"], wt, 600, env)
        frags = [str(KCONFIG / "common.config"), str(KCONFIG / f"{arch}.config")]
        sh(["scripts/kconfig/merge_config.sh", "-m", "-O", str(out), str(out / ".config"), *frags], wt, 600,
           {**env, "ARCH": sarch, "CROSS_COMPILE": cross})
        sh([*make, "olddefconfig"], wt, 600, env)
    sh([*make, f"-j{os.cpu_count() or 2}", target], wt, 3600, env)
    return out / image


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
