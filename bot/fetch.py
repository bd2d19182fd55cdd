"""The fetch stage: find every revision of a series and save each one to disk.

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
import io
import json
import logging
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import b4

from bot.config import Config
from bot.errors import BadInput
from bot.lore import Archive, split_mbox
from bot.results import (
    PatchInfo,
    RevisionResult,
    StageResult,
    load_revision,
    revision_dir,
    save_revision,
    write_bytes_atomic,
    write_json_atomic,
)

log = logging.getLogger(__name__)

# Lower is stronger evidence that a posting belongs to the series asked for.
PRIORITY = {"requested": 0, "threading": 1, "changelog-link": 2, "search": 3}
MAX_LINK_FETCHES = 30
MAX_ROUNDS = 6
LINK_HOSTS = ("lore.kernel.org", "lkml.kernel.org", "patch.msgid.link", "msgid.link")
URL_RE = re.compile(r"https?://[^\s<>\"')\]]+")
HUNK_RE = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")


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
class Revision:
    """One revision chosen for the series, ready to be written."""

    posting: Posting
    am_mbox: bytes | None  # None when the revision is unusable (see problem)
    problem: str | None
    followups: list[EmailMessage]
    base_commit: str | None


@dataclass
class Series:
    slug: str
    subject: str
    author: str
    requested: str
    revisions: list[Revision]
    ignored: list[str]

    def summary(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "subject": self.subject,
            "author": self.author,
            "requested": self.requested,
            "revisions": [
                {"version": r.posting.version, "message_id": r.posting.root, "found_by": r.posting.found_by}
                for r in self.revisions
            ],
            "ignored": self.ignored,
        }


def check_diff(body: str) -> str | None:
    """Say what is wrong when a patch's hunks end early (a truncated message), else None."""
    lines = body.splitlines()
    i = 0
    current_file = "?"
    while i < len(lines):
        line = lines[i]
        if line.startswith("+++ "):
            current_file = line[4:].removeprefix("b/")
        m = HUNK_RE.match(line)
        i += 1
        if not m:
            continue
        old = int(m.group(1) or 1)
        new = int(m.group(2) or 1)
        start = i
        while old > 0 or new > 0:
            text = lines[i] if i < len(lines) else None
            i += 1
            if text is not None and text.startswith("\\"):
                continue
            if text is not None and (text.startswith(" ") or text == "") and old > 0 and new > 0:
                old, new = old - 1, new - 1
            elif text is not None and text.startswith("-") and old > 0:
                old -= 1
            elif text is not None and text.startswith("+") and new > 0:
                new -= 1
            else:  # the message ends, or something else starts, before the hunk has all its lines
                return f"hunk at line {start} of the diff for {current_file} ends early (message truncated?)"
    return None


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
    patches = [m for m in lmsgs.values() if not m.lsubject.reply and m.lsubject.patch]
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
                subject = self.msgs[msgid].get("Subject", "")
                raise BadInput(f"<{msgid}> ({subject!r}) is not part of a patch series: no patch in its thread")
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


def prepare(posting: Posting, lmsgs: dict[str, b4.LoreMessage]) -> Revision:
    """The am-ready mbox of one posting (b4 collects trailers from its replies), or why not."""
    own = set(posting.msgids())
    followups = [
        m.msg for m in lmsgs.values() if m.msgid not in own and (posting.root in m.references or m.in_reply_to in own)
    ]
    missing = posting.missing()
    if missing:
        have = ", ".join(f"{i}/{posting.expected}" for i in sorted(posting.patches))
        problem = (f"v{posting.version} is incomplete: patch {', '.join(f'{i}/{posting.expected}' for i in missing)}"
                   f" missing (have {have or 'none'})")
        return Revision(posting, None, problem, followups, None)
    for i, patch in sorted(posting.patches.items()):
        trouble = check_diff(patch.body)
        if trouble:
            return Revision(posting, None, f"v{posting.version} patch {i}/{posting.expected} <{patch.msgid}>: "
                            f"{trouble}", followups, None)
    lmbx = b4.LoreMailbox()
    for lmsg in ([posting.cover] if posting.cover else []) + [posting.patches[i] for i in sorted(posting.patches)]:
        lmbx.add_message(lmsg.msg)
    for msg in followups:
        lmbx.add_message(msg)
    lser = lmbx.get_series(posting.version, codereview_trailers=False)
    if lser is None or not lser.complete:
        return Revision(posting, None, f"b4 could not assemble v{posting.version}", followups, None)
    am_msgs = lser.get_am_ready(noaddtrailers=False, addlink=False)
    buf = io.BytesIO()
    b4.save_git_am_mbox(am_msgs, buf)
    base = re.search(r"^base-commit:\s*([0-9a-f]{7,40})\s*$", posting.first.body, flags=re.M)
    return Revision(posting, buf.getvalue(), None, followups, base.group(1) if base else lser.base_commit)


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].rstrip("-") or "series"


