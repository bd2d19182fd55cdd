"""Kconfig fragments: what is requested, what olddefconfig dropped, the config hash, [build] in config.toml."""

from __future__ import annotations

import pytest

from bot.build import kconfig as build
from bot.config import BuildConfig, Config, load
from bot.errors import UsageError


def test_requested_and_dropped(tmp_path):
    a = tmp_path / "a.config"
    b = tmp_path / "b.config"
    a.write_text("# comment\nCONFIG_SWAP=y\nCONFIG_ZRAM=y\n# CONFIG_SLUB_TINY is not set\nCONFIG_LOG=\"x\"\n")
    b.write_text("CONFIG_ZRAM=m\nCONFIG_KASAN=y\n")
    want = build.requested_options([a, b])
    assert want == {"CONFIG_SWAP": "y", "CONFIG_ZRAM": "m", "CONFIG_SLUB_TINY": "n", "CONFIG_LOG": '"x"',
                    "CONFIG_KASAN": "y"}
    dotconfig = "CONFIG_SWAP=y\nCONFIG_ZRAM=y\nCONFIG_SLUB_TINY=y\nCONFIG_LOG=\"x\"\n# CONFIG_KASAN is not set\n"
    assert build.dropped_options(want, dotconfig) == [
        "CONFIG_ZRAM=m (got y)", "CONFIG_SLUB_TINY=n (got y)", "CONFIG_KASAN=y (got unset)"]
    assert build.dropped_options(want, "CONFIG_SWAP=y\nCONFIG_ZRAM=m\nCONFIG_LOG=\"x\"\nCONFIG_KASAN=y\n") == []


def test_repo_fragments_cover_the_brief():
    want = build.requested_options(build.fragments(Config(), "x86_64"))
    for opt in ("CONFIG_64BIT", "CONFIG_SMP", "CONFIG_SWAP", "CONFIG_ZRAM", "CONFIG_TRANSPARENT_HUGEPAGE",
                "CONFIG_MEMCG", "CONFIG_ADVISE_SYSCALLS", "CONFIG_DEBUG_VM", "CONFIG_SERIAL_8250_CONSOLE"):
        assert want[opt] == "y", opt
    assert want["CONFIG_SLUB_TINY"] == "n"
    assert "CONFIG_KASAN" not in want
    arm = build.requested_options(build.fragments(Config(build=BuildConfig(kasan=True)), "arm64"))
    assert arm["CONFIG_SERIAL_AMBA_PL011_CONSOLE"] == "y" and arm["CONFIG_KASAN"] == "y"


def test_config_hash_changes_with_inputs(tmp_path):
    f = tmp_path / "common.config"
    f.write_text("CONFIG_SWAP=y\n")
    h1 = build.config_hash("x86_64", [f], "")
    assert h1 == build.config_hash("x86_64", [f], "")
    assert h1 != build.config_hash("arm64", [f], "")
    assert h1 != build.config_hash("x86_64", [f], "x86_64-linux-gnu-")
    f.write_text("CONFIG_SWAP=n\n")
    assert h1 != build.config_hash("x86_64", [f], "")


def test_build_section_in_config_toml(tmp_path):
    p = tmp_path / "config.toml"
    p.write_text("[build]\nkasan = true\njobs = 4\n[arch.arm64]\ncross_compile = \"aarch64-none-\"\n")
    c = load(p)
    assert c.build.kasan and c.build.jobs == 4 and c.arch_config("arm64").cross_compile == "aarch64-none-"
    assert c.build.timeout == 3600.0 and c.build.ccache == "ccache"
    p.write_text("[build]\nkasn = true\n")
    with pytest.raises(UsageError, match="kasn"):
        load(p)
