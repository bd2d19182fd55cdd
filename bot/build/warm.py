"""Whether a build on a base would be incremental: what `bot b4-check --prep` asks before building, so that
`b4 prep --check` stays interactive (a cold base build takes minutes)."""

from __future__ import annotations

from pathlib import Path

from bot.build.base import base_image, warnings_path
from bot.build.builder import CONFIGURED, Builder
from bot.config import Config
from bot.errors import OperationalError


def warm(config: Config, arch: str, base: str) -> bool:
    """The base's warnings and image are cached and its build dir is configured for this arch and config."""
    try:
        b = Builder(config, arch, Path(config.paths.kernel_tree))
    except OperationalError:  # no compiler for this arch: nothing to build with either
        return False
    return (b.trusted_dir / CONFIGURED).exists() and warnings_path(b, base).exists() and base_image(b, base).exists()
