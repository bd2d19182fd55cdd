"""Finding every revision of a series on the archive, without writing anything.

Revisions are found in three ways, each recorded in `found_by`:
- threading: postings in the same thread as the message asked for (v2 sent in reply to v1);
- search: b4's own queries (change-id, else subject + author), sent to the archive's search;
- changelog links: lore links that authors put in cover letters and changelogs
  (`v2 -> v3: ... https://lore.kernel.org/<list>/<msgid>/`, `Link:` lines), followed until no new
  posting turns up, since revisions are often unthreaded and subjects are renamed between them.

A posting is one revision as sent: a cover letter with its patches, or a patch 1/N with the rest.
"""

from __future__ import annotations

import datetime
import logging
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage

import b4

from bot.config import Config
from bot.errors import BadInput
from bot.fetch.archive import Archive
from bot.patches import split_mbox
from bot.results import RevisionRef, SeriesSummary

log = logging.getLogger(__name__)

# Lower is stronger evidence that a posting belongs to the series asked for.
PRIORITY = {"requested": 0, "threading": 1, "changelog-link": 2, "search": 3}
MAX_LINK_FETCHES = 30
MAX_VERSION = 999  # a subject claiming more is not a revision (it would overflow SQLite and paths)
MAX_PATCHES = 999  # patches per posting ("[PATCH 1/100000]" is not a series we wait for)
MAX_ROUNDS = 6
LINK_HOSTS = ("lore.kernel.org", "lkml.kernel.org", "patch.msgid.link", "msgid.link")
URL_RE = re.compile(r"https?://[^\s<>\"')\]]+")


@dataclass
class Posting:
    version: int
    root: str  # Message-ID of the cover letter, or of patch 1 when there is none
    expected: int
    author_email: str
    cover: b4.LoreMessage | None = None
    patches: dict[int, b4.LoreMessage] = field(default_factory=dict)
    found_by: str = ""

    @property
    def how(self) -> str:
        return self.found_by.split(":")[0].split(" ")[0]

    @property
    def first(self) -> b4.LoreMessage:
        return self.cover or self.patches[min(self.patches)]

    def msgids(self) -> list[str]:
        return ([self.cover.msgid] if self.cover else []) + [p.msgid for _, p in sorted(self.patches.items())]

    def missing(self) -> list[int]:
        return [i for i in range(1, self.expected + 1) if i not in self.patches]


@dataclass
class Found:
    """What discovery found: the posting asked for, the one chosen per version, and every message seen."""

    requested: Posting
    chosen: list[Posting]
    ignored: list[str]
    lmsgs: dict[str, b4.LoreMessage]

    def summary(self, slug: str, msgid: str) -> SeriesSummary:
        first = self.requested.first
        return SeriesSummary(slug, first.full_subject, f"{first.fromname} <{first.fromemail}>", msgid,
                             [RevisionRef(p.version, p.root, p.found_by) for p in self.chosen], self.ignored)


def linked_msgids(lmsg: b4.LoreMessage, config: Config) -> set[str]:
    """Message-IDs of lore links in a cover letter or patch (above and below the '---')."""
    hosts = set(LINK_HOSTS) | {urllib.parse.urlparse(config.lore.url).netloc}
    found = set()
    text = lmsg.body.split("\ndiff --git ", 1)[0]
    for url in URL_RE.findall(text):
        parsed = urllib.parse.urlparse(url)
        if parsed.netloc not in hosts:
            continue
        for part in parsed.path.split("/"):
            if "@" in part:
                found.add(urllib.parse.unquote(part).strip("<>"))
    return found


