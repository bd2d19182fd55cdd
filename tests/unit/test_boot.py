"""Boot stage without a kernel: initramfs writer, QEMU command line, fake QEMU (timeout, panic, missing)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from bot import boot
from bot.boot import qemu, stress, vm
from bot.boot.stage import boot_result, stress_result
from bot.config import DEFAULT_ARCH, BootConfig, Config, PathsConfig, StressConfig
from bot.results import BuildResult, RevisionResult, Scenario
from tests.stages import run_stage

CACHE: list[Path] = []  # the module's cache dir (one stress-program compile for the whole module)


@pytest.fixture(scope="module")
def _module_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")  # one stress-program compile for the whole module


@pytest.fixture(autouse=True)
def _cache(_module_cache: Path) -> None:
    CACHE[:] = [_module_cache]


def fake_qemu(tmp_path: Path, body: str) -> str:
    """A `qemu` that prints what a console would and behaves as body says; and the kernel files it "boots"."""
    for kernel in ("bzImage", "k"):
        (tmp_path / kernel).write_bytes(b"not a kernel")
    path = tmp_path / "fake-qemu"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def config(tmp_path: Path, qemu: str | None = None, arch: str = "x86_64", timeout: float | None = None,
           stress_cc: str | None = None, **boot_kw: object) -> Config:
    """A config whose [arch.<arch>] runs `qemu` (the fake) with `timeout` and `stress_cc`."""
    arches = dict(DEFAULT_ARCH)
    settings = {k: v for k, v in (("qemu", qemu), ("boot_timeout", timeout), ("stress_cc", stress_cc)) if v}
    arches[arch] = dataclasses.replace(arches[arch], **settings)  # type: ignore[arg-type]
    return Config(paths=PathsConfig(patchsets=tmp_path / "patchsets", cache=CACHE[0]),
                  boot=BootConfig(**boot_kw), stress=StressConfig(scenarios=["swap-pressure"]),  # type: ignore[arg-type]
                  arch=arches)


def test_cpio_newc_is_read_by_cpio(tmp_path: Path) -> None:
    if shutil.which("cpio") is None:
        pytest.skip("cpio not installed")
    init = tmp_path / "init"
    init.write_bytes(b"\x7fELF" + b"x" * 1001)  # odd size: exercises the 4-byte padding
    out = stress.make_initramfs(init, {"scenarios": "a,b", "zram_mib": 64}, tmp_path / "i.cpio")
    listing = subprocess.run(["cpio", "-itv"], input=out.read_bytes(), capture_output=True, timeout=30).stdout
    text = listing.decode()
    assert "dev/console" in text and text.splitlines()[1].startswith("crw")
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["cpio", "-id", "--no-absolute-filenames"], input=out.read_bytes(), cwd=dest, check=True,
                   capture_output=True, timeout=30)
    assert (dest / "init").read_bytes() == init.read_bytes()
    assert stat.S_IMODE((dest / "init").stat().st_mode) == 0o755
    assert (dest / "etc/stress.conf").read_text() == "scenarios=a,b\nzram_mib=64\n"


def test_cpio_trailer_and_alignment() -> None:
    data = stress.write_cpio([stress.Entry("a", stat.S_IFREG | 0o644, b"123")])
    assert data.startswith(b"070701") and b"TRAILER!!!\0" in data and len(data) % 4 == 0


def test_qemu_command_lines() -> None:
    cfg = Config(boot=BootConfig(memory_mib=768, smp=2, cmdline="foo=1"))
    x86 = qemu.qemu_command(cfg, "x86_64", Path("/k/bzImage"), Path("/i.cpio"), "tcg")
    assert x86[0] == "qemu-system-x86_64" and ["-accel", "tcg"] == x86[3:5]
    for flag in ("-nographic", "-no-reboot"):
        assert flag in x86
    assert x86[x86.index("-nic") + 1] == "none" and x86[x86.index("-smp") + 1] == "2"
    assert x86[x86.index("-m") + 1] == "768M"
    append = x86[x86.index("-append") + 1]
    assert "console=ttyS0" in append and "panic=-1" in append and append.endswith("foo=1")
    arm = qemu.qemu_command(cfg, "arm64", Path("/k/Image"), Path("/i.cpio"), "kvm")
    assert arm[:5] == ["qemu-system-aarch64", "-M", "virt", "-cpu", "max,pauth-impdef=on"] and "-accel" in arm
    assert arm[arm.index("-accel") + 1] == "tcg"  # never KVM for the foreign arch
    assert "console=ttyAMA0" in arm[arm.index("-append") + 1]
    kvm = qemu.qemu_command(cfg, "x86_64", Path("/k"), Path("/i"), "kvm")
    assert kvm[3:7] == ["-accel", "kvm", "-cpu", "host"]


def test_accel_falls_back_to_tcg_without_kvm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qemu, "kvm_usable", lambda: False)
    assert qemu.choose_accel("x86_64", "auto") == "tcg"
    monkeypatch.setattr(qemu, "kvm_usable", lambda: True)
    assert qemu.choose_accel("x86_64", "auto") == "kvm" and qemu.choose_accel("arm64", "auto") == "tcg"


def test_hang_is_killed_at_the_timeout_and_the_log_kept(tmp_path: Path) -> None:
    q = fake_qemu(tmp_path, 'echo "Run /init as init process"; echo "STRESS-BEGIN swap-pressure"; exec sleep 60')
    cfg = config(tmp_path, qemu=q, timeout=1.5, accel="tcg")
    b = vm.boot_kernel(cfg, "x86_64", tmp_path / "bzImage", tmp_path / "logs/boot-x86_64.log", tmp_path)
    assert b.run is not None and b.run.timed_out and b.run.seconds < 10
    res = boot_result(b, None)
    assert res.status == "error" and res.detail.startswith("timeout") and res.boot_status == "timeout"
    assert "swap-pressure" in res.detail
    assert "STRESS-BEGIN" in (tmp_path / "logs/boot-x86_64.log").read_text()
    st = stress_result(b)
    assert st.status == "failed" and st.failing == ["swap-pressure"] and "timeout" in st.detail


def test_panic_at_boot_is_failed_with_the_excerpt(tmp_path: Path) -> None:
    q = fake_qemu(tmp_path, "printf 'Run /bogus as init process\\r\\n"
                  "Kernel panic - not syncing: Requested init /bogus failed (error -2).\\r\\n'; exit 0")
    cfg = config(tmp_path, qemu=q, accel="tcg")
    b = vm.boot_kernel(cfg, "x86_64", tmp_path / "bzImage", tmp_path / "boot.log", tmp_path)
    res = boot_result(b, set())
    assert res.status == "failed" and "Kernel panic" in res.detail
    assert res.findings and res.findings[0].kind == "panic" and res.findings[0].preexisting is False
    assert stress_result(b).status == "skipped"


def test_passing_run_and_preexisting_finding(tmp_path: Path) -> None:
    q = fake_qemu(tmp_path, "echo 'WARNING: CPU: 0 PID: 1 at mm/x.c:1 foo_bar+0x1/0x2'; echo '# stress: x'; "
                  "echo 'STRESS swap-pressure PASS ok'; echo 'RESULT: PASS'")
    cfg = config(tmp_path, qemu=q, accel="tcg")
    b = vm.boot_kernel(cfg, "x86_64", tmp_path / "k", tmp_path / "boot.log", tmp_path)
    res = boot_result(b, {"warning:foo_bar"})
    assert res.status == "ok" and res.findings and res.findings[0].preexisting is True
    assert res.accel == "tcg" and "fake-qemu" in (res.command or "")
    st = stress_result(b)
    assert st.status == "ok" and st.verdict == "pass"
    assert st.scenarios == [Scenario("swap-pressure", "pass", "ok")]


def test_new_finding_fails_the_stress_verdict(tmp_path: Path) -> None:
    q = fake_qemu(tmp_path, "echo 'STRESS-BEGIN swap-pressure'; echo 'BUG: Bad page state in process init pfn:1'; "
                  "echo 'STRESS swap-pressure PASS ok'; echo 'RESULT: PASS'")
    b = vm.boot_kernel(config(tmp_path, qemu=q, accel="tcg"), "x86_64", tmp_path / "k",
                         tmp_path / "boot.log", tmp_path)
    boot_result(b, set())
    st = stress_result(b)
    assert st.status == "failed" and "Bad page state" in st.detail and "during swap-pressure" in st.detail


def test_missing_qemu_names_the_debian_package(tmp_path: Path) -> None:
    cfg = config(tmp_path, qemu="/nonexistent/qemu-system-aarch64", arch="arm64")
    b = vm.boot_kernel(cfg, "arm64", tmp_path / "Image", tmp_path / "boot.log", tmp_path)
    res = boot_result(b, None)
    assert res.status == "error" and "apt install qemu-system-arm" in res.detail
    assert stress_result(b).status == "skipped"


def test_missing_firmware_names_the_package(tmp_path: Path) -> None:
    q = fake_qemu(tmp_path, "echo 'qemu: could not load PC BIOS bios-256k.bin' >&2; exit 1")
    b = vm.boot_kernel(config(tmp_path, qemu=q), "x86_64", tmp_path / "k", tmp_path / "b.log", tmp_path)
    res = boot_result(b, None)
    assert res.status == "error" and "could not load PC BIOS" in res.detail and "qemu-system-x86" in res.detail


def test_stress_program_build_failure_is_clear(tmp_path: Path) -> None:
    with pytest.raises(stress.StressBuildError, match="gcc-aarch64-linux-gnu"):
        stress.build_init("arm64", "/nonexistent/aarch64-linux-gnu-gcc", tmp_path)
    cfg = config(tmp_path, qemu=fake_qemu(tmp_path, "exit 0"), stress_cc="/nonexistent/gcc")
    b = vm.boot_kernel(cfg, "x86_64", tmp_path / "k", tmp_path / "b.log", tmp_path)
    assert "cannot build the x86_64 stress program" in boot_result(b, None).detail


def test_stress_program_is_cached_by_source_hash(tmp_path: Path) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    first = stress.build_init("x86_64", "gcc", tmp_path)
    mtime = first.stat().st_mtime_ns
    again = stress.build_init("x86_64", "gcc", tmp_path)
    assert again == first and again.stat().st_mtime_ns == mtime and os.access(first, os.X_OK)


def test_runner_skips_arches_without_a_build(tmp_path: Path) -> None:
    rev = RevisionResult("m@x", 2, "s", "a", "d", [], ["x"])
    rev.stages.build["x86_64"] = BuildResult("failed", "error: x")
    cfg = Config(paths=dataclasses.replace(Config().paths, patchsets=tmp_path))
    run_stage(boot.run_stage, cfg, rev, ["x86_64", "arm64"], slug="s")
    assert rev.stages.boot["x86_64"].to_json() == {"status": "skipped", "detail": "not run: build failed"}
    assert rev.stages.stress["arm64"].detail == "not run: no build"


def test_kvm_needs_vmx_or_svm() -> None:
    assert qemu.cpu_has_virt("processor : 0\nflags : fpu sse2 vmx\n")
    assert not qemu.cpu_has_virt("processor : 0\nflags : fpu sse2 hypervisor\n")


def test_kvm_start_failure_falls_back_to_tcg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # what QEMU printed here with /dev/kvm present but no vmx: it aborts before the kernel runs
    q = fake_qemu(tmp_path, 'case "$*" in *"-accel kvm"*) echo "error: failed to set MSR 0x10a (kvm.c)"; exit 134;; '
                  "esac; echo '# stress: x'; echo 'STRESS swap-pressure PASS ok'; echo 'RESULT: PASS'")
    monkeypatch.setattr(qemu, "kvm_usable", lambda: True)
    b = vm.boot_kernel(config(tmp_path, qemu=q), "x86_64", tmp_path / "k", tmp_path / "b.log", tmp_path)
    assert b.accel == "tcg" and stress_result(b).status == "ok"


def test_qemu_runs_sandboxed_and_cannot_write_the_host(tmp_path: Path) -> None:
    """QEMU runs a series' kernel: in bwrap it sees the kernel and initramfs read-only and writes nothing else."""
    q = fake_qemu(tmp_path, f"echo x >> {tmp_path}/k && echo KERNEL-WRITTEN; touch {tmp_path}/planted; "
                  "echo 'Run /init as init process'; echo 'STRESS swap-pressure PASS ok'; echo 'RESULT: PASS'")
    b = vm.boot_kernel(config(tmp_path, qemu=q, accel="tcg"), "x86_64", tmp_path / "k",
                         tmp_path / "b.log", tmp_path)
    assert stress_result(b).status == "ok", b.run
    assert "Read-only file system" in (tmp_path / "b.log").read_text()
    assert (tmp_path / "k").read_bytes() == b"not a kernel" and not (tmp_path / "planted").exists()
    assert "KERNEL-WRITTEN" not in (tmp_path / "b.log").read_text()
