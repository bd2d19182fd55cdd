"""`bot b4-check`: the bot's results where maintainers and authors work, through b4's check commands.

In: one RFC 2822 message on stdin (what b4 gives a check command), the results under patchsets/. Out, for
`b4 review` (b4.review-perpatch-check-cmd / b4.review-series-check-cmd): a JSON list of
`{tool, status, summary, url, details}` for a reviewed revision, nothing (exit 0) for one not reviewed yet —
b4 caches any answer per message and tool, so "pending" is never said — and a single `fail` entry for a
message it cannot read. With --queue an unreviewed message is queued for the daemon. For `b4 prep --check`
(b4.prep-perpatch-check-cmd, --prep): one line per finding of the fast checks (apply, walk exits, new
warnings when the base is built already), `ERROR:` lines for failures. Nothing here builds or boots inline
for `b4 review`.

  message.py  reading stdin without the stage packages (the reviewed-message path stays fast)
  lookup.py   the revision a Message-ID belongs to, whether it is reviewed, the review text
  entries.py  results -> b4's entries, per patch or per series
  prep.py     the prep text protocol and its fast checks
"""

from __future__ import annotations

import datetime
import email.utils
import time

from bot.b4check import lookup, message
from bot.b4check.entries import TOOL, Entry, apply_entry, build_entries, entry, runtime_entries, walk_entry, worst
from bot.b4check.message import BadMessage, Incoming
from bot.config import Config

__all__ = ["TOOL", "BadMessage", "Entry", "answer", "review_entries"]


def review_entries(config: Config, found: lookup.Found, incoming: Incoming | None) -> list[Entry]:
    """The entries of a reviewed revision; `incoming` is the patch asked about (None: the whole series)."""
    result = found.revision
    patch = found.patch if incoming is not None else None
    files = incoming.files if incoming is not None and patch is not None else []
    checks = [e for e in [apply_entry(result, patch), *build_entries(result, patch, files),
                          *runtime_entries(result), walk_entry(result, incoming if patch is not None else None)]
              if e is not None]
    review = lookup.review_text(config, found)
    verdict = review.split("\n\n", 1)[0]
    where = lookup.revision_path(config, found)
    out = [entry(TOOL, worst(checks), verdict, [review.rstrip("\n"), "", f"results: {where}/result.json"]),
           *checks]
    url = lookup.dashboard_url(config, found.slug)
    for e in out:
        e["url"] = url
    return out


def answer(config: Config, raw: bytes, series: bool = False, queue: bool = False) -> tuple[list[Entry], int, str]:
    """(entries to print, exit code, a note for stderr) for the message in `raw`."""
    try:
        incoming = message.read(raw)
    except BadMessage as e:
        return [entry(TOOL, "fail", f"bad input: {e}")], 1, str(e)
    found = lookup.find(config.paths.patchsets, incoming.message_id)
    if found is not None and lookup.reviewed(config, found.revision):
        mine = None if series or found.patch is None else incoming
        return review_entries(config, found, mine), 0, ""
    state = "not reviewed yet" if found is not None else "not in the bot's results"
    note = f"<{incoming.message_id}>: {state}"
    if queue:
        note += "; " + enqueue(config, incoming, found)
    return [], 0, note


def _posted(date: str) -> str:
    try:
        when = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError):
        when = None
    if when is None:
        when = datetime.datetime.now(datetime.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.isoformat()


def enqueue(config: Config, incoming: Incoming, found: lookup.Found | None) -> str:
    """Queue the message for the daemon: a revision fetched before by its root (queued), any other message as
    a candidate its next round classifies (its posting's root found, mm or not), as if the poll had seen it."""
    from bot.daemon.queue import Queue  # the daemon's tables; never on the reviewed-message path
    from bot.store import open_store

    with open_store(config.paths.patchsets) as store:
        q = Queue(store)
        if found is not None:
            r = found.revision
            mid, args = r.message_id, (r.subject, r.author, r.version, _posted(r.date))
            state = "queued"
        else:
            mid, args = incoming.message_id, (incoming.subject, incoming.author, 0, _posted(incoming.date))
            state = "seen"
        row = q.get(mid)
        if row is not None:
            return f"already in the daemon's queue as <{mid}> ({row.state}{': ' + row.detail if row.detail else ''})"
        q.add(mid, *args, state=state, detail=f"asked for by b4-check at {time.strftime('%Y-%m-%d %H:%M:%S')}")
    return f"queued <{mid}> for the daemon" + (" (its next round classifies it)" if state == "seen" else "")
