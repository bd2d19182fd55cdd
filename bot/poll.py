"""Ask the public-inbox archive which patch messages arrived since the last poll.

One search, `s:PATCH AND d:<since>..`, answered as Atom (x=A, GET, newest first, 200 per page, `o=`
to page). public-inbox answers 404 when nothing matches. 5xx answers, timeouts and feeds that do not
parse are retried with backoff; after that the round has no poll (PollError), which is not a crash.
Only cover letters and first patches are kept: not replies, not patches 2..N.
"""

from __future__ import annotations

import datetime
import logging
import re
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bot.config import Config

log = logging.getLogger(__name__)
ATOM = "{http://www.w3.org/2005/Atom}"
PAGE = 200  # public-inbox's search page size
# [RFC PATCH v2 03/12], [PATCH mm-new v3 0/5], [PATCH] ...: the counter, if any, is the last N/M.
PATCH_RE = re.compile(r"^\s*\[[^\]]*\bPATCH\b[^\]]*\]", re.I)
COUNTER_RE = re.compile(r"\b(\d+)/(\d+)\s*\]")
REPLY_RE = re.compile(r"^\s*(?:re|aw|fwd?)\s*:", re.I)


class PollError(Exception):
    """This round could not ask the archive (unreachable, 5xx, timeouts, a malformed feed)."""


@dataclass(frozen=True)
class Entry:
    message_id: str
    subject: str
    author: str
    date: datetime.datetime


def is_series_root(subject: str) -> bool:
    """A cover letter (0/N) or a first patch (1/N, or a lone [PATCH]); not a reply, not patch 2..N."""
    if REPLY_RE.match(subject) or not PATCH_RE.match(subject):
        return False
    m = COUNTER_RE.search(PATCH_RE.match(subject).group(0))  # type: ignore[union-attr]
    return m is None or int(m.group(1)) in (0, 1)


def _msgid_from_link(href: str) -> str:
    parts = [urllib.parse.unquote(p) for p in urllib.parse.urlparse(href).path.split("/") if p]
    ids = [p for p in parts if "@" in p]
    if not ids:
        raise ValueError(f"no Message-ID in entry link {href!r}")
    return ids[-1]


def parse_feed(data: bytes) -> list[Entry]:
    """Entries of a public-inbox Atom feed; ValueError when it is not one."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise ValueError(f"malformed Atom feed: {e}") from e
    if root.tag != f"{ATOM}feed":
        raise ValueError(f"not an Atom feed (root element {root.tag!r})")
    entries = []
    for item in root.findall(f"{ATOM}entry"):
        link = item.find(f"{ATOM}link")
        title = item.findtext(f"{ATOM}title")
        updated = item.findtext(f"{ATOM}updated")
        if link is None or title is None or updated is None:
            raise ValueError("malformed Atom feed: an entry lacks link, title or updated")
        name = item.findtext(f"{ATOM}author/{ATOM}name") or ""
        addr = item.findtext(f"{ATOM}author/{ATOM}email") or ""
        date = datetime.datetime.fromisoformat(updated.replace("Z", "+00:00"))
        entries.append(Entry(_msgid_from_link(link.get("href", "")), " ".join(title.split()),
                             f"{name} <{addr}>", date))
    return entries


class Poller:
    def __init__(self, config: Config, sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self.sleep = sleep
        self.transport = transport  # tests hand in an httpx.MockTransport
        self.url = config.lore.inbox_url + "/"

    def _page(self, client: httpx.Client, query: str, offset: int) -> list[Entry]:
        params = {"q": query, "x": "A", "l": str(PAGE)} | ({"o": str(offset)} if offset else {})
        delay = self.config.daemon.backoff
        last = ""
        for attempt in range(self.config.lore.retries + 1):
            try:
                r = client.get(self.url, params=params)
                if r.status_code == 404:  # public-inbox: no results
                    return []
                if r.status_code >= 500:
                    last = f"HTTP {r.status_code}"
                else:
                    r.raise_for_status()
                    return parse_feed(r.content)
            except httpx.TimeoutException as e:
                last = f"timeout ({type(e).__name__})"
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
            except httpx.HTTPStatusError as e:  # 4xx other than 404: retrying will not help
                raise PollError(f"{self.url} search {query!r}: HTTP {e.response.status_code}") from e
            except ValueError as e:
                last = str(e)
            log.warning("poll %s (o=%d) attempt %d: %s", query, offset, attempt + 1, last)
            if attempt < self.config.lore.retries:
                self.sleep(delay)
                delay *= 2
        raise PollError(f"{self.url} search {query!r} failed after {self.config.lore.retries + 1} attempts: {last}")

    def since(self, since: datetime.date) -> tuple[str, list[Entry]]:
        """Every patch message dated since `since` (all pages up to [daemon] max_pages); (query, entries)."""
        query = f"s:PATCH AND d:{since:%Y%m%d}.."
        timeout = self.config.lore.timeout
        entries: list[Entry] = []
        with httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True, transport=self.transport,
                          headers={"User-Agent": "mm-review-bot/0.1"}) as client:
            for page in range(self.config.daemon.max_pages):
                got = self._page(client, query, page * PAGE)
                entries += got
                if len(got) < PAGE:
                    break
            else:
                log.warning("poll %s: stopped after %d pages; older messages wait for the next round",
                            query, self.config.daemon.max_pages)
        return query, entries


def roots(entries: list[Entry]) -> list[Entry]:
    """Series roots among the entries, one per Message-ID (an archive may hold a message twice), oldest first."""
    seen: dict[str, Entry] = {}
    for e in entries:
        if is_series_root(e.subject):
            seen.setdefault(e.message_id, e)
    return sorted(seen.values(), key=lambda e: e.date)
