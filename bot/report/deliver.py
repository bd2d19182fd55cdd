"""Render the reply into the outbox, then send it exactly once (the report stage and `bot post`).

"Better to not send an email at all than to send it multiple times" (syzbot): the database records
"sending" before the SMTP transaction and "sent" after it. A run that finds "sending" (the previous
one died in between) first looks for the Message-ID on the archive; only a reply that is provably
not there is sent again, and in author mode (the reply never reaches the archive) only with --force.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from bot.config import Config
from bot.errors import BadInput, OperationalError
from bot.report import mail
from bot.report.verdict import blamed_patch, verdict_digest
from bot.report.view import Context, render
from bot.results import ReportResult, RevisionResult, SeriesSummary, revision_dir
from bot.store import Reply, Store, open_store

log = logging.getLogger(__name__)
OnArchive = Callable[[str], bool]  # is this Message-ID on the archive now? (fetch.has_message)
SETTLE_POLL = 0.5  # seconds between looks at a reply another process is sending


def context(config: Config) -> Context:
    t = config.tree
    tree = t.remote if t.source == "git" else f"Debian {t.debian_package} ({t.debian_suite}), mm branches: " + \
        ", ".join(t.branches)
    return Context(operator=config.report.operator, tree=tree,
                   list_address=config.report.list_address, templates=config.paths.templates,
                   reporter=config.report.sender, inbox_url=config.lore.inbox_url,
                   dashboard_url=config.report.dashboard_url, dashboard_dir=str(config.paths.dashboard))


def outbox_dir(config: Config) -> Path:
    return config.paths.patchsets / "outbox"


def _addressing(config: Config, author: str) -> tuple[list[Any], list[Any], list[str]]:
    # A dry run is addressed as author mode would be: the preview shows what opting in would send.
    mode = "author" if config.report.mode == "dry-run" else config.report.mode
    return mail.recipients(config.report, mail.parse_address(author), mode)


def render_reply(config: Config, store: Store, series: SeriesSummary, result: RevisionResult,
                 arches: list[str], digest: str) -> Reply:
    """Render this revision's reply into the outbox and record it (state rendered); pure apart from that."""
    sender = mail.parse_address(config.report.sender)
    msgid = mail.make_msgid(series.slug, result.version, digest, sender)
    body = render(result, series, context(config), arches, reply_id=msgid)  # Closes: links to the reply itself
    blamed = blamed_patch(result)
    patch = next((p for p in result.patches if p.index == blamed), None)
    parent_id, fallback = (patch.message_id, patch.subject) if patch else (result.message_id, result.subject)
    thread_path = revision_dir(config.paths.patchsets, series.slug, result.version) / "thread.mbox"
    thread = thread_path.read_bytes() if thread_path.exists() else b""
    parent = mail.find_parent(thread, parent_id, fallback, root=result.message_id)
    to, cc, _ = _addressing(config, result.author)
    msg = mail.build_reply(body, parent, sender, to, cc, msgid)
    path = mail.outbox_write(outbox_dir(config), f"{series.slug}.v{result.version}.{digest[:12]}", msg)
    return store.add_reply(series.slug, result.version, digest, msgid, str(path))


def _result(status: str, detail: str, reply: Reply, msg: EmailMessage | None = None, **more: Any) -> ReportResult:
    res = ReportResult(status, detail, message_id=reply.message_id, state=reply.state,  # type: ignore[arg-type]
                       outbox=reply.path, digest=reply.digest[:16], **more)
    if msg is not None:
        res.to, res.cc, res.in_reply_to = str(msg.get("To", "")), str(msg.get("Cc", "")), str(msg["In-Reply-To"])
    return res


def deliver(config: Config, store: Store, reply: Reply, author: str, on_archive: OnArchive,
            force: bool = False, resend: bool = False) -> ReportResult:
    """Send one recorded reply per policy, at most once; the result says what happened and why.

    force: send a held reply, or one whose earlier send was interrupted without confirmation; never one the
    store says was sent (that takes resend, an explicit second mail).
    """
    cfg = config.report
    reply = _settled(store, reply)
    msg = _read(reply)
    if msg is None:
        return _result("error", f"outbox message {reply.path} is missing; rerun `bot check`", reply)
    hit = mail.opted_out(mail.parse_address(author).addr_spec, cfg.optout)
    if hit:
        if reply.state != "sent":
            store.set_state(reply, "held", f"author opted out ({hit})")
        return _result("skipped", f"not sent: the author opted out ({hit})", reply, msg)
    if reply.state == "sent" and not resend:
        extra = "; `bot post --resend` sends it again" if force else ""
        return _result("ok", f"already sent as <{reply.message_id}>{extra}", reply, msg)
    if reply.state == "held" and not (force or resend):
        return _result("skipped", f"not sent: {reply.reason}", reply, msg)
    if cfg.mode == "dry-run":
        return _result("ok", f"dry-run: reply written to {reply.path} (set [report] mode to send)", reply, msg)
    stale = reply.state == "sending"  # its lease ran out: the process sending it died
    if stale and not force:
        outcome = _reconcile(config, store, reply, on_archive)
        if outcome is not None:
            return _result(outcome[0], outcome[1], store.refresh(reply), msg)
    recent = store.sent_since(time.time() - 3600)
    if recent >= cfg.max_per_hour:
        return _result("skipped", f"rate limit: {recent} replies sent in the last hour (max_per_hour "
                       f"{cfg.max_per_hour}); queued, `bot post` sends it later", reply, msg)
    return _send(config, store, reply, author, msg, stale=stale, force=force, resend=resend)


