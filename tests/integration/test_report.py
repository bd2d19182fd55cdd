"""The report stage and `bot post` end to end: real public-inbox, a real SMTP server, the real `bot` CLI.

public-inbox-mda drops mail without the list address in To/Cc, so an author-mode reply never reaches
the archive (as on the real lore). Hence: author mode is checked by what the SMTP server received;
list mode by the reply appearing once, under the right parent, in the archive's thread.
"""

from __future__ import annotations

import gzip
import json
import socket
import sqlite3
import subprocess
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.demo.localinbox import LocalInbox
from bot.demo.writer import Patch, Revision, SeriesWriter
from bot.patches import split_mbox
from tests.conftest import Recorder, run_bot, smtp_server, write_config
from tests.mailgen import rmap_with, toy_writer


@pytest.fixture
def relay(inbox: LocalInbox) -> Iterator[tuple[int, Recorder]]:
    handler = Recorder(inbox)
    with smtp_server(handler) as port:
        yield port, handler


def h(msg: EmailMessage, name: str) -> str:
    """A header's value unfolded (long Message-IDs are folded onto a continuation line)."""
    return " ".join(str(msg.get(name, "")).split())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def report_config(tmp_path: Path, inbox: LocalInbox, port: int, mode: str, **extra: object) -> Path:
    path = write_config(tmp_path / "config.toml", inbox.url)  # type: ignore[attr-defined]
    keys = {"mode": mode, "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_timeout": 10, "smtp_retries": 1,
            "smtp_backoff": 0.1, "sender": "mm-review-bot <bot@review.example.org>",
            "operator": "ops@review.example.org", "reconcile_grace": 0.0, **extra}
    lines = [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    path.write_text(path.read_text() + "[report]\n" + "\n".join(lines) + "\n")
    return path


def bot(config: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
        ) -> subprocess.CompletedProcess[str]:
    return run_bot(*args, "--config", str(config), cwd=config.parent, timeout=timeout, env=env)


def check(config: Path, msgid: str, env: dict[str, str] | None = None) -> dict:
    proc = bot(config, "check", msgid, "--stages", "fetch,report", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def thread(inbox: LocalInbox, msgid: str) -> list[EmailMessage]:
    url = f"{inbox.url}/linux-mm/{msgid}/t.mbox.gz"  # type: ignore[attr-defined]
    with urllib.request.urlopen(url, timeout=30) as r:
        return split_mbox(gzip.decompress(r.read()))


def replies_in(msgs: list[EmailMessage]) -> list[EmailMessage]:
    return [m for m in msgs if str(m.get("Message-ID", "")).strip().startswith("<mm-review-bot.")]


def series(writer: SeriesWriter, title: str, cover: bool = True) -> list[EmailMessage]:
    return writer.write(Revision(1, title, [
        Patch(f"mm/rmap: {title}", files={"mm/rmap.c": rmap_with("nr_pages > 1")}),
        Patch(f"mm: note for {title}", files={"mm/note.c": "/* note */\n"}),
    ], cover=cover)).messages()


def db_rows(config: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(config.parent / "patchsets" / "bot.sqlite3")
    db.row_factory = sqlite3.Row
    return db.execute("SELECT * FROM replies").fetchall()


def test_author_mode_sends_one_reply_to_the_author(tmp_path: Path, inbox: LocalInbox, relay, post,
                                                   writer: SeriesWriter) -> None:
    port, rec = relay
    post(series(writer, "author mode"))
    config = report_config(tmp_path, inbox, port, "author", cc=["reviewer@example.net"])
    out = check(config, writer.msgid(1, 0))
    stage = out["revisions"][0]["stages"]["report"]
    assert stage["status"] == "ok" and stage["state"] == "sent", stage
    (msg,) = rec.received
    assert h(msg, "To") == "Ada Lovelace <ada@example.org>"
    assert h(msg, "Cc") == "reviewer@example.net"  # no list in author mode
    assert h(msg, "Subject") == "Re: [PATCH 0/2] author mode"
    assert h(msg, "In-Reply-To") == f"<{writer.msgid(1, 0)}>"
    assert h(msg, "References") == f"<{writer.msgid(1, 0)}>"
    assert h(msg, "Message-ID") == f"<{stage['message_id']}>"
    body = msg.get_content().replace("\r\n", "\n")
    assert body.startswith("mm-review-bot: v1 not applied (apply not run)\n")
    assert "not built" not in body and "boot" not in body.split("\n-- \n")[0]  # stages not run: not told
    page = tmp_path.resolve() / "dashboard" / "series" / out["series"]["slug"] / "index.html"
    assert f"  {page} (section v1)\n" in body  # no [report] dashboard_url: where the files are...
    assert 'id="v1"' in page.read_text()  # ... and `bot check` wrote them
    assert "ops@review.example.org" in body
    # rerun: nothing sent again
    again = check(config, writer.msgid(1, 0))
    assert again["revisions"][0]["stages"]["report"]["detail"].startswith("already sent")
    assert len(rec.received) == 1
    (row,) = db_rows(config)
    assert row["state"] == "sent" and row["attempts"] == 1
    assert Path(row["path"]).parent.name == "cur"


def test_list_mode_reply_lands_once_under_the_cover_letter(tmp_path: Path, inbox: LocalInbox, relay, post,
                                                           writer: SeriesWriter) -> None:
    port, rec = relay
    post(series(writer, "list mode"))
    config = report_config(tmp_path, inbox, port, "list")
    out = check(config, writer.msgid(1, 0))
    mid = out["revisions"][0]["stages"]["report"]["message_id"]
    check(config, writer.msgid(1, 1))  # a second run, asked by a patch's Message-ID
    (reply,) = replies_in(thread(inbox, writer.msgid(1, 0)))
    assert h(reply, "Message-ID") == f"<{mid}>"
    assert h(reply, "In-Reply-To") == f"<{writer.msgid(1, 0)}>"
    assert "linux-mm@kvack.org" in h(reply, "Cc")
    assert len(rec.received) == 1


def test_smtp_down_then_refusing_then_up(tmp_path: Path, inbox: LocalInbox, relay, post,
                                         writer: SeriesWriter) -> None:
    port, rec = relay
    post(series(writer, "smtp trouble"))
    down = report_config(tmp_path, inbox, free_port(), "author")
    stage = check(down, writer.msgid(1, 0))["revisions"][0]["stages"]["report"]
    assert stage["status"] == "error" and "queued" in stage["detail"] and "failed after 2 attempts" in stage["detail"]
    assert db_rows(down)[0]["state"] == "rendered"  # still queued, not lost
    config = report_config(tmp_path, inbox, port, "author")
    rec.answer = "451 4.3.0 try again later"
    proc = bot(config, "post", writer.msgid(1, 0))
    assert proc.returncode == 3 and "temporary SMTP failure" in proc.stdout, proc.stdout + proc.stderr
    rec.answer = "554 5.7.1 rejected"
    proc = bot(config, "post", writer.msgid(1, 0))
    assert proc.returncode == 3 and "permanent SMTP failure" in proc.stdout
    rec.answer = None
    proc = bot(config, "post", writer.msgid(1, 0))
    assert proc.returncode == 0 and "sent <mm-review-bot." in proc.stdout, proc.stdout + proc.stderr
    assert len(rec.received) == 1
    assert db_rows(config)[0]["attempts"] == 4  # one per run that tried: down, 451, 554, sent
    proc = bot(config, "post", writer.msgid(1, 0))
    assert "already sent" in proc.stdout and len(rec.received) == 1
    proc = bot(config, "post", writer.msgid(1, 0), "--force")  # --force never sends a sent reply again
    assert proc.returncode == 0 and "--resend" in proc.stdout and len(rec.received) == 1, proc.stdout
    proc = bot(config, "post", writer.msgid(1, 0), "--resend")
    assert proc.returncode == 0 and len(rec.received) == 2  # --resend resends, on purpose


def test_killed_between_send_and_record_posts_once(tmp_path: Path, inbox: LocalInbox, relay, post,
                                                   writer: SeriesWriter) -> None:
    port, rec = relay
    post(series(writer, "killed sender"))
    config = report_config(tmp_path, inbox, port, "list")
    proc = bot(config, "check", writer.msgid(1, 0), "--stages", "fetch,report", env={"BOT_TEST_KILL_AFTER_SEND": "1"})
    assert proc.returncode == -9, proc.stderr  # a real SIGKILL right after the SMTP server said 250
    assert len(rec.received) == 1
    (row,) = db_rows(config)
    assert row["state"] == "sending"
    proc = bot(config, "post", writer.msgid(1, 0))
    assert proc.returncode == 0 and "confirmed on the archive" in proc.stdout, proc.stdout + proc.stderr
    again = check(config, writer.msgid(1, 0))
    assert again["revisions"][0]["stages"]["report"]["state"] == "sent"
    assert len(rec.received) == 1
    assert len(replies_in(thread(inbox, writer.msgid(1, 0)))) == 1


def test_killed_in_author_mode_is_not_resent_without_force(tmp_path: Path, inbox: LocalInbox, relay, post,
                                                           writer: SeriesWriter) -> None:
    port, rec = relay
    post(series(writer, "killed author mode"))
    config = report_config(tmp_path, inbox, port, "author")
    proc = bot(config, "check", writer.msgid(1, 0), "--stages", "fetch,report", env={"BOT_TEST_KILL_AFTER_SEND": "1"})
    assert proc.returncode == -9
    proc = bot(config, "post", writer.msgid(1, 0))
    assert proc.returncode == 3 and "cannot be confirmed" in proc.stdout
    assert len(rec.received) == 1


def test_no_cover_letter_replies_to_patch_1(tmp_path: Path, inbox: LocalInbox, relay, post,
                                            writer: SeriesWriter) -> None:
    port, _ = relay
    post(series(writer, "coverless", cover=False))
    config = report_config(tmp_path, inbox, port, "list")
    check(config, writer.msgid(1, 2))
    (reply,) = replies_in(thread(inbox, writer.msgid(1, 1)))
    assert h(reply, "In-Reply-To") == f"<{writer.msgid(1, 1)}>"
    assert h(reply, "References") == f"<{writer.msgid(1, 1)}>"
    assert h(reply, "Subject") == "Re: [PATCH 1/2] mm/rmap: coverless"


def test_non_ascii_author_name_encoded(tmp_path: Path, inbox: LocalInbox, relay, post) -> None:
    port, rec = relay
    writer = toy_writer(tmp_path, "nonascii", author="Zoë Ångström-Łukasz <zoe@example.org>")
    post(series(writer, "non-ascii author"))
    config = report_config(tmp_path, inbox, port, "list")
    check(config, writer.msgid(1, 0))
    (msg,) = rec.received
    assert h(msg, "To") == "Zoë Ångström-Łukasz <zoe@example.org>"
    (reply,) = replies_in(thread(inbox, writer.msgid(1, 0)))
    raw = reply.as_bytes()
    assert b"=?utf-8?" in raw.split(b"\n\n", 1)[0]  # RFC 2047 on the wire, not raw UTF-8 headers
    assert str(h(reply, "To")) == "Zoë Ångström-Łukasz <zoe@example.org>"


def test_opted_out_author_gets_nothing(tmp_path: Path, inbox: LocalInbox, relay, post,
                                       writer: SeriesWriter) -> None:
    port, rec = relay
    post(series(writer, "opted out"))
    config = report_config(tmp_path, inbox, port, "list", optout=["*@EXAMPLE.org"])
    stage = check(config, writer.msgid(1, 0))["revisions"][0]["stages"]["report"]
    assert stage["status"] == "skipped" and "opted out (*@EXAMPLE.org)" in stage["detail"]
    (row,) = db_rows(config)
    assert row["state"] == "held" and "opted out" in row["reason"]
    proc = bot(config, "post", writer.msgid(1, 0), "--force")
    assert "opted out" in proc.stdout
    assert rec.received == []


def test_dry_run_writes_the_outbox_only(tmp_path: Path, inbox: LocalInbox, relay, post,
                                        writer: SeriesWriter) -> None:
    port, rec = relay
    post(series(writer, "dry run"))
    config = report_config(tmp_path, inbox, port, "dry-run")
    stage = check(config, writer.msgid(1, 0))["revisions"][0]["stages"]["report"]
    assert stage["status"] == "ok" and stage["detail"].startswith("dry-run: reply written to ")
    path = Path(stage["outbox"])
    assert path.parent == config.parent / "patchsets" / "outbox" / "new"
    assert b"In-Reply-To: <" + writer.msgid(1, 0).encode() + b">" in path.read_bytes()
    proc = bot(config, "post", writer.msgid(1, 0))
    assert proc.returncode == 2 and "dry-run" in proc.stderr
    assert rec.received == []
