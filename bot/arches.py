"""What the bot knows about each architecture it builds and boots (facts, not settings).

The operator's per-arch settings (compiler prefix, QEMU binary, boot timeout, stress compiler) are in
config.toml's [arch.<name>] tables (bot.config.ArchConfig); everything here is fixed by the kernel and QEMU.

Besides the real arches (NAMES, the defaults) there are build variants ([build] variants): another kernel of
a real arch (its `base`), built from the base's fragments plus its own (`fragments`, in bot/build/kconfig/),
booted, stress-tested and selftested like an arch of its own under its own name. What does not depend on the
kernel config is the base's: the compiler, the selftests binaries and their sysroot, the stress program.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Arch:
    name: str
    karch: str  # ARCH= for make
    srcarch: str  # the arch/ subdirectory (merge_config.sh's ARCH)
    target: str  # make target of the boot image
    image: str  # the image, relative to the build dir
    compiler_package: str  # Debian package with the cross (or native) gcc
    qemu_package: str
    console: str  # the serial console device in the guest
    machine: tuple[str, ...]  # QEMU machine/CPU arguments
    debian: str  # the Debian architecture (packages for the VM's static programs)
    triplet: str  # the multiarch library directory, /usr/lib/<triplet>
    base: str = ""  # the real arch a variant is a kernel of; a real arch's own name ("" is read as that)
    fragments: tuple[str, ...] = ()  # a variant's kconfig fragments, merged after the base arch's
    page_size: int = 4096  # the guest's base page size with this kernel (checked against what the guest says)
    about: str = ""  # what a variant is, in a few words (config errors, README)

    def __post_init__(self) -> None:
        if not self.base:
            object.__setattr__(self, "base", self.name)

    @property
    def variant(self) -> bool:
        return self.base != self.name

    @property
    def kasan(self) -> bool:
        """Built with the KASAN fragments whatever [build] kasan says (its boots get the KASAN timeouts)."""
        return "kasan.config" in self.fragments


_REAL: dict[str, Arch] = {
    "x86_64": Arch("x86_64", "x86_64", "x86", "bzImage", "arch/x86/boot/bzImage", "gcc", "qemu-system-x86", "ttyS0",
                   ("-M", "pc"), "amd64", "x86_64-linux-gnu"),
    # pauth-impdef: QEMU's cheap pointer-auth hash; the architected one dominates TCG time on arm64.
    # -cpu max has the 4K, 16K and 64K translation granules, so one machine boots every arm64 variant.
    "arm64": Arch("arm64", "arm64", "arm64", "Image", "arch/arm64/boot/Image", "gcc-aarch64-linux-gnu",
                  "qemu-system-arm", "ttyAMA0", ("-M", "virt", "-cpu", "max,pauth-impdef=on"),
                  "arm64", "aarch64-linux-gnu"),
}


def _variant(base: str, name: str, fragments: tuple[str, ...], about: str, page_size: int | None = None) -> Arch:
    real = _REAL[base]
    return dataclasses.replace(real, name=name, base=base, fragments=fragments, about=about,
                               page_size=page_size or real.page_size)


_VARIANTS = [
    _variant("arm64", "arm64-16k", ("arm64-16k.config",), "arm64 with 16 KiB pages (a PTE table spans 32 MiB)",
             16384),
    _variant("arm64", "arm64-64k", ("arm64-64k.config",),
             "arm64 with 64 KiB pages (a PTE table spans 512 MiB; other mTHP and contpte sizes)", 65536),
    _variant("x86_64", "x86_64-kasan", ("kasan.config", "kasan-mm.config"), "x86_64 with generic KASAN"),
]
ARCHES: dict[str, Arch] = {**_REAL, **{v.name: v for v in _VARIANTS}}
NAMES: tuple[str, ...] = tuple(_REAL)  # the real arches: what --arch and the defaults name
VARIANTS: tuple[str, ...] = tuple(v.name for v in _VARIANTS)


def order(name: str) -> tuple[int, str]:
    """Sort key of per-arch results: the real arches, then the variants, in ARCHES order; unknown names last."""
    names = list(ARCHES)
    return (names.index(name) if name in ARCHES else len(names), name)


def with_variants(arches: list[str], variants: list[str]) -> list[str]:
    """The arches asked for, then each [build] variant whose base arch is among them."""
    return arches + [v for v in variants if v not in arches and v in ARCHES and ARCHES[v].base in arches]
