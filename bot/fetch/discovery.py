"""Finding every revision of a series on the archive, without writing anything.

Revisions are found in four ways, each recorded in `found_by`:
- threading: postings in the same thread as the message asked for (v2 sent in reply to v1);
- search: b4's own queries (change-id, else subject + author), sent to the archive's search for every
  revision found so far, so a newer posting with the same subject or change-id turns up from an old one;
- changelog links: lore links that authors put in cover letters and changelogs
  (`v2 -> v3: ... https://lore.kernel.org/<list>/<msgid>/`, `Link:` lines), followed to earlier revisions,
  since revisions are often unthreaded and subjects are renamed between them (`changelog-link from v3`);
- link-backs: a search for messages whose body names a known revision's Message-ID finds the later
  revisions whose changelogs link back to it (`link-from:v2`).
Rounds repeat until nothing new turns up, within [discovery] bounds (searches and link fetches per series,
messages read per search answer); what a bound cut off is reported in series.json's notes. A posting
reached by a link is taken only when the link says it is a revision (links.py); else it is another series,
left out and listed in series.json's ignored.

A posting is one revision as sent: a cover letter with its patches, or a patch 1/N with the rest.
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage

import b4

from bot.config import Config
from bot.errors import BadInput
from bot.fetch.archive import Archive
from bot.fetch.links import change_id, linked_msgids, not_linked_why, revision_link
from bot.patches import split_mbox
from bot.results import RevisionRef, SeriesSummary

log = logging.getLogger(__name__)

# Lower is stronger evidence that a posting belongs to the series asked for.
PRIORITY = {"requested": 0, "threading": 1, "changelog-link": 2, "link-from": 2, "search": 3}
LINKED = ("changelog-link", "link-from")  # found through a link: taken only when the link says it is a revision
MAX_VERSION = 999  # a subject claiming more is not a revision (it would overflow SQLite and paths)
MAX_PATCHES = 999  # patches per posting ("[PATCH 1/100000]" is not a series we wait for)


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
        return re.split(r"[: ]", self.found_by, maxsplit=1)[0]

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
    notes: list[str] = field(default_factory=list)

    def summary(self, slug: str, msgid: str) -> SeriesSummary:
        first = self.requested.first
        return SeriesSummary(slug, first.full_subject, f"{first.fromname} <{first.fromemail}>", msgid,
                             [RevisionRef(p.version, p.root, p.found_by) for p in self.chosen], self.ignored,
                             notes=self.notes)


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


def thread_key(p: Posting) -> str:
    """The first message of the thread a posting was sent in (its own root when it starts one)."""
    refs = list(p.first.references)
    return refs[0] if refs else p.root


def _subject_key(p: Posting) -> str:
    return " ".join(str(p.first.lsubject.subject).split()).casefold()


class Discovery:
    """Collects messages from the archive until every revision of a series is found, within [discovery]."""

    def __init__(self, archive: Archive, config: Config) -> None:
        self.archive = archive
        self.config = config
        self.bounds = config.discovery
        self.msgs: dict[str, EmailMessage] = {}
        self.origin: dict[str, str] = {}  # Message-ID -> how its thread was found
        self.queries_done: set[str] = set()
        self.links_done: set[str] = set()
        self.linkbacks_done: set[str] = set()
        self.searches = 0
        self.link_fetches = 0
        self.notes: list[str] = []
        self.rejected: dict[str, str] = {}  # posting root -> why it is not a revision of this series

    def add(self, raw: bytes, how: str) -> int:
        return self._add_msgs(split_mbox(raw), how)

    def _add_msgs(self, msgs: list[EmailMessage], how: str) -> int:
        new = 0
        for msg in msgs:
            msgid = b4.LoreMessage.get_clean_msgid(msg)
            if msgid and msgid not in self.msgs:
                self.msgs[msgid] = msg
                self.origin[msgid] = how
                new += 1
        return new

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def run(self, msgid: str) -> tuple[Posting, list[Posting]]:
        """The posting msgid belongs to, and every posting taken as a revision of its series."""
        self.add(self.archive.thread_mbox(msgid), "threading")
        if msgid not in self.msgs:
            raise BadInput(f"the archive's thread for <{msgid}> does not contain that message")
        for _ in range(self.bounds.max_rounds):
            requested, members = self.state(msgid)
            if not self._search(requested, members) + self._follow_links(members) + self._link_backs(members):
                break
        else:
            self.note(f"stopped after {self.bounds.max_rounds} rounds ([discovery] max_rounds); more revisions "
                      "may exist")
        return self.state(msgid)

    def state(self, msgid: str) -> tuple[Posting, list[Posting]]:
        postings, lmsgs = group_postings(self.msgs.values())
        requested = posting_of(msgid, postings, lmsgs)
        if requested is None:
            raise BadInput(self._not_a_series(msgid, lmsgs))
        for p in postings:
            p.found_by = self.origin[p.root]
        requested.found_by = "requested"
        return requested, self._members(requested, postings)

    def _members(self, requested: Posting, postings: list[Posting]) -> list[Posting]:
        """The requested author's postings that belong to the series: found by threading or change-id, by
        subject search with the same subject, or by a link that names them as a revision (or in one thread
        with such a posting). The others are recorded in self.rejected."""
        author = requested.author_email.lower()
        mine = [p for p in postings if p is requested or p.author_email.lower() == author]
        accepted = [p for p in mine if p.how not in LINKED and p.found_by != "search:subject+author"]
        pending = [p for p in mine if p not in accepted]
        grew = True
        while grew and pending:
            grew = False
            for p in list(pending):
                if any(self._belongs(p, m) for m in accepted):
                    accepted.append(p)
                    pending.remove(p)
                    grew = True
        self.rejected = {p.root: (f"v{p.version} <{p.root}> ({p.found_by}): " + (
            "another series: its subject only contains this one's" if p.how == "search"
            else not_linked_why(p, accepted))) for p in pending}
        return accepted

    @staticmethod
    def _belongs(p: Posting, m: Posting) -> bool:
        if thread_key(p) == thread_key(m) or (p.how == "search" and _subject_key(p) == _subject_key(m)):
            return True
        newer, older = (p, m) if p.version > m.version else (m, p)
        return revision_link(newer, older) is not None

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

    # ---- the three ways out to the archive, each bounded

    def _searched(self, query: str, how: str, what: str) -> int:
        """Send one search (within the [discovery] max_searches budget), read at most max_hits messages."""
        if self.searches >= self.bounds.max_searches:
            self.note(f"search budget used up ([discovery] max_searches = {self.bounds.max_searches}): "
                      f"{what} and later searches not sent")
            return 0
        self.searches += 1
        msgs = split_mbox(self.archive.search(query))
        if len(msgs) > self.bounds.max_hits:
            self.note(f"search {_clip(query, 80)!r} answered {len(msgs)} messages; only the first "
                      f"{self.bounds.max_hits} were read ([discovery] max_hits)")
            msgs = msgs[: self.bounds.max_hits]
        return self._add_msgs(msgs, how)

    def _search(self, requested: Posting, members: list[Posting]) -> int:
        """b4's revision queries (as in b4.mbox.get_extra_series) from every revision found, with errors
        surfaced: newer postings with the same change-id, or the same subject and author."""
        new = 0
        for p in [requested] + sorted((m for m in members if m is not requested), key=lambda m: -m.version):
            first, cid = p.first, change_id(p)
            if cid:
                query, how = f'nq:"change-id: {cid}"', "search:change-id"
            else:
                subject = first.lsubject.subject.replace('"', "")
                query, how = f'(s:"{subject}" AND f:"{first.fromemail}")', "search:subject+author"
            if query in self.queries_done:
                continue
            self.queries_done.add(query)
            since = (first.date - datetime.timedelta(days=365)).strftime("%Y%m%d")
            new += self._searched(f"({query}) AND d:{since}..", how, f"the {how} query of v{p.version}")
        return new

    def _link_backs(self, members: list[Posting]) -> int:
        """Later revisions whose changelogs link back: messages of the author naming a revision's Message-ID."""
        new = 0
        for p in sorted(members, key=lambda m: -m.version):
            if p.root in self.linkbacks_done:
                continue
            self.linkbacks_done.add(p.root)
            query = f'b:"{p.root.replace(chr(34), "")}" AND f:"{p.author_email}"'
            new += self._searched(query, f"link-from:v{p.version}", f"the link-back search of v{p.version}")
        return new

    def _follow_links(self, members: list[Posting]) -> int:
        new = 0
        for p in sorted(members, key=lambda p: -p.version):
            for lmsg in [p.cover] + list(p.patches.values()):
                if lmsg is None:
                    continue
                for target in sorted(linked_msgids(lmsg, self.config) - self.links_done):
                    self.links_done.add(target)
                    if target in self.msgs:
                        continue
                    if self.link_fetches >= self.bounds.max_link_fetches:
                        self.note(f"link budget used up ([discovery] max_link_fetches = "
                                  f"{self.bounds.max_link_fetches}): <{target}> and later links not followed")
                        continue
                    self.link_fetches += 1
                    try:
                        raw = self.archive.thread_mbox(target)
                    except BadInput:
                        self.note(f"v{p.version} links <{target}>, which is not on the archive")
                        continue
                    new += self.add(raw, f"changelog-link from v{p.version}")
        return new


def choose_revisions(requested: Posting, postings: list[Posting]) -> tuple[list[Posting], list[str]]:
    """One posting per version (of the series' members), the strongest evidence winning."""
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
    requested, members = discovery.run(msgid)
    chosen, ignored = choose_revisions(requested, members)
    _, lmsgs = group_postings(discovery.msgs.values())
    return Found(requested, chosen, list(discovery.rejected.values()) + ignored, lmsgs, discovery.notes)
