"""[build] variants: the arches table, the config ([build] variants, [arch.<variant>]), the fragments and build dir
of a variant, the base arch's selftests/stress programs and QEMU machine, the guest's page size, and a variant's
name in the reply, the b4 entries and the dashboard. No processes (tests/kernel/test_variants.py boots one)."""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from bot import arches, dashboard
from bot import config as configmod
from bot.arches import ARCHES, NAMES, VARIANTS, with_variants
from bot.b4check import entries
from bot.boot import console, qemu, vm
from bot.boot.stage import boot_result, check_page_size
from bot.build import kconfig, selftests
from bot.config import BuildConfig, Config, PathsConfig
from bot.dashboard import model
from bot.errors import UsageError
from bot.report import sections
from bot.report.view import EXAMPLE_CONTEXT, render
from bot.results import RevisionResult, SeriesSummary
from bot.results.links import reproduce_arches, safe_arch
from bot.results.verdict import per_arch, verdict_parts

EXAMPLES = Path(__file__).resolve().parents[2] / "templates" / "examples"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "demo-series"
DEMO = "20260105-mm-rmap-lazyfree-batched-unmap-cleanups"


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return configmod.load(path)


# ---------------------------------------------------------------- bot/arches.py


def test_names_are_the_real_arches_and_each_variant_derives_from_one() -> None:
    assert NAMES == ("x86_64", "arm64") and configmod.ARCHES == NAMES
    assert VARIANTS == ("arm64-16k", "arm64-64k", "x86_64-kasan")
    for name in NAMES:
        assert ARCHES[name].base == name and not ARCHES[name].variant and ARCHES[name].fragments == ()
    for name in VARIANTS:
        v, base = ARCHES[name], ARCHES[ARCHES[name].base]
        assert v.variant and v.base in NAMES and name.startswith(f"{v.base}-") and v.about
        # everything the kernel config does not change is the base's
        assert dataclasses.replace(v, name=base.name, base=base.name, fragments=(), page_size=base.page_size,
                                   about="") == base
        assert all((kconfig.KCONFIG_DIR / f).is_file() for f in v.fragments)
    assert (ARCHES["arm64-16k"].page_size, ARCHES["arm64-64k"].page_size, ARCHES["arm64"].page_size) == (
        16384, 65536, 4096)
    assert ARCHES["x86_64-kasan"].kasan and not ARCHES["arm64-64k"].kasan


def test_with_variants_adds_those_whose_base_is_asked_for() -> None:
    assert with_variants(["x86_64", "arm64"], []) == ["x86_64", "arm64"]
    assert with_variants(["arm64"], ["x86_64-kasan", "arm64-64k"]) == ["arm64", "arm64-64k"]
    assert with_variants(["x86_64"], ["arm64-64k", "arm64-16k"]) == ["x86_64"]
    assert with_variants(["x86_64", "arm64"], ["arm64-64k", "x86_64-kasan"]) == [
        "x86_64", "arm64", "arm64-64k", "x86_64-kasan"]
    assert with_variants(["arm64", "arm64-64k"], ["arm64-64k"]) == ["arm64", "arm64-64k"]  # never twice
    assert with_variants(["arm64"], ["arm64-1k"]) == ["arm64"]  # config validation names it; not guessed here


def test_results_are_ordered_real_arches_then_variants() -> None:
    names = ["arm64-64k", "zz", "arm64", "x86_64-kasan", "x86_64"]
    assert sorted(names, key=arches.order) == ["x86_64", "arm64", "arm64-64k", "x86_64-kasan", "zz"]
    assert list(per_arch(dict.fromkeys(names))) == ["x86_64", "arm64", "arm64-64k", "x86_64-kasan", "zz"]


# ---------------------------------------------------------------- config


