"""The fetch stage: every revision of the series a message belongs to, from the archive, saved to disk.

In: a Message-ID (or lore URL) of any message of the series. Out: the SeriesSummary (series.json) and one
RevisionResult per revision with `stages.fetch` set, after series.mbx (b4's am-ready mbox) and thread.mbox
are written under patchsets/<slug>/v<N>/. A series fetched before is read back from disk.

Or, for a local check (`bot check --mbox FILE` / `--range BASE..TIP`), a LocalSource: the same results from
an mbox or a git range (a b4 prep branch, its sent revisions as the previous ones), under
patchsets/local-<...>/, listing no Message-IDs (fetch_local).

Also here, for the daemon: polling the list for new series roots (fetch.poll) and reading one posting's
patches from a thread (posting_in_thread); for the walkdiff stage, through the pipeline: the patch a
`Fixes:` line names, by its subject (find_fixed).

  archive.py    the public-inbox archive over HTTP (deadlines, retries) and b4's settings
  discovery.py  threading, b4's revision queries, changelog links both ways; one posting per version
  links.py      lore links in a posting, and whether one names an earlier revision
  fixed.py      the patch a Fixes: line names, by its subject (for the walkdiff stage)
  assemble.py   completeness checks and b4's am-ready mbox of one posting
  saved.py      patchsets/<slug>/ on disk
  poll.py       new patch mail since a date (the daemon's poll)
  local.py      a local mbox or git range as a series (fetch_local)
  prep.py       a git range as patches, and a b4 prep branch's tracking data and sent revisions
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from bot.config import Config
from bot.errors import BadInput
from bot.fetch.archive import Archive, b4_session, parse_msgid, split_mbox
from bot.fetch.assemble import prepare
from bot.fetch.discovery import Posting, discover, group_postings, posting_of
from bot.fetch.fixed import find_fixed
from bot.fetch.local import LocalSource, fetch_local
from bot.fetch.poll import Entry, Poller, PollError, roots
from bot.fetch.prep import Branch, prep_branch
from bot.fetch.saved import find_known, load, save, slugify
from bot.results import RevisionResult, SeriesSummary

__all__ = ["Archive", "Branch", "Entry", "LocalSource", "PollError", "Poller", "Posting", "b4_session",
           "fetch_local", "fetch_series", "find_fixed", "find_known", "has_message", "load", "parse_msgid",
           "posting_in_thread", "prep_branch", "roots", "split_mbox"]


def fetch_series(config: Config, target: str, refetch: bool = False,
                 progress: Callable[[str], None] = lambda _: None) -> tuple[SeriesSummary, list[RevisionResult]]:
    """The series of `target`, fetched from the archive (or from disk when fetched before and not refetch)."""
    msgid = parse_msgid(target)
    known = find_known(config.paths.patchsets, msgid)
    if known is not None and not refetch:
        progress(f"reusing {known} (fetched before; --refetch to fetch again)")
        return load(known)
    with b4_session(config), Archive(config) as archive:
        progress(f"fetching <{msgid}> and every revision of its series from {archive.url}")
        found = discover(config, archive, msgid)
        revisions = [prepare(p, found.lmsgs) for p in found.chosen]
        for rev in revisions:
            state = rev.problem or f"{len(rev.posting.patches)} patches"
            progress(f"  v{rev.posting.version}: {state} (found by {rev.posting.found_by})")
        for line in found.notes + found.ignored:
            progress(f"  note: {line}")
        mine = next(r for r in revisions if r.posting is found.requested)
        if mine.problem:
            raise BadInput(mine.problem)
        summary = found.summary(known.name if known is not None else series_slug(found.chosen[0]), msgid)
        return summary, save(config, archive, summary, revisions)


def series_slug(oldest: Posting) -> str:
    """patchsets/<slug>: the date and subject for humans, and a hash of the oldest revision's root Message-ID
    for identity (two authors posting "mm: fix typo" on one day are two series)."""
    first = oldest.first
    digest = hashlib.sha256(oldest.root.encode()).hexdigest()[:8]
    return f"{first.date:%Y%m%d}-{slugify(first.lsubject.subject)[:48].rstrip('-')}-{digest}"


def has_message(config: Config, msgid: str) -> bool:
    """Whether the archive holds msgid now (the report stage's check after an interrupted send)."""
    with Archive(config) as archive:
        return archive.has_message(msgid)


def posting_in_thread(thread: bytes, msgid: str) -> Posting | None:
    """The posting (cover + patches) that msgid roots or belongs to, read from its thread mbox."""
    postings, lmsgs = group_postings(split_mbox(thread))
    return posting_of(msgid, postings, lmsgs)
