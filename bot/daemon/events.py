"""The daemon's event lines: one short line per event on stderr, the same in the run's log file."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("bot.daemon")


def event(text: str) -> None:
    log.info("%s", text)
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)
