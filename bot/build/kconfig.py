"""The kernel configs the build stage uses: `make tinyconfig` + the fragments in bot/build/kconfig/, per arch:
common.config and <arch>.config boot under QEMU; mm.config and <arch>-mm.config turn on every mm feature the
arch supports, so that (almost) every mm/ file is compiled (options an arch cannot have are named in comments,
with the reason); kasan.config and kasan-mm.config add generic KASAN. A build variant (bot/arches.py) is its
base arch's fragments plus its own (arm64-64k.config: 64 KiB pages; x86_64-kasan: the two KASAN ones).

config_hash() keys build dirs and cached base results; after olddefconfig every requested option is
checked in .config (dropped_options), so an option that vanished is named instead of silently not built.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from bot.arches import ARCHES
from bot.config import Config

KCONFIG_DIR = Path(__file__).parent / "kconfig"


def fragments(config: Config, arch: str, kasan: bool | None = None) -> list[Path]:
    """The fragments on top of tinyconfig, in merge order: what boots (common, <arch>), what compiles mm/
    (mm, <arch>-mm), a build variant's own, and with KASAN its two (kasan = None: as [build] kasan says)."""
    spec = ARCHES[arch]
    names = ["common.config", f"{spec.base}.config", "mm.config", f"{spec.base}-mm.config", *spec.fragments]
    if config.build.kasan if kasan is None else kasan:
        names += [n for n in ("kasan.config", "kasan-mm.config") if n not in names]
    return [KCONFIG_DIR / n for n in names]


def config_hash(arch: str, frags: list[Path], cross: str) -> str:
    """Build dirs and cached base warnings are keyed by this: arch, compiler prefix, fragment contents."""
    h = hashlib.sha256(f"{arch}\0{cross}\0".encode())
    for f in frags:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def requested_options(frags: list[Path]) -> dict[str, str]:
    """CONFIG_X -> value ('n' for '# CONFIG_X is not set'); later fragments win, like merge_config.sh."""
    want: dict[str, str] = {}
    for f in frags:
        for line in f.read_text().splitlines():
            line = line.strip()
            if line.startswith("CONFIG_") and "=" in line:
                k, v = line.split("=", 1)
                want[k] = v
            elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
                want[line[2:].split()[0]] = "n"
    return want


def dropped_options(want: dict[str, str], dotconfig: str) -> list[str]:
    """Requested options that olddefconfig did not keep (unmet dependency, typo, arch without it)."""
    have: dict[str, str] = {}
    for line in dotconfig.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, v = line.split("=", 1)
            have[k] = v
    out = []
    for k, v in want.items():
        got = have.get(k, "n")
        if got != v:
            out.append(f"{k}={v} (got {got if k in have else 'unset'})")
    return out


_NOTE = re.compile(r"^#\s*(CONFIG_\w+)((?:\s*/\s*\w+)*)(?:\s*\([^)]*\))?\s*:\s*(.+)$")


def arch_notes(frags: list[Path]) -> dict[str, str]:
    """CONFIG_X -> why the arch cannot have it, from the fragments' comments: `# CONFIG_X (mm/file.c): reason`,
    `# CONFIG_X / Y: reason`, continued on `#   ...` lines (an option the arch cannot have is named there, not
    silently dropped)."""
    notes: dict[str, str] = {}
    last: list[str] = []
    for f in frags:
        for line in f.read_text().splitlines():
            m = _NOTE.match(line.strip())
            if m:
                names = [m.group(1)] + [f"CONFIG_{n.strip()}" if not n.strip().startswith("CONFIG_") else n.strip()
                                        for n in m.group(2).split("/") if n.strip()]
                for name in names:
                    notes[name] = m.group(3).strip()
                last = names
            elif last and re.match(r"^#\s{2,}\S", line):
                for name in last:
                    notes[name] += " " + line.lstrip("#").strip()
            else:
                last = []
    return notes
