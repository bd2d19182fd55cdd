"""The daemon's poll: which patch messages arrived on the list since a date.

One search, `s:PATCH AND d:<since>..`, answered as Atom (x=A, GET, newest first, 200 per page, `o=`
to page), through fetch.archive (deadline, retries: a feed that does not parse is retried like a 5xx).
public-inbox answers 404 when nothing matches. After the last retry the round has no poll (PollError),
which is not a crash.
Only cover letters and first patches are kept: not replies, not patches 2..N.
"""

from __future__ import annotations

import datetime
import logging
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bot.config import Config
from bot.errors import OperationalError
from bot.fetch.archive import Archive, NotFound
from bot.patches import is_series_root

log = logging.getLogger(__name__)
ATOM = "{http://www.w3.org/2005/Atom}"
PAGE = 200  # public-inbox's search page size


class PollError(Exception):
    """This round could not ask the archive (unreachable, 5xx, timeouts, a malformed feed)."""


@dataclass(frozen=True)
class Entry:
    message_id: str
    subject: str
    author: str
    date: datetime.datetime


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
        try:
            entries.append(_entry(item))
        except ValueError as e:  # one odd message (a garbage date, no link) must not hide the rest
            log.warning("poll: entry skipped: %s", e)
    return entries


def _entry(item: ET.Element) -> Entry:
    link = item.find(f"{ATOM}link")
    title = item.findtext(f"{ATOM}title")
    updated = item.findtext(f"{ATOM}updated")
    if link is None or title is None or updated is None:
        raise ValueError("an entry lacks link, title or updated")
    name = item.findtext(f"{ATOM}author/{ATOM}name") or ""
    addr = item.findtext(f"{ATOM}author/{ATOM}email") or ""
    date = datetime.datetime.fromisoformat(updated.replace("Z", "+00:00"))
    if date.tzinfo is None:
        date = date.replace(tzinfo=datetime.UTC)
    return Entry(_msgid_from_link(link.get("href", "")), " ".join(title.split())[:500],
                 " ".join(f"{name} <{addr}>".split())[:300], date)


class Poller:
    def __init__(self, config: Config, sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self.sleep = sleep
        self.transport = transport  # tests hand in an httpx.MockTransport

    def _page(self, archive: Archive, query: str, offset: int) -> list[Entry]:
        params = {"q": query, "x": "A", "l": str(PAGE)} | ({"o": str(offset)} if offset else {})
        try:
            entries: list[Entry] = archive.get(f"search {query!r} (o={offset})",
                                                    "?" + urllib.parse.urlencode(params), parse=parse_feed)
            return entries
        except NotFound:  # public-inbox: no results
            return []
        except OperationalError as e:
            raise PollError(str(e)) from e

    def since(self, since: datetime.date) -> tuple[str, list[Entry]]:
        """Every patch message dated since `since` (all pages up to [daemon] max_pages); (query, entries)."""
        query = f"s:PATCH AND d:{since:%Y%m%d}.."
        entries: list[Entry] = []
        with Archive(self.config, transport=self.transport, sleep=self.sleep) as archive:
            for page in range(self.config.daemon.max_pages):
                got = self._page(archive, query, page * PAGE)
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