def _send(config: Config, store: Store, reply: Reply, author: str, msg: EmailMessage, *, stale: bool,
          force: bool, resend: bool) -> ReportResult:
    """Claim the reply (one process wins), send it, record the outcome under the same claim."""
    to, cc, notes = _addressing(config, author)
    mail.readdress(msg, to, cc)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    why = store.claim(reply, owner, _lease(config), stale_ok=stale or force, held_ok=force, sent_ok=resend)
    if why:
        now = _settled(store, reply)
        if now.state == "sent":
            return _result("ok", f"already sent as <{now.message_id}> (by another bot process)", now, msg)
        return _result("skipped", f"not sent: {why}", now, msg)
    path = Path(reply.path)
    if path.parent.name == "new":  # keep the outbox copy equal to what is sent
        path = mail.outbox_write(path.parent.parent, path.name, msg)
    try:
        info = mail.send(msg, config.report)
    except mail.SendError as e:
        store.finish_send(reply, owner, "rendered", f"send failed: {e}")
        why = "permanent" if not e.temporary else "temporary"
        return _result("error", f"not sent ({why} SMTP failure), queued for `bot post`: {e}", store.refresh(reply),
                       msg, attempts=reply.attempts + 1)
    store.finish_send(reply, owner, "sent", info)
    store.set_path(reply, str(mail.outbox_mark_sent(path)))
    return _result("ok", f"sent <{reply.message_id}> ({info})", store.refresh(reply), msg, notes=notes)


def _lease(config: Config) -> float:
    """How long one send may take: every SMTP attempt to its deadline, the backoff between them, a margin."""
    cfg = config.report
    return cfg.smtp_timeout * (cfg.smtp_retries + 1) + cfg.smtp_backoff * (2 ** cfg.smtp_retries) + 60.0


def _settled(store: Store, reply: Reply) -> Reply:
    """The reply as the store has it now, after waiting for a send another live process is making."""
    reply = store.refresh(reply)
    while reply.lease_running():
        time.sleep(SETTLE_POLL)
        reply = store.refresh(reply)
    return reply


def _read(reply: Reply) -> EmailMessage | None:
    path = Path(reply.path)
    return mail.outbox_read(path) if path.exists() else None


def _reconcile(config: Config, store: Store, reply: Reply, on_archive: OnArchive) -> tuple[str, str] | None:
    """A "sending" left by a dead run: confirm on the archive, or decide whether a resend is safe.

    Returns the final (status, detail), or None when the reply should be sent (again).
    """
    try:
        found = on_archive(reply.message_id)
    except (OperationalError, BadInput) as e:
        return "error", f"an earlier send was interrupted and the archive cannot be asked: {e}; nothing sent"
    if found:
        store.set_state(reply, "sent", "confirmed on the archive after an interrupted send")
        return "ok", f"already sent as <{reply.message_id}> (confirmed on the archive after an interrupted send)"
    if config.report.mode != "list":
        return "error", ("an earlier send was interrupted; in author mode the reply does not reach the archive, so "
                         "it cannot be confirmed: `bot post --force` resends it")
    waited = time.time() - (reply.sending_at or 0)
    if waited < config.report.reconcile_grace:
        return "error", (f"an earlier send was interrupted {waited:.0f} s ago and the reply is not on the archive "
                         f"yet; resent only after {config.report.reconcile_grace:.0f} s")
    log.warning("<%s>: interrupted send not on the archive after %.0f s; sending again", reply.message_id, waited)
    return None


def report(config: Config, series: SeriesSummary, result: RevisionResult, arches: list[str], newest: int,
           on_archive: OnArchive) -> ReportResult:
    """Render this revision's reply; send it only when it is the newest revision (older ones are held,
    an author moved on from them)."""
    digest = verdict_digest(series, result)
    try:
        with open_store(config.paths.patchsets) as store:
            reply = store.reply(series.slug, result.version, digest)
            if reply is None:
                reply = render_reply(config, store, series, result, arches, digest)
            if result.version < newest:
                if reply.state == "rendered":
                    store.set_state(reply, "held", f"superseded by v{newest}", expect=("rendered",))
                return _result("skipped", f"rendered, not sent: superseded by v{newest}", reply)
            return deliver(config, store, reply, result.author, on_archive)
    except (ValueError, OSError) as e:  # a bad address in config or author, an unwritable outbox
        return ReportResult("error", f"report failed: {e}")


def post(config: Config, series: SeriesSummary, result: RevisionResult, on_archive: OnArchive,
         force: bool = False, resend: bool = False) -> ReportResult:
    """`bot post`: send the outbox reply recorded for this revision (force: also a held or unconfirmed one;
    resend: also one already sent)."""
    with open_store(config.paths.patchsets) as store:
        replies = store.replies(series.slug, result.version)
        if not replies:
            raise BadInput(f"nothing in the outbox for v{result.version} of {series.slug}: run `bot check`")
        return deliver(config, store, replies[-1], result.author, on_archive, force=force, resend=resend)
