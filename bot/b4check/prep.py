"""placeholder"""

from __future__ import annotations

from pathlib import Path

from bot.config import Config


def check(config: Config, raw: bytes, cwd: Path) -> tuple[list[str], int]:
    raise NotImplementedError
