"""Reply messages: build them (RFC 5322, threaded under the right parent), keep them in the outbox
Maildir (patchsets/outbox/), and hand them to SMTP. The one module that talks SMTP.
"""

from __future__ import annotations

import email.policy
import email.utils
import fnmatch
import logging
import os
import re
import signal
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

from bot import retry
from bot.config import ReportConfig
from bot.patches import split_mbox
from bot.results import write_bytes_atomic

log = logging.getLogger(__name__)
MAILER = "mm-review-bot 0.1"
# Test hook: SIGKILL this process right after the SMTP server accepted a message, before the
# database records it, to prove that a restart does not post twice. Never set in production.
KILL_AFTER_SEND = "BOT_TEST_KILL_AFTER_SEND"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class SendError(Exception):
    def __init__(self, message: str, temporary: bool) -> None:
        super().__init__(message)
        self.temporary = temporary


def clean_header(text: str) -> str:
    """One line, no control characters: a CR/LF in a subject or name must not start a new header."""
    return re.sub(r"\s+", " ", _CONTROL.sub(" ", text)).strip()


def parse_address(text: str) -> Address:
    """`Name <addr>` as an Address; the display name is RFC 2047-encoded when written (non-ASCII)."""
    text = clean_header(text)
    # "Name <addr>" split by hand: parseaddr() reads a ':' in a name as an address group.
    m = re.fullmatch(r"(.*?)\s*<([^<>\s]+)>", text)
    name, addr = (m.group(1).strip().strip('"').strip(), m.group(2)) if m else email.utils.parseaddr(text)
    if "@" not in addr or any(c.isspace() or c in "<>\"," for c in addr):
        raise ValueError(f"not a mail address: {text!r}")
    user, domain = addr.rsplit("@", 1)
    return Address(display_name=clean_header(name), username=user, domain=domain)


def opted_out(addr: str, patterns: list[str]) -> str | None:
    """The opt-out entry matching addr (exact address or fnmatch pattern, case-insensitive), else None."""
    for p in patterns:
        if fnmatch.fnmatchcase(addr.lower(), p.strip().strip("<>").lower()):
            return p
    return None


@dataclass
class Parent:
    msgid: str
    subject: str
    references: list[str]


def _ids(text: str | None) -> list[str]:
    return re.findall(r"<([^<>\s]+)>", text or "")


def find_parent(thread: bytes, msgid: str, fallback_subject: str, root: str | None = None) -> Parent:
    """The message to reply to, from the revision's thread.mbox: its subject and References chain."""
    for msg in split_mbox(thread):
        if _ids(str(msg.get("Message-ID", ""))) == [msgid]:
            refs = _ids(str(msg.get("References", "")))
            irt = _ids(str(msg.get("In-Reply-To", "")))
            if irt and irt[-1] not in refs:  # some mailers set only In-Reply-To
                refs.append(irt[-1])
            return Parent(msgid, clean_header(str(msg.get("Subject", fallback_subject))), refs)
    log.warning("<%s> not in the thread mbox; threading by the revision's root only", msgid)
    return Parent(msgid, clean_header(fallback_subject), [root] if root and root != msgid else [])


def reply_subject(subject: str) -> str:
    subject = clean_header(subject)
    while re.match(r"(?i)re:\s*", subject):
        subject = re.sub(r"(?i)^re:\s*", "", subject)
    return f"Re: {subject}"


def make_msgid(series: str, revision: int, digest: str, sender: Address) -> str:
    """Deterministic, so a crashed run and its restart agree on what the reply is called."""
    # The digest covers the series slug; short enough that "Message-ID: <...>" is never folded.
    del series
    return f"mm-review-bot.v{revision}.{digest[:20]}@{sender.domain}"


def recipients(cfg: ReportConfig, author: Address, mode: str) -> tuple[list[Address], list[Address], list[str]]:
    """(To, Cc, notes): To the author; Cc the configured cc, plus the list in list mode; opt-outs dropped."""
    notes = []
    cc = [parse_address(a) for a in cfg.cc]
    if mode == "list":
        cc.append(parse_address(cfg.list_address))
    kept = []
    for a in cc:
        hit = opted_out(a.addr_spec, cfg.optout)
        if hit:
            notes.append(f"Cc {a.addr_spec} dropped: opted out ({hit})")
        elif a.addr_spec.lower() != author.addr_spec.lower() and a not in kept:
            kept.append(a)
    return [author], kept, notes


