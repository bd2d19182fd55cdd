"""One retry loop for everything the bot retries (archive requests, the poll, SMTP): exponential backoff; and
one deadline for a whole network transaction (within()).

The caller says which failures are worth another attempt by raising `Retry` (with a one-line reason);
anything else propagates at once. After the last attempt `GaveUp` carries the last reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Retry(Exception):
    """Raised by an attempt that may succeed if tried again (a 5xx, a timeout, a 4xx SMTP answer)."""


class GaveUp(Exception):
    def __init__(self, what: str, attempts: int, last: str) -> None:
        super().__init__(f"{what} failed after {attempts} attempt{'s' if attempts != 1 else ''}: {last}")
        self.attempts = attempts
        self.last = last


def call(what: str, attempt: Callable[[], T], *, retries: int, backoff: float,
         sleep: Callable[[float], None] = time.sleep) -> T:
    """attempt() up to 1 + retries times, sleeping backoff, 2*backoff, ... between tries."""
    delay = backoff
    last = ""
    for n in range(retries + 1):
        try:
            return attempt()
        except Retry as e:
            last = str(e)
            log.warning("%s: %s (attempt %d of %d)", what, last, n + 1, retries + 1)
        if n < retries:
            sleep(delay)
            delay *= 2
    raise GaveUp(what, retries + 1, last)


def within(seconds: float, what: str, attempt: Callable[[], T], cancel: Callable[[], None]) -> T:
    """attempt() with one deadline for all of it: socket timeouts bound each read, not a peer that drips a
    byte every few seconds. At the deadline cancel() closes the attempt's connection (its thread then fails
    and ends) and Retry says so."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = attempt()
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    worker = threading.Thread(target=run, name=f"deadline: {what}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        cancel()
        worker.join(5.0)
        raise Retry(f"no answer within {seconds:.0f} s (the peer is too slow or hangs)")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]
