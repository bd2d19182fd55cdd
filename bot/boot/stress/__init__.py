"""The stress initramfs: stress.c compiled statically per arch (cached by source hash) + a cpio newc archive.

The archive holds /init (the stress program), /dev/console (so the kernel can open the console for init
before devtmpfs is mounted) and /etc/stress.conf (the scenario list and sizes from [stress]).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from bot import proc
from bot.errors import OperationalError

log = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "stress.c"
CFLAGS = ["-static", "-O2", "-Wall", "-std=gnu11"]
COMPILE_TIMEOUT = 120.0
PACKAGES = {"x86_64": "gcc and libc6-dev", "arm64": "gcc-aarch64-linux-gnu and libc6-dev-arm64-cross"}


class StressBuildError(OperationalError):
    """The stress program could not be compiled (missing compiler, missing libc, compile error)."""


@dataclass(frozen=True)
class Entry:
    """One cpio member: a directory, a regular file or a character device."""

    name: str  # without the leading "/"
    mode: int  # full st_mode (type bits included)
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def source_hash(cc: str, source: Path = SOURCE) -> str:
    """Key of the compiled program: the C source, the flags and the compiler command."""
    h = hashlib.sha256(source.read_bytes())
    h.update(" ".join([cc, *CFLAGS]).encode())
    return h.hexdigest()[:16]


def build_init(arch: str, cc: str, cache: Path, timeout: float = COMPILE_TIMEOUT, source: Path = SOURCE) -> Path:
    """Compile stress.c (or another static program of the VM: the selftests runner) for arch with cc (cached
    by source hash); raise StressBuildError with the fix if it cannot."""
    out = cache / "stress" / f"{arch}-{source_hash(cc, source)}" / ("init" if source == SOURCE else source.stem)
    if out.exists():
        return out
    what = "stress" if source == SOURCE else source.stem
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    cmd = [*cc.split(), *CFLAGS, "-o", str(tmp), str(source)]
    try:
        cc_run = proc.run(cmd, timeout=timeout)
    except OperationalError as e:
        raise StressBuildError(
            f"cannot build the {arch} {what} program: compiler {cc.split()[0]!r} not found "
            f"(Debian: apt install {PACKAGES.get(arch, 'gcc')})"
        ) from e
    if cc_run.timed_out:
        raise StressBuildError(f"cannot build the {arch} {what} program: {cc} timed out after {timeout:.0f}s")
    if cc_run.returncode != 0:
        first = next((ln for ln in cc_run.stderr.splitlines() if "error" in ln), cc_run.stderr.strip()[:300])
        libc = "-lc" in cc_run.stderr or "stdio.h" in cc_run.stderr
        hint = f" (static libc missing? Debian: apt install {PACKAGES.get(arch, 'gcc')})" if libc else ""
        raise StressBuildError(f"cannot build the {arch} {what} program with {cc}: {first}{hint}")
    os.replace(tmp, out)
    log.info("built %s stress init %s", arch, out)
    return out


def _header(ino: int, e: Entry, namesize: int) -> bytes:
    major, minor = e.rdev
    fields = [ino, e.mode, 0, 0, 2 if stat.S_ISDIR(e.mode) else 1, 0, len(e.data), 0, 0, major, minor, namesize, 0]
    return b"070701" + b"".join(f"{v:08x}".encode() for v in fields)


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def write_cpio(entries: list[Entry]) -> bytes:
    """A cpio "newc" archive (what the kernel's initramfs unpacker reads), ending with TRAILER!!!."""
    out = bytearray()
    for ino, e in enumerate([*entries, Entry("TRAILER!!!", 0)], start=1):
        name = e.name.encode() + b"\0"
        hdr = _header(0 if e.name == "TRAILER!!!" else ino, e, len(name))
        out += hdr + name + _pad4(len(hdr) + len(name))
        out += e.data + _pad4(len(e.data))
    return bytes(out)


def conf_text(settings: dict[str, str | int]) -> str:
    return "".join(f"{k}={v}\n" for k, v in settings.items())


def make_initramfs(init: Path, settings: dict[str, str | int], out: Path, extra: list[Entry] | None = None) -> Path:
    """Write the initramfs for one boot: /init + /dev/console + /etc/stress.conf (+ `extra`: the selftests)."""
    entries = [
        Entry("dev", stat.S_IFDIR | 0o755),
        Entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)),
        Entry("proc", stat.S_IFDIR | 0o755),
        Entry("sys", stat.S_IFDIR | 0o755),
        Entry("etc", stat.S_IFDIR | 0o755),
        Entry("etc/stress.conf", stat.S_IFREG | 0o644, conf_text(settings).encode()),
        Entry("init", stat.S_IFREG | 0o755, init.read_bytes()),
        *(extra or []),
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(write_cpio(entries))
    return out
