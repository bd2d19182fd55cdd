"""The fixtures live in tests/conftest.py (shared with tests/kernel); these names are imported from here too."""

from tests.conftest import BARRY_V4, BOT, run_bot, write_config

__all__ = ["BARRY_V4", "BOT", "run_bot", "write_config"]
