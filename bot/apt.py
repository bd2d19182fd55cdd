"""apt with a private configuration: Debian packages downloaded (never installed) with their own sources,
lists and cache under the bot's cache dir, so the system's apt sources and dpkg's architectures are never
touched. `bot setup` fetches linux-source with it; the build stage the selftests' libraries per arch."""

from __future__ import annotations

import re
from pathlib import Path

from bot import proc
from bot.errors import OperationalError

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
APT_TIMEOUT = 1800.0  # linux-source's .deb is ~150 MB


class PrivateApt:
    """apt-get/apt-cache with their own sources, lists and cache under the bot's cache dir."""

    def __init__(self, root: Path, mirror: str, suite: str, arch: str | None = None) -> None:
        self.root = root
        self.arch = arch  # a Debian architecture (arm64) for other arches' packages; None: the host's
        self.sources = root / "sources.list"
        for d in ("state/lists/partial", "cache/archives/partial", "etc/preferences.d", "etc/apt.conf.d"):
            (root / d).mkdir(parents=True, exist_ok=True)
        line = f"deb [signed-by={KEYRING}] {mirror} {suite} main\n"
        if not self.sources.exists() or self.sources.read_text() != line:
            self.sources.write_text(line)

    def opts(self) -> list[str]:
        r = self.root
        return [
            "-o",
            f"Dir::Etc::SourceList={self.sources}",
            "-o",
            "Dir::Etc::SourceParts=/dev/null",
            "-o",
            f"Dir::Etc::Preferences={r}/etc/preferences",
            "-o",
            f"Dir::Etc::PreferencesParts={r}/etc/preferences.d",
            "-o",
            f"Dir::State={r}/state",
            "-o",
            f"Dir::State::Lists={r}/state/lists",
            "-o",
            f"Dir::Cache={r}/cache",
            "-o",
            "Dir::Cache::pkgcache=",  # no binary caches to go stale
            "-o",
            "Dir::Cache::srcpkgcache=",
            "-o",
            "APT::Get::List-Cleanup=0",
            "-o",
            "Acquire::Languages=none",
            "-o",
            "Debug::NoLocking=1",  # our own dirs; don't contend with the system's apt lock
        ] + (["-o", f"APT::Architecture={self.arch}", "-o", f"APT::Architectures::={self.arch}"] if self.arch else [])

    def update(self) -> None:
        proc.run(["apt-get", *self.opts(), "-q", "update"], timeout=APT_TIMEOUT, check=True)

    def candidate(self, package: str) -> str | None:
        out = proc.run(["apt-cache", *self.opts(), "policy", package], timeout=120)
        m = re.search(r"^\s*Candidate:\s*(\S+)", out.stdout, re.M)
        return m.group(1) if m and m.group(1) != "(none)" else None

    def available(self, prefix: str) -> list[str]:
        out = proc.run(["apt-cache", *self.opts(), "search", "--names-only", f"^{re.escape(prefix)}"], timeout=120)
        return sorted(line.split(" ", 1)[0] for line in out.stdout.splitlines() if line.strip())

    def download(self, package: str, version: str, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        proc.run(["apt-get", *self.opts(), "-q", "download", f"{package}={version}"], timeout=APT_TIMEOUT, cwd=dest,
                 check=True)
        debs = sorted(dest.glob(f"{package}_*.deb"))
        match = [d for d in debs if deb_version(d) == version]
        if not match:
            raise OperationalError(f"apt-get download {package}={version} left no .deb in {dest}")
        return match[0]


def deb_version(deb: Path) -> str:
    """The version from a pool file name: linux-source-7.2_7.2.1-1_all.deb -> 7.2.1-1 (epoch ':' is %3a)."""
    return deb.name.split("_")[1].replace("%3a", ":")


