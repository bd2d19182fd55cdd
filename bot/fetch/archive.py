"""The public-inbox archive (lore, or the local one of the tests and the demo), over HTTP with httpx.

Three requests, as public-inbox serves them: a thread ({inbox}/{msgid}/t.mbox.gz), one raw message
({inbox}/{msgid}/raw) and a search answered as an mbox of whole threads (POST {inbox}/?x=m&t=1&q=...).
Every request has one deadline for all of it ([lore] timeout: connect, headers and body — a server that
drips a byte at a time is cut there) and is retried after a 5xx, a timeout or a broken body ([lore]
retries, backoff). A 404 is final: an unknown message is bad input, a search without hits is empty.

b4 parses and assembles what comes back; it reads its settings from git config, so b4_session() hands it
ours through per-process git config, with the user's global and system config switched off.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import b4
import httpx

from bot import retry
from bot.config import Config
from bot.errors import BadInput, OperationalError, UsageError
from bot.patches import split_mbox

__all__ = ["Archive", "NotFound", "b4_session", "parse_msgid", "split_mbox"]

log = logging.getLogger(__name__)
USER_AGENT = "mm-review-bot/0.1"
MAX_BODY = 512 << 20  # bytes: a thread or search answer larger than this is refused


class NotFound(Exception):
    """The archive answered 404."""


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
        "XDG_CACHE_HOME": str(config.cache),
        "XDG_DATA_HOME": str(config.cache / "data"),
        "XDG_CONFIG_HOME": str(config.cache / "config"),
    }
    items = list(b4_git_config(config).items())
    env["GIT_CONFIG_COUNT"] = str(len(items))
    for i, (key, value) in enumerate(items):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


class Archive:
    """One public-inbox inbox, with a deadline per request and retries."""

    def __init__(self, config: Config, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.sleep = sleep  # between retries (tests pass a recorder)
        self.url = config.lore.inbox_url
        self.transport = transport  # tests hand in an httpx.MockTransport

    def close(self) -> None:
        """Nothing stays open between requests (each has its own connection, closed at its deadline)."""

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _once(self, method: str, url: str, gzipped: bool, data: dict[str, str] | None,
              parse: Callable[[bytes], Any] | None) -> Any:
        """One request within its deadline ([lore] timeout for connect, headers and body together)."""
        client = httpx.Client(headers={"User-Agent": USER_AGENT}, follow_redirects=True, transport=self.transport,
                              timeout=httpx.Timeout(self.config.lore.timeout))
        try:
            return retry.within(self.config.lore.timeout, url,
                                lambda: self._request(client, method, url, gzipped, data, parse), client.close)
        finally:
            client.close()

    def _request(self, client: httpx.Client, method: str, url: str, gzipped: bool, data: dict[str, str] | None,
                 parse: Callable[[bytes], Any] | None) -> Any:
        """The body (or what parse makes of it), NotFound on 404, retry.Retry when another try may do better
        (5xx, timeout, broken gzip, a body parse rejects)."""
        timeout = self.config.lore.timeout
        chunks: list[bytes] = []
        size = 0
        try:
            with client.stream(method, url, data=data) as r:
                if r.status_code == 404:
                    raise NotFound(url)
                if r.status_code >= 500:
                    raise retry.Retry(f"HTTP {r.status_code}")
                if r.status_code != 200:
                    raise OperationalError(f"{self.url}: {url}: HTTP {r.status_code}")
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > MAX_BODY:
                        raise OperationalError(f"{url}: answer larger than {MAX_BODY >> 20} MiB; refused")
                    chunks.append(chunk)
        except httpx.TimeoutException as e:
            raise retry.Retry(f"timeout: no answer within {timeout:.0f} s ({type(e).__name__})") from e
        except httpx.TransportError as e:
            raise retry.Retry(f"no answer ({type(e).__name__}: {e})") from e
        body = b"".join(chunks)
        if gzipped:
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; a cut stream an EOFError
                raise retry.Retry(f"broken gzip answer ({type(e).__name__}: {e})") from e
        if parse is None:
            return body
        try:
            return parse(body)
        except ValueError as e:
            raise retry.Retry(str(e)) from e

    def get(self, what: str, path: str, gzipped: bool = False, data: dict[str, str] | None = None,
            parse: Callable[[bytes], Any] | None = None) -> Any:
        """{inbox}/{path} with retries; OperationalError after the last, NotFound on 404."""
        url = f"{self.url}/{path}"
        method = "POST" if data is not None else "GET"
        try:
            return retry.call(f"{self.url}: {what}", lambda: self._once(method, url, gzipped, data, parse),
                              retries=self.config.lore.retries, backoff=self.config.lore.backoff, sleep=self.sleep)
        except retry.GaveUp as e:
            raise OperationalError(str(e)) from e

    def thread_mbox(self, msgid: str) -> bytes:
        """The raw thread mbox of msgid (uncompressed); BadInput if the archive does not have it."""
        try:
            return self.get(f"thread {msgid}", f"{urllib.parse.quote_plus(msgid)}/t.mbox.gz", gzipped=True)
        except NotFound as e:
            raise BadInput(f"no message <{msgid}> on {self.url}") from e

    def has_message(self, msgid: str) -> bool:
        """Whether the archive holds msgid now (used to confirm a reply we may have sent)."""
        try:
            return bool(self.get(f"message {msgid}", f"{urllib.parse.quote_plus(msgid)}/raw"))
        except NotFound:
            return False

    def search(self, query: str) -> bytes:
        """Raw mbox of the full threads matching a public-inbox search query (empty if none)."""
        try:
            return self.get(f"search {query!r}", f"?x=m&t=1&q={urllib.parse.quote_plus(query)}", gzipped=True,
                             data={"x": "m"})
        except NotFound:  # public-inbox's answer for "no results"
            return b""


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
    Path(config.cache).mkdir(parents=True, exist_ok=True)
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
