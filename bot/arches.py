"""What the bot knows about each architecture it builds and boots (facts, not settings).

The operator's per-arch settings (compiler prefix, QEMU binary, boot timeout, stress compiler) are in
config.toml's [arch.<name>] tables (bot.config.ArchConfig); everything here is fixed by the kernel and QEMU.
"""

from __future__ import annotations

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


ARCHES: dict[str, Arch] = {
    "x86_64": Arch("x86_64", "x86_64", "x86", "bzImage", "arch/x86/boot/bzImage", "gcc", "qemu-system-x86", "ttyS0",
                   ("-M", "pc"), "amd64", "x86_64-linux-gnu"),
    # pauth-impdef: QEMU's cheap pointer-auth hash; the architected one dominates TCG time on arm64
    "arm64": Arch("arm64", "arm64", "arm64", "Image", "arch/arm64/boot/Image", "gcc-aarch64-linux-gnu",
                  "qemu-system-arm", "ttyAMA0", ("-M", "virt", "-cpu", "max,pauth-impdef=on"),
                  "arm64", "aarch64-linux-gnu"),
}
NAMES: tuple[str, ...] = tuple(ARCHES)


def with_variants(arches: list[str], variants: list[str]) -> list[str]:
    """The arches asked for, then each [build] variant whose base arch is among them."""
    return arches + [v for v in variants if v not in arches and v in ARCHES and ARCHES[v].name.split("-")[0] in arches]