def test_variants_in_the_config(tmp_path: Path) -> None:
    cfg = load(tmp_path, '[build]\nvariants = ["arm64-64k", "x86_64-kasan"]\n')
    assert cfg.build.variants == ["arm64-64k", "x86_64-kasan"]
    assert Config().build.variants == []  # off by default
    # a variant without a table has its base's settings, the operator's ones included
    cfg = load(tmp_path, '[arch.arm64]\nqemu = "/opt/qemu/bin/qemu-system-aarch64"\nboot_timeout = 700.0\n')
    assert cfg.arch_config("arm64-64k") == cfg.arch_config("arm64")
    assert cfg.arch_config("arm64-64k").qemu == "/opt/qemu/bin/qemu-system-aarch64"
    assert cfg.arch_config("x86_64-kasan").selftests == cfg.arch_config("x86_64").selftests
    # one of its own is layered on its base's
    cfg = load(tmp_path, '[arch.arm64]\nqemu = "q"\n[arch.arm64-64k]\nboot_timeout = 900.0\nselftests = ["cow"]\n')
    own = cfg.arch_config("arm64-64k")
    assert (own.qemu, own.boot_timeout, own.selftests, own.cross_compile) == ("q", 900.0, ["cow"], "aarch64-linux-gnu-")
    assert cfg.arch_config("arm64").boot_timeout == 600.0


@pytest.mark.parametrize(("text", "message"), [
    ('[build]\nvariants = ["arm64-1k"]\n', "[build] variants: unknown variant 'arm64-1k' (known: arm64-16k ("),
    ('[build]\nvariants = ["arm64"]\n', "unknown variant 'arm64'"),
    ('[build]\nvariants = ["arm64-64k", "arm64-64k"]\n', "'arm64-64k' is listed twice"),
    ('[build]\nvariants = "arm64-64k"\n', "[build] variants must be a list of str"),
    ('[build]\nkasan = true\nvariants = ["x86_64-kasan"]\n', "is the x86_64 kernel itself when [build] kasan = true"),
    ('[arch.arm64-64k]\ncross_compile = "x-"\n', "[arch.arm64-64k] cross_compile: a build variant uses its base"),
    ('[arch.arm64-64k]\nstress_cc = "cc"\n', "set it in [arch.arm64]"),
    ('[arch.arm64-64k]\nbogus = 1\n', "unknown key 'bogus' in [arch.arm64-64k]"),
    ('[arch.arm64-4k]\nqemu = "q"\n', "build variants: arm64-16k, arm64-64k, x86_64-kasan"),
])
def test_bad_variant_config_is_a_usage_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError) as e:
        load(tmp_path, text)
    assert message in str(e.value)


def test_kasan_variant_is_fine_without_build_kasan() -> None:
    assert BuildConfig(variants=["x86_64-kasan"]).variants == ["x86_64-kasan"]
    assert BuildConfig(kasan=True, variants=["arm64-64k"]).kasan  # 64K + KASAN: the variant gets both


# ---------------------------------------------------------------- build


def names(frags: list[Path]) -> list[str]:
    return [f.name for f in frags]


def test_a_variants_fragments_are_its_bases_plus_its_own() -> None:
    cfg = Config()
    base = names(kconfig.fragments(cfg, "arm64"))
    assert names(kconfig.fragments(cfg, "arm64-64k")) == [*base, "arm64-64k.config"]
    assert names(kconfig.fragments(cfg, "arm64-16k")) == [*base, "arm64-16k.config"]
    assert names(kconfig.fragments(cfg, "x86_64-kasan")) == names(kconfig.fragments(cfg, "x86_64", kasan=True))
    assert names(kconfig.fragments(cfg, "x86_64-kasan", kasan=True)).count("kasan.config") == 1
    assert names(kconfig.fragments(cfg, "arm64-64k", kasan=True))[-3:] == [
        "arm64-64k.config", "kasan.config", "kasan-mm.config"]
    # its own build dirs and cached base results: the hash is over the name and every fragment
    hashes = {a: kconfig.config_hash(a, kconfig.fragments(cfg, a), "x-") for a in ("arm64", "arm64-16k", "arm64-64k")}
    assert len(set(hashes.values())) == 3


