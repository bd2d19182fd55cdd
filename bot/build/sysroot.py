"""The libraries the mm selftests link statically, per arch: Debian's -dev packages (they ship the .a files)
for the arch, downloaded with a private apt and unpacked into <cache>/selftests/sysroot-<debian arch>.

Nothing is installed and dpkg's architecture list is never changed; the packages come from the host's Debian
release (its glibc is the one the binaries link against), from [tree] debian_mirror. Without them five tests
(migration, rmap, ksm_tests: libnuma; memfd_secret, mlock-random-test: libcap) do not build, which their
results say; everything else still does.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from bot import proc
from bot.apt import PrivateApt
from bot.arches import ARCHES
from bot.config import Config
from bot.errors import OperationalError

log = logging.getLogger(__name__)

LIBRARIES = ("libnuma-dev", "libcap-dev", "liburing-dev")
OS_RELEASE = Path("/etc/os-release")


def host_codename(os_release: Path = OS_RELEASE) -> str:
    for line in os_release.read_text().splitlines() if os_release.is_file() else []:
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "stable"


def ensure_sysroot(config: Config, arch: str) -> tuple[Path | None, list[str]]:
    """(the sysroot, notes): downloaded once (marker .complete lists the packages), else (None, why not)."""
    deb_arch = ARCHES[arch].debian
    root = config.cache / "selftests" / f"sysroot-{deb_arch}"
    if (root / ".complete").is_file():
        return root, []
    try:
        versions = _download(config, deb_arch, root)
    except OperationalError as e:
        why = f"selftest libraries for {arch} ({', '.join(LIBRARIES)}) not available: {e}"
        log.warning("%s", why)
        return None, [why]
    (root / ".complete").write_text("".join(f"{p}={v}\n" for p, v in sorted(versions.items())))
    return root, []


def _download(config: Config, deb_arch: str, root: Path) -> dict[str, str]:
    suite = host_codename()
    apt = PrivateApt(config.cache / "apt" / f"{suite}-{deb_arch}", config.tree.debian_mirror, suite, deb_arch)
    apt.update()
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    versions = {}
    for package in LIBRARIES:
        version = apt.candidate(package)
        if version is None:
            raise OperationalError(f"{package}:{deb_arch} is not in Debian {suite}")
        deb = apt.download(package, version, config.cache / "apt" / f"debs-{deb_arch}")
        proc.run(["dpkg-deb", "-x", str(deb), str(tmp)], timeout=120, check=True)
        versions[package] = version
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    return versions