def group_postings(msgs: Iterable[EmailMessage]) -> tuple[list[Posting], dict[str, b4.LoreMessage]]:
    """Group patch messages into postings; return them and every message by Message-ID."""
    lmsgs: dict[str, b4.LoreMessage] = {}
    for msg in msgs:
        msgid = b4.LoreMessage.get_clean_msgid(msg)
        if msgid and msgid not in lmsgs:
            lmsgs[msgid] = b4.LoreMessage(msg)
    roots: dict[str, Posting] = {}
    # By subject, not b4's `reply`: b4 takes a threaded cover letter with a "base-commit:" line for a
    # follow-up carrying a trailer.
    patches = [m for m in lmsgs.values() if not m.lsubject.reply and m.lsubject.patch
               and 0 < m.revision <= MAX_VERSION and m.expected <= MAX_PATCHES]
    for m in patches:
        if m.counter == 0 and not m.counters_inferred:
            roots[m.msgid] = Posting(m.revision, m.msgid, m.expected, m.fromemail, cover=m)
    for m in patches:
        if m.counter >= 1 and m.has_diff:
            root = _nearest_root(m, roots)
            if root is None and m.counter == 1:
                roots[m.msgid] = Posting(m.revision, m.msgid, m.expected, m.fromemail)
    for m in sorted(patches, key=lambda m: m.counter):
        if m.counter >= 1 and m.has_diff:
            root = _nearest_root(m, roots) or roots.get(m.msgid)
            if root is None:  # an unthreaded patch k/N, k > 1: a posting of its own, incomplete
                root = roots[m.msgid] = Posting(m.revision, m.msgid, m.expected, m.fromemail)
            root.patches.setdefault(m.counter, m)
    return list(roots.values()), lmsgs


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _nearest_root(m: b4.LoreMessage, roots: dict[str, Posting]) -> Posting | None:
    """The posting of the same revision that m is threaded under, the nearest ancestor first."""
    chain = list(m.references) + ([m.in_reply_to] if m.in_reply_to else [])
    for ref in reversed(chain):
        p = roots.get(ref)
        if p is not None and p.version == m.revision and p.expected == m.expected and p.root != m.msgid:
            return p
    return None


def posting_of(msgid: str, postings: list[Posting], lmsgs: dict[str, b4.LoreMessage]) -> Posting | None:
    """The posting a message belongs to: its own, or the one it replies to (nearest first)."""
    for p in postings:
        if msgid in p.msgids():
            return p
    lmsg = lmsgs.get(msgid)
    if lmsg is None:
        return None
    by_msgid = {mid: p for p in postings for mid in p.msgids()}
    for ref in reversed(list(lmsg.references) + ([lmsg.in_reply_to] if lmsg.in_reply_to else [])):
        if ref in by_msgid:
            return by_msgid[ref]
    return None