def test_the_requested_options_check_covers_the_variants_own() -> None:
    frags = kconfig.fragments(Config(), "arm64-64k")
    want = kconfig.requested_options(frags)
    assert want["CONFIG_ARM64_64K_PAGES"] == "y" and want["CONFIG_ARM64_4K_PAGES"] == "n"
    assert want["CONFIG_ARM64_MTE"] == "y"  # the base's are still asked for
    fine = "\n".join(f"CONFIG_{k[7:]}={v}" for k, v in want.items() if v != "n") + "\n"
    assert kconfig.dropped_options(want, fine) == []
    lost = fine.replace("CONFIG_ARM64_64K_PAGES=y\n", "") + "CONFIG_ARM64_4K_PAGES=y\n"
    assert kconfig.dropped_options(want, lost) == ["CONFIG_ARM64_4K_PAGES=n (got y)",
                                                   "CONFIG_ARM64_64K_PAGES=y (got unset)"]
    assert kconfig.requested_options(kconfig.fragments(Config(), "arm64-16k"))["CONFIG_ARM64_16K_PAGES"] == "y"


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-gcc") is None, reason="no arm64 cross compiler")
def test_a_variant_builds_in_a_dir_of_its_own_with_its_bases_compiler(tmp_path: Path) -> None:
    from bot.build.base import reproduce_command
    from bot.build.builder import Builder

    cfg = Config(paths=PathsConfig(cache=tmp_path / "cache"))
    b, v = Builder(cfg, "arm64", tmp_path), Builder(cfg, "arm64-64k", tmp_path)
    assert v.dir.name == f"arm64-64k-{v.hash}" and v.hash != b.hash and v.dir.parent == b.dir.parent
    assert (v.cc, v.spec.karch, v.spec.target, v.make_args()[2]) == (b.cc, "arm64", "Image", "ARCH=arm64")
    assert "bot/build/kconfig/arm64-64k.config" in reproduce_command(v)


