"""The one message a b4 check command gets on stdin, read without the stage packages (no b4, no unidiff: the
answer for a reviewed message must come in well under half a second).

Headers are read with the compat32 policy, which never raises on a hostile value (an encoded CR/LF in a
display name): b4 hands us whatever the archive holds.
"""

from __future__ import annotations

import email
import email.header
import email.message
import re
from dataclasses import dataclass, field

_DIFF_FILE = re.compile(r"^diff --git a/(\S+) b/(\S+)$", re.M)
_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@ ?(.*)$", re.M)
_NAME = re.compile(r"[A-Za-z_]\w*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class BadMessage(ValueError):
    """stdin is not a message the bot can look up; the text says why, in one line."""


@dataclass
class Incoming:
    message_id: str
    subject: str
    author: str
    date: str
    body: str
    files: list[str] = field(default_factory=list)  # paths its diff touches (old and new names)
    functions: dict[str, set[str]] = field(default_factory=dict)  # path -> functions named in its hunk headers


def _header(msg: email.message.Message, name: str) -> str:
    value = msg.get(name)
    if value is None:
        return ""
    try:
        text = str(email.header.make_header(email.header.decode_header(str(value))))
    except (UnicodeError, LookupError, ValueError, email.errors.HeaderParseError):
        text = str(value)
    return " ".join(_CONTROL.sub(" ", text).split())


def clean_msgid(text: str) -> str | None:
    """`<id@host>` -> `id@host`; None when it is not a Message-ID (as bot.fetch.parse_msgid judges one)."""
    text = " ".join(text.split()).strip().strip("<>").strip()
    return text if text and "@" in text and not any(c.isspace() for c in text) else None


def _body(msg: email.message.Message) -> str:
    part: email.message.Message | None = msg
    if msg.is_multipart():
        part = next((p for p in msg.walk() if p.get_content_type() == "text/plain"), None)
    if part is None:
        return ""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return payload.decode(part.get_content_charset() or "utf-8", "replace")


def touched(body: str) -> tuple[list[str], dict[str, set[str]]]:
    """The files a patch mail's diff touches, and per file the functions its hunk headers name."""
    files: list[str] = []
    functions: dict[str, set[str]] = {}
    starts = list(_DIFF_FILE.finditer(body))
    for i, m in enumerate(starts):
        for path in dict.fromkeys((m.group(1), m.group(2))):
            if path not in files:
                files.append(path)
        chunk = body[m.end(): starts[i + 1].start() if i + 1 < len(starts) else len(body)]
        for section in _HUNK.findall(chunk):
            head = section.split("(", 1)
            names = _NAME.findall(head[0]) if len(head) == 2 else []
            if names:
                functions.setdefault(m.group(2), set()).add(names[-1])
    return files, functions


def read(raw: bytes, need_id: bool = True) -> Incoming:
    """The message on stdin; BadMessage when it is not an RFC 2822 message or (need_id) has no Message-ID."""
    if not raw.strip():
        raise BadMessage("not an RFC 2822 message: stdin is empty")
    msg = email.message_from_bytes(raw)
    if not msg.keys():
        raise BadMessage("not an RFC 2822 message: no header fields before the body")
    value = msg.get("Message-ID")
    if value is None and need_id:
        raise BadMessage("the message has no Message-ID header")
    msgid = clean_msgid(str(value)) if value is not None else ""
    if msgid is None and need_id:
        raise BadMessage(f"the message's Message-ID is not one: {_CONTROL.sub(' ', str(value))[:80]!r}")
    body = _body(msg)
    files, functions = touched(body)
    return Incoming(msgid or "", _header(msg, "Subject"), _header(msg, "From"), _header(msg, "Date"), body, files,
                    functions)
