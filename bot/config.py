"""config.toml read with tomllib into one typed dataclass per section.

Every key has a default; an unknown section or key is an error that names it.
Relative paths are taken relative to the directory of the config file.
"""

from __future__ import annotations

import os
import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bot.errors import UsageError

STAGES = ("fetch", "apply", "build", "boot", "walkdiff", "report")
ARCHES = ("x86_64", "arm64")


@dataclass(frozen=True)
class LoreConfig:
    url: str = "https://lore.kernel.org"
    list: str = "linux-mm"
    timeout: float = 30.0  # seconds per HTTP request (connect and read)
    retries: int = 2  # extra attempts after a 5xx or a timeout

    @property
    def inbox_url(self) -> str:
        return f"{self.url.rstrip('/')}/{self.list}"


@dataclass(frozen=True)
class PathsConfig:
    patchsets: Path = Path("patchsets")
    kernel_tree: Path = Path("kernel-tree")
    cache: Path = Path(".cache")  # b4's cache and other caches the bot names


@dataclass(frozen=True)
class TreeConfig:
    source: str = "debian"  # or "git"
    remote: str = "https://git.kernel.org/pub/scm/linux/kernel/git/akpm/mm.git"
    branches: list[str] = field(default_factory=lambda: ["mm-new", "mm-unstable", "master"])
    debian_package: str = "linux-source-7.2"
    debian_mirror: str = "http://deb.debian.org/debian"
    debian_suite: str = "unstable"


@dataclass(frozen=True)
class WalkdiffConfig:
    functions: list[str] = field(
        default_factory=lambda: [
            "try_to_unmap_one",
            "try_to_migrate_one",
            "folio_referenced_one",
            "page_mkclean_one",
            "page_vma_mapped_walk",
            "remove_migration_pte",
            "page_idle_clear_pte_refs_one",
            "folio_lock_anon_vma_read",
        ]
    )
    labels: list[str] = field(default_factory=lambda: ["walk_done", "walk_abort", "discard", "out"])


@dataclass(frozen=True)
class Config:
    lore: LoreConfig = field(default_factory=LoreConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    tree: TreeConfig = field(default_factory=TreeConfig)
    walkdiff: WalkdiffConfig = field(default_factory=WalkdiffConfig)
    source: Path | None = None  # the file it was read from, if any


def _check_value(section: str, key: str, value: Any, hint: Any) -> Any:
    """Return value converted to the field's type, or raise UsageError naming the key."""
    where = f"[{section}] {key}"
    origin = typing.get_origin(hint)
    if hint is Path:
        if not isinstance(value, str):
            raise UsageError(f"config: {where} must be a string path, not {value!r}")
        return Path(value)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list) or not all(isinstance(v, item) for v in value):
            raise UsageError(f"config: {where} must be a list of {item.__name__}, not {value!r}")
        return list(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(hint, type) and (not isinstance(value, hint) or (hint is int and isinstance(value, bool))):
        raise UsageError(f"config: {where} must be {hint.__name__}, not {value!r}")
    return value


def _section(cls: type, name: str, data: Any) -> Any:
    if not isinstance(data, dict):
        raise UsageError(f"config: [{name}] must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            raise UsageError(f"config: unknown key '{key}' in [{name}] (known: {', '.join(sorted(known))})")
    return cls(**{k: _check_value(name, k, v, hints[k]) for k, v in data.items()})


def _resolve(paths: PathsConfig, base: Path) -> PathsConfig:
    return PathsConfig(**{f.name: (base / getattr(paths, f.name)).resolve() for f in fields(paths)})


def load(path: Path | None = None) -> Config:
    """Read the config: --config, then $BOT_CONFIG, then ./config.toml, else all defaults."""
    explicit = path is not None or "BOT_CONFIG" in os.environ
    if path is None:
        path = Path(os.environ.get("BOT_CONFIG", "config.toml"))
    if not path.exists():
        if explicit:
            raise UsageError(f"config: {path} does not exist")
        return Config(paths=_resolve(PathsConfig(), Path.cwd()))
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"config: {path}: {e}") from e
    hints = typing.get_type_hints(Config)
    sections = {f.name for f in fields(Config) if f.name != "source"}
    for name in data:
        if name not in sections:
            raise UsageError(f"config: unknown section [{name}] in {path} (known: {', '.join(sorted(sections))})")
    parts = {name: _section(hints[name], name, data.get(name, {})) for name in sections}
    parts["paths"] = _resolve(parts["paths"], path.resolve().parent)
    return Config(**parts, source=path.resolve())

