"""A round's intake: poll the archive for new series roots, then fetch each one's thread and queue it when its
patches touch mm files (MAINTAINERS' MEMORY MANAGEMENT sections plus [daemon] patterns)."""

from __future__ import annotations

import datetime
import logging
import time

from bot import fetch
from bot.config import Config
from bot.daemon.events import event
from bot.daemon.mmfiles import MMFiles
from bot.daemon.queue import Queue
from bot.errors import BadInput, OperationalError
from bot.patches import DiffError, touched_paths

log = logging.getLogger(__name__)
INCOMPLETE_WAIT = 6 * 3600.0  # seconds a posting with missing patches waits for them before it is queued anyway


def poll(config: Config, queue: Queue) -> list[fetch.Entry]:
    """New series roots since the cursor; [] (and the failure recorded) when the archive cannot be asked."""
    cursor = queue.get_state("cursor")
    if cursor:
        since = datetime.date.fromisoformat(cursor) - datetime.timedelta(days=config.daemon.overlap_days)
    else:
        since = datetime.datetime.now(datetime.UTC).date() - datetime.timedelta(days=config.daemon.lookback_days)
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    try:
        query, entries = fetch.Poller(config).since(since)
    except fetch.PollError as e:
        failures = int(queue.get_state("poll_failures", "0")) + 1
        queue.put_state(last_poll=now, last_poll_status=f"failed: {e}", poll_failures=str(failures))
        event(f"poll skipped this round ({failures} in a row): {e}")
        return []
    found = fetch.roots(entries)
    fresh = [e for e in found if (row := queue.get(e.message_id)) is None or row.state == "seen"]
    if entries:
        # Never past today: one message with a future Date must not make later polls skip today's mail.
        newest = min(max(e.date for e in entries).date(), datetime.datetime.now(datetime.UTC).date())
        if not cursor or newest > datetime.date.fromisoformat(cursor):
            cursor = newest.isoformat()
    queue.put_state(last_poll=now, poll_failures="0", cursor=cursor,
                    last_poll_status=f"ok: {query!r}: {len(entries)} patch messages, {len(found)} series roots, "
                                     f"{len(fresh)} new")
    event(f"poll: {len(entries)} patch messages since {since}, {len(fresh)} new series roots")
    return fresh


def classify(config: Config, queue: Queue, entries: list[fetch.Entry], mm: MMFiles) -> set[str]:
    """Fetch each candidate's thread and queue it when its patches touch mm files; the rows touched."""
    touched = {e.message_id for e in entries}
    if not entries:
        return touched
    with fetch.b4_session(config), fetch.Archive(config) as archive:
        for e in entries:
            queue.add(e.message_id, e.subject, e.author, 0, e.date.isoformat())
            try:
                classify_one(archive, queue, e, mm, touched)
            except BadInput as err:  # a poison message: recorded with the reason, never tried again
                queue.set(e.message_id, state="failed", detail=f"bad input: {err}")
                event(f"<{e.message_id}>: bad input: {err}")
            except OperationalError as err:
                queue.set(e.message_id, detail=f"thread not fetched, retried next round: {err}")
                event(f"<{e.message_id}>: thread not fetched ({err}); retried next round")
            except Exception as err:  # a bug met on this message: the round goes on with the others
                log.exception("classifying <%s>", e.message_id)
                queue.set(e.message_id, state="failed", detail=f"internal error: {type(err).__name__}: {err}")
                event(f"<{e.message_id}>: internal error ({type(err).__name__}: {err}); see the log")
    return touched


def classify_one(archive: fetch.Archive, queue: Queue, e: fetch.Entry, mm: MMFiles, touched: set[str]) -> None:
    """Decide one candidate: ignored (no diff, part of another posting, not mm), seen (incomplete), queued."""
    try:
        thread = archive.thread_mbox(e.message_id)
    except BadInput as err:  # listed by the poll but not served yet (the archive indexes lazily): next round
        raise OperationalError(str(err)) from err
    posting = fetch.posting_in_thread(thread, e.message_id)
    if posting is None or not posting.patches:
        queue.set(e.message_id, state="ignored",
                  detail="no diff: claims to be a patch, but no patch of its posting carries a diff")
        event(f"<{e.message_id}> {e.subject!r}: ignored, no diff")
        return
    first = posting.first
    if posting.root != e.message_id:  # patch 1/N of a posting with a cover letter: one row per posting
        queue.set(e.message_id, state="ignored", detail=f"part of <{posting.root}>")
        touched.add(posting.root)
        if queue.get(posting.root) is not None:
            return
        queue.add(posting.root, first.full_subject, f"{first.fromname} <{first.fromemail}>", 0,
                  first.date.isoformat())
    missing = posting.missing()
    if missing and time.time() - first.date.timestamp() < INCOMPLETE_WAIT:
        queue.set(posting.root, state="seen", version=posting.version,
                  detail=f"incomplete ({len(posting.patches)}/{posting.expected} patches so far); waiting")
        return
    try:
        files = sorted({f for p in posting.patches.values() for f in touched_paths(p.body)})
    except DiffError as err:
        raise BadInput(str(err)) from err
    hit = mm.match(files)
    if not hit:
        queue.set(posting.root, state="ignored", version=posting.version,
                  detail=f"not mm: touches {', '.join(files[:6])}{' ...' if len(files) > 6 else ''}")
        event(f"<{posting.root}> {first.full_subject!r}: ignored, not mm")
        return
    queue.set(posting.root, state="queued", version=posting.version, files=",".join(hit[:50]),
              detail=f"mm: {len(hit)} of {len(files)} files ({mm.source})")
    event(f"queued v{posting.version} <{posting.root}> {first.full_subject!r}")
