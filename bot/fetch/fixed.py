"""The patch a `Fixes: <sha> ("<subject>")` line names, found on the archive by its subject (the walkdiff
stage's lookup when the sha is not in the kernel tree's history): the patch mail with that subject in the
latest revision of the series that carried it. One search, bounded like discovery's ([discovery] max_hits)."""

from __future__ import annotations

import logging

from bot.config import Config
from bot.fetch.archive import Archive, b4_session
from bot.fetch.discovery import group_postings
from bot.patches import split_mbox
from bot.results import FixedPatch

log = logging.getLogger(__name__)


def _key(subject: str) -> str:
    return " ".join(subject.split()).casefold()


def find_fixed(config: Config, subject: str) -> FixedPatch | None:
    """The latest posted patch whose subject (without [PATCH ...]) is `subject`, or None; OperationalError when
    the archive does not answer."""
    words = subject.replace('"', " ").strip()
    if not words:
        return None
    with b4_session(config), Archive(config) as archive:
        msgs = split_mbox(archive.search(f's:"{words}"'))
        if len(msgs) > config.discovery.max_hits:
            log.info("Fixes: lookup of %r: %d messages, reading %d", subject, len(msgs), config.discovery.max_hits)
            msgs = msgs[: config.discovery.max_hits]
        postings, _ = group_postings(msgs)
        found = [(p.version, m.date, m) for p in postings for m in p.patches.values()
                 if _key(str(m.lsubject.subject)) == _key(subject)]
        if not found:
            return None
        version, _, m = max(found, key=lambda f: (f[0], f[1]))
        return FixedPatch(subject, m.msgid, version, str(m.body), str(m.full_subject))
