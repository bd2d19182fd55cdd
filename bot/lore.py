"""Access to the public-inbox archive through b4 (and liblore, the HTTP layer b4 uses).

This is the one module that talks to b4. b4 reads its settings from git config; we hand it ours
through per-process git config (GIT_CONFIG_COUNT...) with the user's global and system config
switched off, and keep its cache under the bot's cache dir.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import TypeVar

import b4
import liblore

from bot.config import Config
from bot.errors import BadInput, OperationalError, UsageError

log = logging.getLogger(__name__)
T = TypeVar("T")


def b4_git_config(config: Config) -> dict[str, str]:
    """b4's settings, pointed at [lore] url/list."""
    inbox = config.lore.inbox_url
    return {
        "b4.midmask": f"{inbox}/%s",
        "b4.linkmask": f"{inbox}/%s",
        "b4.searchmask": f"{inbox}/?x=m&t=1&q=%s",
        "b4.cache-expire": "10",
        # No DKIM/patatt lookups: they would reach DNS and keyservers, which the bot does not need.
        "b4.attestation-policy": "off",
    }


def b4_environment(config: Config) -> dict[str, str]:
    """Environment variables that give b4 our config and nothing of the user's."""
    env = {
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "XDG_CACHE_HOME": str(config.paths.cache),
        "XDG_DATA_HOME": str(config.paths.cache / "data"),
        "XDG_CONFIG_HOME": str(config.paths.cache / "config"),
    }
    items = list(b4_git_config(config).items())
    env["GIT_CONFIG_COUNT"] = str(len(items))
    for i, (key, value) in enumerate(items):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


class Archive:
    """One public-inbox inbox, read through b4/liblore with timeouts and retries."""

    def __init__(self, config: Config, nocache: bool = False) -> None:
        self.config = config
        self.nocache = nocache
        self.url = config.lore.inbox_url
        timeout = config.lore.timeout
        self.node = liblore.LoreNode.from_git_config(
            self.url,
            cache_dir=str(config.paths.cache / "b4" / "lore"),
            cache_ttl=600,
            request_timeout=(timeout, timeout),
        )
        self.node.set_user_agent("mm-review-bot", "0.1")

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        """Retry 5xx answers and timeouts; a 404 is final and is the caller's to interpret."""
        delay = 1.0
        last = ""
        for attempt in range(self.config.lore.retries + 1):
            try:
                return call()
            except liblore.RemoteError as e:
                status = e.status_code
                if status is not None and status < 500:
                    raise
                last = f"HTTP {status}" if status else "no answer (timeout or connection refused)"
                log.warning("%s: %s (attempt %d)", what, last, attempt + 1)
                if attempt < self.config.lore.retries:
                    time.sleep(delay)
                    delay *= 2
        raise OperationalError(f"{self.url}: {what} failed after {self.config.lore.retries + 1} attempts: {last}")

    def thread_mbox(self, msgid: str) -> bytes:
        """The raw thread mbox ({inbox}/{msgid}/t.mbox.gz, uncompressed); BadInput if unknown."""
        try:
            return self._retry(f"thread {msgid}", lambda: self.node.get_mbox_by_msgid(msgid, nocache=self.nocache))
        except liblore.RemoteError as e:
            if e.status_code == 404:
                raise BadInput(f"no message <{msgid}> on {self.url}") from e
            raise OperationalError(f"{self.url}: thread {msgid}: HTTP {e.status_code}") from e

    def has_message(self, msgid: str) -> bool:
        """Whether the archive holds msgid now (uncached: used to confirm a reply we may have sent)."""
        try:
            raw = self._retry(f"message {msgid}", lambda: self.node.get_message_by_msgid(msgid, nocache=True))
        except liblore.RemoteError as e:
            if e.status_code == 404:
                return False
            raise OperationalError(f"{self.url}: message {msgid}: HTTP {e.status_code}") from e
        return bool(raw)

    def search(self, query: str) -> bytes:
        """Raw mbox of the full threads matching a public-inbox search query (empty if none)."""
        try:
            return self._retry(
                f"search {query!r}",
                lambda: self.node.get_mbox_by_query(query, full_threads=True, nocache=self.nocache),
            )
        except liblore.RemoteError as e:
            if e.status_code == 404:  # public-inbox's answer for "no results"
                return b""
            raise OperationalError(f"{self.url}: search {query!r}: HTTP {e.status_code}") from e


def split_mbox(raw: bytes) -> list[EmailMessage]:
    """Messages of a (mboxrd) mbox, deduplicated the way b4 does it."""
    return b4.split_and_dedupe_pi_results(raw) if raw else []


def parse_msgid(text: str) -> str:
    """A bare Message-ID from `<id>`, `id`, `id:...` or a lore URL (…/<list>/<id>/...)."""
    text = text.strip()
    if text.startswith(("http://", "https://")):
        parts = [urllib.parse.unquote(p) for p in urllib.parse.urlparse(text).path.split("/")]
        ids = [p for p in parts if "@" in p]
        if not ids:
            raise UsageError(f"no Message-ID in URL {text}")
        text = ids[-1]
    text = text.strip().removeprefix("id:").strip("<>").strip()
    if not text or any(c.isspace() for c in text) or "@" not in text:
        raise UsageError(f"not a Message-ID: {text!r}")
    return text


@contextmanager
def b4_session(config: Config) -> Iterator[None]:
    """Run b4 code with our git config and cache; b4 keeps config in globals, so reset them."""
    saved = {k: os.environ.get(k) for k in b4_environment(config)}
    os.environ.update(b4_environment(config))
    Path(config.paths.cache).mkdir(parents=True, exist_ok=True)
    b4.MAIN_CONFIG = {}
    b4.USER_CONFIG = {}
    b4.LORENODE = None
    logging.getLogger("b4").setLevel(logging.WARNING)
    try:
        b4.setup_config(argparse.Namespace(config=None))
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        b4.MAIN_CONFIG = {}
        b4.USER_CONFIG = {}
        b4.LORENODE = None
