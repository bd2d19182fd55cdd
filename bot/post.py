"""The report stage and `bot post`: render the reply into the outbox, then send it exactly once.

"Better to not send an email at all than to send it multiple times" (syzbot): the database records
"sending" before the SMTP transaction and "sent" after it. A run that finds "sending" (the previous
one died in between) first looks for the Message-ID on the archive; only a reply that is provably
not there is sent again, and in author mode (the reply never reaches the archive) only with --force.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from bot import mail
from bot.config import Config
from bot.errors import BadInput, OperationalError, UsageError
from bot.report import Context, blamed_patch, render, verdict_digest
from bot.results import RevisionResult, StageResult, revision_dir
from bot.store import Reply, Store, open_store

log = logging.getLogger(__name__)


def context(config: Config) -> Context:
    t = config.tree
    tree = t.remote if t.source == "git" else f"Debian {t.debian_package} ({t.debian_suite}), mm branches: " + \
        ", ".join(t.branches)
    return Context(operator=config.report.operator, mode=config.report.mode, tree=tree,
                   list_address=config.report.list_address)


def outbox_dir(config: Config) -> Path:
    return config.paths.patchsets / "outbox"


def _addressing(config: Config, author: str) -> tuple[list[Any], list[Any], list[str]]:
    # A dry run is addressed as author mode would be: the preview shows what opting in would send.
    mode = "author" if config.report.mode == "dry-run" else config.report.mode
    return mail.recipients(config.report, mail.parse_address(author), mode)


def render_reply(config: Config, store: Store, series: dict[str, Any], result: RevisionResult,
                 arches: list[str], digest: str) -> Reply:
    """Render this revision's reply into the outbox and record it (state rendered); pure apart from that."""
    data = result.to_json()
    body = render(data, series, context(config), arches)
    blamed = blamed_patch(data)
    patch = next((p for p in result.patches if p.index == blamed), None)
    parent_id, fallback = (patch.message_id, patch.subject) if patch else (result.message_id, result.subject)
    thread_path = revision_dir(config.paths.patchsets, series["slug"], result.version) / "thread.mbox"
    thread = thread_path.read_bytes() if thread_path.exists() else b""
    parent = mail.find_parent(thread, parent_id, fallback, root=result.message_id)
    sender = mail.parse_address(config.report.sender)
    to, cc, _ = _addressing(config, result.author)
    msgid = mail.make_msgid(series["slug"], result.version, digest, sender)
    msg = mail.build_reply(body, parent, sender, to, cc, msgid)
    path = mail.outbox_write(outbox_dir(config), f"{series['slug']}.v{result.version}.{digest[:12]}", msg)
    return store.add_reply(series["slug"], result.version, digest, msgid, str(path))