def build_reply(body: str, parent: Parent, sender: Address, to: list[Address], cc: list[Address],
                msgid: str, date: float | None = None) -> EmailMessage:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = reply_subject(parent.subject)
    msg["Date"] = email.utils.formatdate(date, localtime=False)
    msg["Message-ID"] = f"<{msgid}>"
    msg["In-Reply-To"] = f"<{parent.msgid}>"
    msg["References"] = " ".join(f"<{r}>" for r in [*parent.references, parent.msgid])
    msg["X-Mailer"] = MAILER
    msg["X-Bot"] = "mm-review-bot (automated review; see the footer to opt out)"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: vacation responders must not answer
    msg.set_content(body, charset="utf-8", cte="quoted-printable" if not body.isascii() else "7bit")
    return msg


def readdress(msg: EmailMessage, to: list[Address], cc: list[Address]) -> None:
    del msg["To"]
    del msg["Cc"]
    msg["To"] = to
    if cc:
        msg["Cc"] = cc


def envelope(msg: EmailMessage) -> list[str]:
    return [addr for _, addr in email.utils.getaddresses([str(v) for h in ("To", "Cc") for v in msg.get_all(h, [])])]


# ---- the outbox Maildir ----


def outbox_write(outbox: Path, name: str, msg: EmailMessage) -> Path:
    """new/<name>, written atomically (Maildir readers never see half a message)."""
    for sub in ("tmp", "new", "cur"):
        (outbox / sub).mkdir(parents=True, exist_ok=True)
    path = outbox / "new" / name
    write_bytes_atomic(path, msg.as_bytes(policy=email.policy.SMTP))
    return path


def outbox_read(path: Path) -> EmailMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.SMTP)
    assert isinstance(msg, EmailMessage)
    return msg


def outbox_mark_sent(path: Path) -> Path:
    """Maildir convention: new/<name> -> cur/<name>:2,S once sent (a reader sees it as done)."""
    if path.parent.name != "new" or not path.exists():
        return path
    dest = path.parent.parent / "cur" / f"{path.name}:2,S"
    os.replace(path, dest)
    return dest


# ---- SMTP ----


def _send_once(msg: EmailMessage, cfg: ReportConfig, sender: str, rcpts: list[str]) -> str:
    """One SMTP transaction within [report] smtp_timeout, all of it (a server that drips its answers is cut)."""
    smtp = smtplib.SMTP(timeout=cfg.smtp_timeout)

    def cancel() -> None:
        if smtp.sock is not None:
            smtp.sock.close()

    try:
        return retry.within(cfg.smtp_timeout, f"SMTP {cfg.smtp_host}:{cfg.smtp_port}",
                            lambda: _transaction(smtp, msg, cfg, sender, rcpts), cancel)
    finally:
        smtp.close()


def _transaction(smtp: smtplib.SMTP, msg: EmailMessage, cfg: ReportConfig, sender: str, rcpts: list[str]) -> str:
    """Connect, send, quit; retry.Retry for what may work next time, SendError(temporary=False) otherwise."""
    try:
        smtp.connect(cfg.smtp_host, cfg.smtp_port)
        refused = smtp.send_message(msg, from_addr=sender, to_addrs=rcpts)
        smtp.quit()
    except smtplib.SMTPResponseException as e:
        text = e.smtp_error.decode(errors="replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
        if e.smtp_code >= 500:
            raise SendError(f"{cfg.smtp_host}:{cfg.smtp_port} refused the message: {e.smtp_code} {text}",
                            False) from e
        raise retry.Retry(f"{e.smtp_code} {text}") from e
    except smtplib.SMTPRecipientsRefused as e:
        if all(c >= 500 for c, _ in e.recipients.values()):
            raise SendError(f"{cfg.smtp_host}:{cfg.smtp_port}: recipients refused: {e.recipients}", False) from e
        raise retry.Retry(f"recipients refused: {e.recipients}") from e
    except (smtplib.SMTPException, OSError) as e:
        raise retry.Retry(f"{type(e).__name__}: {e}") from e
    if os.environ.get(KILL_AFTER_SEND):
        os.kill(os.getpid(), signal.SIGKILL)
    if refused:
        log.warning("%s: some recipients refused: %s", msg["Message-ID"], refused)
    return f"accepted by {cfg.smtp_host}:{cfg.smtp_port}" + (f" (refused: {', '.join(refused)})" if refused else "")


def send(msg: EmailMessage, cfg: ReportConfig, sleep: Callable[[float], None] = time.sleep) -> str:
    """Send, retrying temporary failures with backoff; SendError when it gives up.

    A 5xx answer is permanent (retrying will not help); connection trouble and 4xx are temporary.
    """
    sender = email.utils.parseaddr(cfg.sender)[1]
    rcpts = envelope(msg)
    try:
        return retry.call(f"SMTP {cfg.smtp_host}:{cfg.smtp_port}", lambda: _send_once(msg, cfg, sender, rcpts),
                          retries=cfg.smtp_retries, backoff=cfg.smtp_backoff, sleep=sleep)
    except retry.GaveUp as e:
        raise SendError(str(e), True) from e
