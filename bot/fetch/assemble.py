"""One posting made ready to apply: b4 assembles the am-ready mbox (trailers from the replies collected), after
the bot has checked that every patch is there and every hunk whole (a truncated mail is bad input)."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from email.message import EmailMessage

import b4

from bot.fetch.discovery import Posting
from bot.patches import diff_problem


@dataclass
class Revision:
    """One revision chosen for the series, ready to be written."""

    posting: Posting
    am_mbox: bytes | None  # None when the revision is unusable (see problem)
    problem: str | None
    followups: list[EmailMessage]
    base_commit: str | None


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
        trouble = diff_problem(patch.body)
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