def _extra(reply: Reply, msg: Any | None = None, **more: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {"message_id": reply.message_id, "state": reply.state, "outbox": reply.path,
                             "digest": reply.digest[:16]}
    if msg is not None:
        extra.update(to=str(msg.get("To", "")), cc=str(msg.get("Cc", "")), in_reply_to=str(msg["In-Reply-To"]))
    return extra | more


def _on_archive(config: Config, msgid: str) -> bool:
    from bot.lore import Archive, b4_session  # late: b4 is heavy and only needed after a crash

    with b4_session(config):
        return Archive(config).has_message(msgid)


def deliver(config: Config, store: Store, reply: Reply, author: str, force: bool = False) -> StageResult:
    """Send one recorded reply per policy, at most once; the StageResult says what happened and why."""
    cfg = config.report
    path = Path(reply.path)
    msg = mail.outbox_read(path) if path.exists() else None
    if msg is None:
        return StageResult("error", f"outbox message {path} is missing; rerun `bot check`", _extra(reply))
    hit = mail.opted_out(mail.parse_address(author).addr_spec, cfg.optout)
    if hit:
        if reply.state != "sent":
            store.set_state(reply, "held", f"author opted out ({hit})")
        return StageResult("skipped", f"not sent: the author opted out ({hit})", _extra(reply, msg))
    if reply.state == "sent" and not force:
        return StageResult("ok", f"already sent as <{reply.message_id}>", _extra(reply, msg))
    if reply.state == "held" and not force:
        return StageResult("skipped", f"not sent: {reply.reason}", _extra(reply, msg))
    if cfg.mode == "dry-run":
        return StageResult("ok", f"dry-run: reply written to {path} (set [report] mode to send)", _extra(reply, msg))
    if reply.state == "sending" and not force:
        outcome = _reconcile(config, store, reply)
        if outcome is not None:
            return StageResult(outcome.status, outcome.detail, _extra(reply, msg))
    recent = store.sent_since(time.time() - 3600)
    if recent >= cfg.max_per_hour:
        return StageResult("skipped", f"rate limit: {recent} replies sent in the last hour (max_per_hour "
                           f"{cfg.max_per_hour}); queued, `bot post` sends it later", _extra(reply, msg))

    to, cc, notes = _addressing(config, author)
    mail.readdress(msg, to, cc)
    if path.parent.name == "new":  # keep the outbox copy equal to what is sent
        path = mail.outbox_write(path.parent.parent, path.name, msg)
    expect = ("rendered", "sending", "sent", "held") if force else ("rendered", "sending")
    if not store.set_state(reply, "sending", expect=expect):
        return StageResult("skipped", "another bot process is sending this reply", _extra(reply, msg))
    try:
        info = mail.send(msg, cfg)
    except mail.SendError as e:
        store.set_state(reply, "rendered", f"send failed: {e}")
        why = "permanent" if not e.temporary else "temporary"
        return StageResult("error", f"not sent ({why} SMTP failure), queued for `bot post`: {e}",
                           _extra(reply, msg, attempts=reply.attempts + 1))
    store.set_state(reply, "sent", info)
    store.set_path(reply, str(mail.outbox_mark_sent(path)))
    return StageResult("ok", f"sent <{reply.message_id}> ({info})", _extra(reply, msg, notes=notes))


def _reconcile(config: Config, store: Store, reply: Reply) -> StageResult | None:
    """A "sending" left by a dead run: confirm on the archive, or decide whether a resend is safe.

    Returns the final outcome, or None when the reply should be sent (again).
    """
    try:
        found = _on_archive(config, reply.message_id)
    except (OperationalError, BadInput) as e:
        return StageResult("error", f"an earlier send was interrupted and the archive cannot be asked: {e}; "
                           "nothing sent")
    if found:
        store.set_state(reply, "sent", "confirmed on the archive after an interrupted send")
        return StageResult("ok", f"already sent as <{reply.message_id}> (confirmed on the archive after an "
                           "interrupted send)")
    if config.report.mode != "list":
        return StageResult("error", "an earlier send was interrupted; in author mode the reply does not reach "
                           "the archive, so it cannot be confirmed: `bot post --force` resends it")
    waited = time.time() - (reply.sending_at or 0)
    if waited < config.report.reconcile_grace:
        return StageResult("error", f"an earlier send was interrupted {waited:.0f} s ago and the reply is not on "
                           f"the archive yet; resent only after {config.report.reconcile_grace:.0f} s")
    log.warning("<%s>: interrupted send not on the archive after %.0f s; sending again", reply.message_id, waited)
    return None


def run_stage(config: Config, series: dict[str, Any], result: RevisionResult, results: list[RevisionResult],
              arches: list[str]) -> None:
    """Pipeline runner: render every revision's reply; send only the newest revision's (older ones are held,
    an author moved on from them)."""
    digest = verdict_digest(series, result.to_json())
    newest = max(r.version for r in results if r.stages.get("fetch", {}).get("status") == "ok")
    try:
        with open_store(config.paths.patchsets) as store:
            reply = store.reply(series["slug"], result.version, digest)
            if reply is None:
                reply = render_reply(config, store, series, result, arches, digest)
            if result.version < newest:
                if reply.state == "rendered":
                    store.set_state(reply, "held", f"superseded by v{newest}", expect=("rendered",))
                stage = StageResult("skipped", f"rendered, not sent: superseded by v{newest}", _extra(reply))
            else:
                stage = deliver(config, store, reply, result.author)
    except (ValueError, OSError) as e:  # a bad address in config or author, an unwritable outbox
        stage = StageResult("error", f"report failed: {e}")
    result.set_stage("report", stage)


def post(config: Config, target: str, force: bool = False) -> tuple[StageResult, RevisionResult, Path]:
    """`bot post`: send (or with force, resend) the outbox reply for the revision target belongs to."""
    from bot import fetch
    from bot.lore import parse_msgid
    from bot.results import save_revision

    if config.report.mode == "dry-run":
        raise UsageError("[report] mode is \"dry-run\": nothing is sent; set mode = \"author\" or \"list\"")
    msgid = parse_msgid(target)
    sdir = fetch.find_known(config.paths.patchsets, msgid)
    if sdir is None:
        raise BadInput(f"<{msgid}> is not in any fetched series: run `bot check` first")
    summary, results = fetch.load(sdir)
    result = next((r for r in results if msgid == r.message_id or msgid in {p.message_id for p in r.patches}),
                  results[-1])
    with open_store(config.paths.patchsets) as store:
        replies = store.replies(summary["slug"], result.version)
        if not replies:
            raise BadInput(f"nothing in the outbox for v{result.version} of {summary['slug']}: run `bot check`")
        stage = deliver(config, store, replies[-1], result.author, force=force)
    result.set_stage("report", stage)
    save_revision(revision_dir(config.paths.patchsets, summary["slug"], result.version) / "result.json", result)
    return stage, result, sdir
