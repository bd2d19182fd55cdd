"""Reply headers, threading, recipients, SMTP failure handling and the reply store (no processes)."""

from __future__ import annotations

import email
import email.policy
import os
import socket
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.config import ReportConfig
from bot.report import mail
from bot.store import MIGRATIONS, Store

SENDER = mail.parse_address("mm-review-bot <bot@review.example.org>")


def raw_msg(msgid: str, subject: str, refs: str = "") -> bytes:
    head = f"From: A <a@x.org>\nSubject: {subject}\nMessage-ID: <{msgid}>\nDate: Sun, 1 Jun 2025 12:00:00 +0000\n"
    if refs:
        head += f"In-Reply-To: <{refs.split()[-1].strip('<>')}>\nReferences: {refs}\n"
    return f"From mboxrd@z Thu Jan  1 00:00:00 1970\n{head}\nbody\n\n".encode()


def parse(msg: EmailMessage) -> EmailMessage:
    out = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert isinstance(out, EmailMessage)
    return out


def test_crlf_in_an_encoded_subject_cannot_inject_headers() -> None:
    # RFC 2047 can carry CR/LF: "=0D=0A" decodes to a line break inside the subject.
    thread = raw_msg("p1@x", "=?utf-8?q?[PATCH_1/2]_mm:_x=0D=0ABcc:_victim@evil.example?=")
    parent = mail.find_parent(thread, "p1@x", "fallback")
    assert parent.subject == "[PATCH 1/2] mm: x Bcc: victim@evil.example"
    msg = mail.build_reply("body\n", parent, SENDER, [mail.parse_address("A <a@x.org>")], [], "r@x")
    wire = msg.as_bytes()
    assert b"\nBcc:" not in wire and b"\r\nBcc:" not in wire
    assert parse(msg)["Subject"] == "Re: [PATCH 1/2] mm: x Bcc: victim@evil.example"


def test_name_with_newline_and_non_ascii_is_encoded() -> None:
    to = mail.parse_address("Zoë\r\nBcc: x@evil.example Ångström <zoe@example.org>")
    msg = mail.build_reply("body\n", mail.Parent("c@x", "Re: Re: [PATCH 0/2] mm: ünïcode", []), SENDER, [to],
                           [], "r@x")
    wire = msg.as_bytes()
    head = wire.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and b"=?utf-8?" in head
    assert b"\r\nBcc:" not in wire
    back = parse(msg)
    assert str(back["To"]) == '"Zoë Bcc: x@evil.example Ångström" <zoe@example.org>'
    assert back["Subject"] == "Re: [PATCH 0/2] mm: ünïcode"  # one "Re:", not three
    with pytest.raises(ValueError):
        mail.parse_address("no address here")


def test_threading_under_a_patch_keeps_its_references() -> None:
    thread = raw_msg("c@x", "[PATCH v2 0/2] mm: t", "<v1@x>") + raw_msg("p2@x", "[PATCH v2 2/2] mm: b",
                                                                         "<v1@x> <c@x>")
    parent = mail.find_parent(thread, "p2@x", "fallback")
    msg = parse(mail.build_reply("b\n", parent, SENDER, [SENDER], [], "r@x"))
    assert msg["In-Reply-To"] == "<p2@x>"
    assert msg["References"] == "<v1@x> <c@x> <p2@x>"
    assert msg["Subject"] == "Re: [PATCH v2 2/2] mm: b"
    assert msg["X-Mailer"] == mail.MAILER and msg["X-Bot"] and msg["Auto-Submitted"] == "auto-generated"


def test_parent_missing_from_thread_falls_back_to_the_root() -> None:
    parent = mail.find_parent(b"", "p1@x", "[PATCH 1/2] mm: a", root="c@x")
    assert (parent.subject, parent.references) == ("[PATCH 1/2] mm: a", ["c@x"])


def test_message_id_is_deterministic_and_unfolded() -> None:
    a = mail.make_msgid("20250601-a-very-long-series-slug-that-goes-on-and-on", 4, "ab" * 32, SENDER)
    assert a == mail.make_msgid("20250601-a-very-long-series-slug-that-goes-on-and-on", 4, "ab" * 32, SENDER)
    assert len(f"Message-ID: <{a}>") <= 78


def test_recipients_per_mode_and_optout() -> None:
    cfg = ReportConfig(mode="list", cc=["r@example.net", "Team <team@corp.example>"], optout=["*@corp.example"])
    author = mail.parse_address("Ada <ada@example.org>")
    to, cc, notes = mail.recipients(cfg, author, "author")
    assert [str(a) for a in to] == ["Ada <ada@example.org>"] and [a.addr_spec for a in cc] == ["r@example.net"]
    assert notes == ["Cc team@corp.example dropped: opted out (*@corp.example)"]
    _, cc, _ = mail.recipients(cfg, author, "list")
    assert [a.addr_spec for a in cc] == ["r@example.net", "linux-mm@kvack.org"]
    assert mail.opted_out("Ada@Example.ORG", ["ada@example.org"]) == "ada@example.org"
    assert mail.opted_out("ada@example.org", ["bob@example.org"]) is None