class Discovery:
    """Collects messages from the archive until every revision of a series is found."""

    def __init__(self, archive: Archive, config: Config) -> None:
        self.archive = archive
        self.config = config
        self.msgs: dict[str, EmailMessage] = {}
        self.origin: dict[str, str] = {}  # Message-ID -> how its thread was found
        self.queries_done: set[str] = set()
        self.links_done: set[str] = set()

    def add(self, raw: bytes, how: str) -> int:
        new = 0
        for msg in split_mbox(raw):
            msgid = b4.LoreMessage.get_clean_msgid(msg)
            if msgid and msgid not in self.msgs:
                self.msgs[msgid] = msg
                self.origin[msgid] = how
                new += 1
        return new

    def run(self, msgid: str) -> tuple[Posting, list[Posting]]:
        self.add(self.archive.thread_mbox(msgid), "threading")
        if msgid not in self.msgs:
            raise BadInput(f"the archive's thread for <{msgid}> does not contain that message")
        for _ in range(MAX_ROUNDS):
            postings, lmsgs = group_postings(self.msgs.values())
            requested = posting_of(msgid, postings, lmsgs)
            if requested is None:
                raise BadInput(self._not_a_series(msgid, lmsgs))
            new = self._search(requested, postings) + self._follow_links(postings)
            if not new:
                break
        postings, lmsgs = group_postings(self.msgs.values())
        requested = posting_of(msgid, postings, lmsgs)
        assert requested is not None
        for p in postings:
            p.found_by = self.origin[p.root]
        requested.found_by = "requested"
        return requested, postings

    def _not_a_series(self, msgid: str, lmsgs: dict[str, b4.LoreMessage]) -> str:
        subject = _clip(" ".join(str(self.msgs[msgid].get("Subject", "")).split()), 100)
        lmsg = lmsgs.get(msgid)
        if lmsg is not None and lmsg.lsubject.patch and not 0 < lmsg.revision <= MAX_VERSION:
            return (f"<{msgid}> ({subject!r}): version v{_clip(str(lmsg.revision), 12)} is out of range "
                    f"(v1 to v{MAX_VERSION})")
        if lmsg is not None and lmsg.lsubject.patch and lmsg.expected > MAX_PATCHES:
            return (f"<{msgid}> ({subject!r}): {_clip(str(lmsg.expected), 12)} patches is more than a series "
                    f"has (max {MAX_PATCHES})")
        return f"<{msgid}> ({subject!r}) is not part of a patch series: no patch in its thread"

    def _search(self, requested: Posting, postings: list[Posting]) -> int:
        """b4's revision queries (as in b4.mbox.get_extra_series), with errors surfaced."""
        new = 0
        for p in postings:
            if p is not requested and p.how != "changelog-link":
                continue
            first = p.first
            cid = re.search(r"^change-id:\s+(\S+)", first.body, flags=re.I | re.M)
            if cid:
                query, how = f'nq:"change-id: {cid.group(1)}"', "search:change-id"
            else:
                subject = first.lsubject.subject.replace('"', "")
                query, how = f'(s:"{subject}" AND f:"{first.fromemail}")', "search:subject+author"
            since = (first.date - datetime.timedelta(days=365)).strftime("%Y%m%d")
            query = f"({query}) AND d:{since}.."
            if query in self.queries_done:
                continue
            self.queries_done.add(query)
            new += self.add(self.archive.search(query), how)
        return new

    def _follow_links(self, postings: list[Posting]) -> int:
        new = 0
        for p in sorted(postings, key=lambda p: -p.version):
            for lmsg in [p.cover] + list(p.patches.values()):
                if lmsg is None:
                    continue
                for target in sorted(linked_msgids(lmsg, self.config) - self.links_done):
                    self.links_done.add(target)
                    if target in self.msgs or len(self.links_done) > MAX_LINK_FETCHES:
                        continue
                    try:
                        raw = self.archive.thread_mbox(target)
                    except BadInput:
                        log.info("changelog link to <%s> in v%d: not on the archive", target, p.version)
                        continue
                    new += self.add(raw, f"changelog-link from v{p.version}")
        return new


def choose_revisions(requested: Posting, postings: list[Posting]) -> tuple[list[Posting], list[str]]:
    """One posting per version: the requested one's author only, the strongest evidence winning."""
    chosen: dict[int, Posting] = {}
    ignored: list[str] = []
    for p in sorted(postings, key=lambda p: (PRIORITY[p.how], p.first.date)):
        if p is not requested and p.author_email.lower() != requested.author_email.lower():
            continue
        have = chosen.get(p.version)
        if have is None:
            chosen[p.version] = p
        elif PRIORITY[have.how] < PRIORITY[p.how]:
            ignored.append(f"v{p.version} <{p.root}> ({p.found_by}): v{p.version} already found by {have.found_by}")
        else:
            raise BadInput(
                f"two postings claim to be v{p.version}: <{have.root}> ({have.found_by}) "
                f"and <{p.root}> ({p.found_by})"
            )
    return [chosen[v] for v in sorted(chosen)], ignored


def discover(config: Config, archive: Archive, msgid: str) -> Found:
    """Find the series that msgid belongs to and every revision of it; write nothing."""
    discovery = Discovery(archive, config)
    requested, postings = discovery.run(msgid)
    chosen, ignored = choose_revisions(requested, postings)
    _, lmsgs = group_postings(discovery.msgs.values())
    return Found(requested, chosen, ignored, lmsgs)