def test_selftests_of_a_variant_are_its_bases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One cache dir and one key for arm64 and arm64-64k: the binaries do not depend on the kernel config."""
    cfg = Config(paths=PathsConfig(cache=tmp_path))
    seen: list[list[str]] = []
    monkeypatch.setattr(selftests.repo, "tree_ids", lambda tree, ref, paths: seen.append(paths) or {"p": "1"})
    assert selftests.cache_dir(cfg, "arm64-64k", "k") == selftests.cache_dir(cfg, "arm64", "k") == tmp_path / \
        "selftests" / "arm64-k"
    key = selftests.source_key(cfg, "arm64", "HEAD", "gcc 12", "s")
    assert selftests.source_key(cfg, "arm64-64k", "HEAD", "gcc 12", "s") == key
    assert selftests.source_key(cfg, "x86_64-kasan", "HEAD", "gcc 12", "s") == selftests.source_key(
        cfg, "x86_64", "HEAD", "gcc 12", "s") != key
    assert seen[0] == seen[1]


# ---------------------------------------------------------------- boot


def test_a_variant_boots_on_its_bases_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = Config()
    k, i = tmp_path / "Image", tmp_path / "initrd"
    assert qemu.qemu_command(cfg, "arm64-64k", k, i, "tcg") == qemu.qemu_command(cfg, "arm64", k, i, "tcg")
    monkeypatch.setattr(qemu, "kvm_usable", lambda: True)
    assert qemu.choose_accel("x86_64-kasan", "auto") == "kvm" and qemu.choose_accel("arm64-64k", "auto") == "tcg"
    assert qemu.qemu_command(cfg, "x86_64-kasan", k, i, "tcg") == qemu.qemu_command(cfg, "x86_64", k, i, "tcg")
    # the KASAN variant waits as long as a [build] kasan = true kernel does; the others as their base
    assert vm.boot_timeout(cfg, "x86_64-kasan") == 600.0 * cfg.boot.kasan_timeout_factor
    assert vm.boot_timeout(cfg, "arm64-64k") == vm.boot_timeout(cfg, "arm64") == 600.0


def test_the_stress_and_runner_programs_are_built_for_the_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    built: list[tuple[str, str]] = []

    def build_init(arch: str, cc: str, cache: Path, source: Path | None = None) -> Path:
        built.append((arch, cc))
        raise vm.stress.StressBuildError("stop here")

    monkeypatch.setattr(vm.stress, "build_init", build_init)
    monkeypatch.setattr(vm.shutil, "which", lambda _: "/usr/bin/qemu")
    kernel = tmp_path / "Image"
    kernel.write_bytes(b"")
    b = vm.boot_kernel(Config(), "arm64-64k", kernel, tmp_path / "boot-arm64-64k.log", tmp_path)
    assert b.error == "stop here" and built == [("arm64", "aarch64-linux-gnu-gcc")]


CONSOLE = """[    0.000000] Linux version 7.2.13
# setup: zram swap 256 MiB on
# stress: page_size=65536 pte_table_span=524288kB folio=256kB pmd_thp=524288kB
# stress: scenarios=lazyfree-pageout
STRESS-BEGIN lazyfree-pageout
STRESS lazyfree-pageout PASS pages=512 256kB_faults+128 time=1.0s
RESULT: PASS
"""


def booted(text: str) -> vm.Boot:
    run = qemu.QemuRun(30.0, False, 0, text)
    return vm.Boot(run, console.parse(text), ["qemu"], "tcg", Path("boot.log"))


def test_the_guests_page_size_is_recorded_and_checked() -> None:
    assert console.parse(CONSOLE).page_size == 65536
    assert console.parse(CONSOLE.replace("page_size=65536", "page_size=4096")).page_size == 4096
    assert console.parse("Run /init as init process\nRESULT: PASS\n").page_size is None  # an older init: unknown
    res = check_page_size(boot_result(booted(CONSOLE), set()), "arm64-64k")
    assert (res.status, res.page_size) == ("ok", 65536)
    assert res.detail == "booted to userspace (tcg, 30s to result; 64 KiB pages)"
    four = CONSOLE.replace("page_size=65536", "page_size=4096")
    assert boot_result(booted(four), set()).detail == "booted to userspace (tcg, 30s to result)"  # as before
    wrong = check_page_size(boot_result(booted(four), set()), "arm64-64k")
    assert wrong.status == "error" and "4096-byte pages, not the 65536 bytes arm64-64k is built for" in wrong.detail
    assert check_page_size(boot_result(booted(four), set()), "arm64").status == "ok"
    unknown = check_page_size(boot_result(booted("Run /init as init process\nRESULT: PASS\n"), set()), "arm64-64k")
    assert unknown.status == "ok" and unknown.page_size is None


def test_the_stress_program_follows_the_page_size() -> None:
    """stress.c has no 4 KiB or 2 MiB left in its sizes: they come from sysconf() (the kernel test runs it)."""
    src = (Path(vm.stress.__file__).parent / "stress.c").read_text()
    assert "#define PAGE 4096" not in src and "hugepages-2048kB" not in src and 'mthp_stat("64kB"' not in src
    assert "sysconf(_SC_PAGESIZE)" in src and "# stress: page_size=%zu" in src


# ---------------------------------------------------------------- reply, b4, dashboard


def with_variant(name: str = "pass") -> tuple[RevisionResult, SeriesSummary]:
    """An example's result with arm64's build, boot and stress copied to arm64-64k (and its config fragment)."""
    data = json.loads((EXAMPLES / "inputs" / f"{name}.json").read_text())
    r = copy.deepcopy(data["result"])
    for stage in ("build", "boot", "stress", "selftests"):
        if "arm64" in r["stages"].get(stage, {}):
            r["stages"][stage]["arm64-64k"] = copy.deepcopy(r["stages"][stage]["arm64"])
    r["stages"]["build"]["arm64-64k"]["fragments"].append("arm64-64k.config")
    return RevisionResult.from_json(r), SeriesSummary.from_json(data["series"])


def test_the_reply_has_a_line_for_the_variant_and_the_default_lines_are_as_before() -> None:
    result, series = with_variant()
    text = render(result, series, EXAMPLE_CONTEXT)
    before = (EXAMPLES / "pass.txt").read_text()
    assert text.startswith("mm-review-bot: v3 applied, built on x86_64/arm64/arm64-64k, boot +\nreclaim stress PASS")
    lines = text.splitlines()
    assert "  arm64-64k: built (6.9 s), booted (14 s), reclaim stress PASS 4/4" in lines
    for line in before.splitlines():
        if line.startswith(("  x86_64: ", "  arm64:  ")):
            assert line in lines
    assert "          tinyconfig + common.config + arm64.config + arm64-64k.config" in lines
    assert any(ln.startswith("  arm64-64k: https://") and ln.endswith("/v3/reproduce-arm64-64k.sh") for ln in lines)
    assert reproduce_arches(result) == ["x86_64", "arm64", "arm64-64k"] and safe_arch("arm64-64k")
    assert not safe_arch("arm64--64k") and not safe_arch("-arm64") and not safe_arch("arm64/../x")


def test_a_variants_failure_is_named_in_the_verdict_and_wraps_in_72_columns() -> None:
    result, _ = with_variant("stress-failure")
    result.stages.stress.pop("x86_64", None)
    parts = verdict_parts(result)
    assert "reclaim stress FAIL on arm64-64k" in parts
    lines = sections.arch_lines(result)
    assert lines[-1].startswith("  arm64-64k: built (") and "reclaim stress FAIL" in lines[-1]
    assert all(len(ln) <= 72 for line in lines for ln in line.splitlines()), lines


def test_b4_entries_have_one_per_variant() -> None:
    result, _ = with_variant()
    tools = [e["tool"] for e in entries.build_entries(result, None, [])]
    assert tools == ["mm-bot/build-x86_64", "mm-bot/build-arm64", "mm-bot/build-arm64-64k"]


def test_the_series_page_has_the_variants_columns_and_the_index_counts_it(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "patchsets")
    cfg = Config(paths=PathsConfig(patchsets=tmp_path / "patchsets", dashboard=tmp_path / "site"))
    rpath = cfg.paths.patchsets / DEMO / "v3" / "result.json"
    data = json.loads(rpath.read_text())
    for stage in ("build", "boot", "stress"):
        data["stages"][stage]["arm64-64k"] = copy.deepcopy(data["stages"][stage]["arm64"])
    data["stages"]["stress"]["arm64-64k"] |= {"status": "failed", "verdict": "fail", "detail": "swap-pressure FAIL"}
    rpath.write_text(json.dumps(data))
    series = model.load_series(cfg.paths.patchsets / DEMO)
    assert series is not None and series.arches == ["x86_64", "arm64", "arm64-64k"]
    cols = model.columns(series.arches)
    assert [c.arch for c in cols if c.check == "stress"] == series.arches
    v3 = next(r for r in series.revisions if r.version == 3)
    assert model.row(v3, cols)[1] == "fail"
    assert model.row(v3, model.columns(list(NAMES)))[1] == "pass"  # the variant's cells are where it fails
    dashboard.build_site(cfg)
    page = (cfg.paths.dashboard / "series" / DEMO / "index.html").read_text()
    assert "arm64-64k" in page and (cfg.paths.dashboard / "series" / DEMO / "v3" / "reproduce-arm64-64k.sh").is_file()
    row = json.loads((cfg.paths.dashboard / "series" / DEMO / "row.json").read_text())
    assert row["verdict"] == "fail"  # the index shows the real arches' columns; its verdict counts the variant
    assert "arm64-64k" not in row["html"]
