"""Links between postings: the lore links in a posting's text, and whether one says "this is an earlier
revision of the same series" or just points at something else (a series it depends on, a discussion).

Authors link earlier revisions in changelogs: `v2 -> v3: ...` with the link on the next line, `v2:
https://...`, b4's `- Link to v2: https://...`, `Changes since RFC: ... RFC: https://...`. A link is taken
for a revision link when the words on its line (or, for a link alone on its line, the line above) name the
older posting's version (`v2`, `RFC`, "previous version"), or when both postings carry the same change-id.
A link that says nothing of the kind (`Depends on: https://...`) leads to another series, which is then left
out of this one.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import b4

from bot.config import Config

if TYPE_CHECKING:
    from bot.fetch.discovery import Posting

LINK_HOSTS = ("lore.kernel.org", "lkml.kernel.org", "patch.msgid.link", "msgid.link")
URL_RE = re.compile(r"https?://[^\s<>\"')\]]+")
PREVIOUS = re.compile(r"\b(previous|prior|last|earlier|older) (version|revision|posting|series)\b", re.I)
CHANGE_ID = re.compile(r"^change-id:\s+(\S+)", re.I | re.M)


def _text(lmsg: b4.LoreMessage) -> str:
    """A mail's own words: the body above its diff."""
    return str(lmsg.body).split("\ndiff --git ", 1)[0]


def _msgids_in(url: str) -> Iterator[str]:
    for part in urllib.parse.urlparse(url).path.split("/"):
        if "@" in part:
            yield urllib.parse.unquote(part).strip("<>")


def linked_msgids(lmsg: b4.LoreMessage, config: Config) -> set[str]:
    """Message-IDs of lore links in a cover letter or patch (above and below the '---')."""
    hosts = set(LINK_HOSTS) | {urllib.parse.urlparse(config.lore.url).netloc}
    return {m for url in URL_RE.findall(_text(lmsg)) if urllib.parse.urlparse(url).netloc in hosts
            for m in _msgids_in(url)}


def link_contexts(lmsgs: Iterable[b4.LoreMessage], targets: set[str]) -> list[str]:
    """The words around each link to one of `targets`: its own line without the URL, or the line above when
    the URL stands alone."""
    out = []
    for lmsg in lmsgs:
        lines = _text(lmsg).splitlines()
        for i, line in enumerate(lines):
            if not any(t in targets for url in URL_RE.findall(line) for t in _msgids_in(url)):
                continue
            own = URL_RE.sub("", line).strip()
            if not re.search(r"[A-Za-z]{2,}|\bv\d+\b", own):
                above = next((p for p in reversed(lines[:i]) if p.strip()), "")
                own = f"{above.strip()} {own}".strip()
            out.append(own)
    return out


def change_id(p: Posting) -> str | None:
    m = CHANGE_ID.search(str(p.first.body))
    return m.group(1) if m else None


def names_revision(context: str, older: Posting) -> bool:
    if re.search(rf"\bv{older.version}\b", context, re.I) or PREVIOUS.search(context):
        return True
    return bool(older.first.lsubject.rfc) and re.search(r"\bRFC\b", context) is not None


def revision_link(newer: Posting, older: Posting) -> str | None:
    """Why `older` is an earlier revision of `newer`'s series ("" when they share a change-id), or None."""
    cid = change_id(newer)
    if cid is not None and cid == change_id(older):
        return ""
    if older.version >= newer.version:
        return None
    mails = ([newer.cover] if newer.cover else []) + list(newer.patches.values())
    contexts = link_contexts(mails, set(older.msgids()))
    return next((c for c in contexts if names_revision(c, older)), None)


def not_linked_why(p: Posting, members: Iterable[Posting]) -> str:
    """Why a posting reached by a link is not taken as a revision of the series (for series.json's ignored)."""
    for m in members:
        newer, older = (m, p) if m.version > p.version else (p, m)
        mails = ([newer.cover] if newer.cover else []) + list(newer.patches.values())
        contexts = link_contexts(mails, set(older.msgids()))
        if contexts:
            return (f"another series: the link in v{newer.version} ({contexts[0][:60]!r}) does not name it as "
                    f"v{older.version} of this one")
    return "another series: no changelog of this series links it"