def revision_result(rev: Revision) -> RevisionResult:
    p = rev.posting
    first = p.first
    result = RevisionResult(
        message_id=p.root,
        version=p.version,
        subject=first.full_subject,
        author=f"{first.fromname} <{first.fromemail}>",
        date=first.date.isoformat(),
        patches=[PatchInfo(i, m.full_subject, m.msgid) for i, m in sorted(p.patches.items())],
        found_by=[p.found_by],
    )
    if rev.problem:
        result.set_stage("fetch", StageResult("failed", rev.problem))
    else:
        detail = f"{len(p.patches)} patch{'es' if len(p.patches) != 1 else ''}, found by {p.found_by}"
        result.set_stage("fetch", StageResult("ok", detail, {"base_commit_trailer": rev.base_commit,
                                                             "cover": p.cover is not None}))
    return result


def discover(config: Config, archive: Archive, msgid: str) -> Series:
    """Find the series that msgid belongs to and every revision of it; write nothing."""
    discovery = Discovery(archive, config)
    requested, postings = discovery.run(msgid)
    chosen, ignored = choose_revisions(requested, postings)
    _, lmsgs = group_postings(discovery.msgs.values())
    revisions = [prepare(p, lmsgs) for p in chosen]
    mine = next(r for r in revisions if r.posting is requested)
    if mine.problem:
        raise BadInput(mine.problem)
    oldest = chosen[0].first
    slug = f"{oldest.date:%Y%m%d}-{slugify(oldest.lsubject.subject)}"
    return Series(slug, requested.first.full_subject, f"{requested.first.fromname} <{requested.first.fromemail}>",
                  msgid, revisions, ignored)


def find_known(patchsets: Path, msgid: str) -> Path | None:
    """The series folder that already holds msgid (as a revision, patch or requested message)."""
    for path in sorted(patchsets.glob("*/series.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if msgid in data.get("message_ids", []):
            return path.parent
    return None


def save(config: Config, archive: Archive, series: Series) -> list[RevisionResult]:
    """Write every revision (series.mbx, thread.mbox, result.json), then series.json last.

    Everything was fetched and checked before this is called, so a bad series writes nothing.
    A revision whose mbox is unchanged keeps the stage results of earlier runs.
    """
    top = config.paths.patchsets / series.slug
    results = []
    message_ids = {series.requested}
    for rev in series.revisions:
        rdir = revision_dir(config.paths.patchsets, series.slug, rev.posting.version)
        result = revision_result(rev)
        message_ids.update(rev.posting.msgids())
        old = load_revision(rdir / "result.json")
        mbx = rdir / "series.mbx"
        if rev.am_mbox is not None:
            unchanged = mbx.exists() and mbx.read_bytes() == rev.am_mbox
            if old is not None and unchanged:
                for name, data in old.stages.items():
                    if name != "fetch":
                        result.stages[name] = data
                result.base = old.base
            write_bytes_atomic(mbx, rev.am_mbox)
        write_bytes_atomic(rdir / "thread.mbox", archive.thread_mbox(rev.posting.root))
        save_revision(rdir / "result.json", result)
        results.append(result)
    summary = series.summary() | {"message_ids": sorted(message_ids)}
    write_json_atomic(top / "series.json", summary)
    return results


def load(series_dir: Path) -> tuple[dict[str, Any], list[RevisionResult]]:
    """A series fetched before: its series.json and each revision's result.json, oldest first."""
    summary = json.loads((series_dir / "series.json").read_text())
    summary.pop("message_ids", None)  # the lookup index of find_known, not part of the result
    results = []
    for rev in summary["revisions"]:
        result = load_revision(series_dir / f"v{rev['version']}" / "result.json")
        if result is None:
            raise BadInput(f"{series_dir}: v{rev['version']}/result.json is missing; rerun with --refetch")
        results.append(result)
    return summary, results