def test_bad_mode_is_a_config_error() -> None:
    from bot.errors import UsageError

    with pytest.raises(UsageError, match="mode must be"):
        ReportConfig(mode="everyone")


def test_smtp_down_retries_with_backoff_then_gives_up() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    cfg = ReportConfig(smtp_host="127.0.0.1", smtp_port=port, smtp_retries=2, smtp_backoff=0.5, smtp_timeout=2)
    slept: list[float] = []
    msg = mail.build_reply("b\n", mail.Parent("c@x", "s", []), SENDER, [SENDER], [], "r@x")
    with pytest.raises(mail.SendError) as e:
        mail.send(msg, cfg, sleep=slept.append)
    assert e.value.temporary and "failed after 3 attempts" in str(e.value)
    assert slept == [0.5, 1.0]


def test_outbox_maildir(tmp_path: Path) -> None:
    msg = mail.build_reply("b\n", mail.Parent("c@x", "s", []), SENDER, [SENDER], [], "r@x")
    path = mail.outbox_write(tmp_path / "outbox", "s.v1.abc", msg)
    assert path == tmp_path / "outbox" / "new" / "s.v1.abc" and (tmp_path / "outbox" / "tmp").is_dir()
    assert mail.outbox_read(path)["Message-ID"] == "<r@x>"
    done = mail.outbox_mark_sent(path)
    assert done == tmp_path / "outbox" / "cur" / "s.v1.abc:2,S" and not path.exists()


def test_store_states_and_compare_and_swap(tmp_path: Path) -> None:
    with Store(tmp_path / "bot.sqlite3") as store:
        assert store.version == len(MIGRATIONS)
        r = store.add_reply("s", 1, "d1", "m1@x", "/p")
        assert store.add_reply("s", 1, "d1", "other@x", "/q").message_id == "m1@x"  # the first row wins
        assert store.set_state(r, "sending", expect=("rendered",))
        assert not store.set_state(r, "sending", expect=("rendered",))  # another process got there first
        assert store.set_state(r, "sent", "250 ok")
        assert store.sent_since(time.time() - 60) == 1
        assert store.reply("s", 1, "d1").attempts == 1  # type: ignore[union-attr]
        with pytest.raises(ValueError):
            store.set_state(r, "lost")
    with Store(tmp_path / "bot.sqlite3") as again:  # reopening does not migrate twice
        assert again.version == len(MIGRATIONS) and [x.state for x in again.replies("s")] == ["sent"]


def test_claim_one_owner_lease_and_one_reply_per_revision(tmp_path: Path) -> None:
    """Exactly-once: of several claimers one wins; a live claim blocks; a claim whose owner died is free only to
    whoever reconciled it; a second reply of the same revision cannot be sent while one is."""
    import multiprocessing

    with Store(tmp_path / "bot.sqlite3") as store:
        r = store.add_reply("s", 1, "d1", "m1@x", "/p")
        me = f"{socket.gethostname()}:{os.getpid()}:a"
        assert store.claim(r, me, 60) == ""
        assert "sending by another bot process" in store.claim(r, "other:1:b", 60)
        assert store.refresh(r).lease_running()
        assert "it is sending" in store.claim(r, "other:1:b", 60, stale_ok=True)  # the lease still runs
        other = store.add_reply("s", 1, "d2", "m2@x", "/q")  # a changed verdict, same revision
        assert "v1 already has a reply sending" in store.claim(other, "other:1:b", 60)
        assert not store.finish_send(r, "not-the-owner", "sent", "250")  # only the owner ends its claim
        assert store.finish_send(r, me, "sent", "250 ok")
        assert store.refresh(r).state == "sent" and "it is sent" in store.claim(r, me, 60)
        assert "already has a reply sent" in store.claim(other, me, 60)

        dead = store.add_reply("s", 2, "d3", "m3@x", "/r")
        child = multiprocessing.get_context("fork").Process(target=lambda: None)
        child.start()
        child.join()
        gone = f"{socket.gethostname()}:{child.pid}:c"  # a process of this host that no longer exists
        assert store.claim(dead, gone, 3600) == ""
        assert not store.refresh(dead).lease_running()  # its owner is gone: the lease is void
        assert "it is sending" in store.claim(dead, me, 60)  # ...but only a reconciled claim may take it
        assert store.claim(dead, me, 60, stale_ok=True) == ""
        assert store.refresh(dead).owner == me


def test_concurrent_claims_from_processes_have_one_winner(tmp_path: Path) -> None:
    import multiprocessing

    with Store(tmp_path / "bot.sqlite3") as store:
        store.add_reply("s", 1, "d1", "m1@x", "/p")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(6) as pool:
        wins = pool.map(_claim_in_a_process, [str(tmp_path / "bot.sqlite3")] * 12)
    assert wins.count("") == 1, wins


def _claim_in_a_process(db: str) -> str:
    with Store(Path(db)) as store:
        reply = store.reply("s", 1, "d1")
        assert reply is not None
        return store.claim(reply, f"{socket.gethostname()}:{os.getpid()}:{time.monotonic_ns()}", 600)
