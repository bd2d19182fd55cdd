"""Hostile mail and busy operators (issue: no traceback, no lost or mixed-up series, never two replies).

Each case the probe found is a test here: an encoded CR/LF in a display name, an absurd version, two
same-subject series by different authors on one day, a shell payload in a Message-ID (see also
tests/unit/test_report_render.py), concurrent checks/daemon/posts, a broken gzip answer, a server that drips,
rich markup in a subject; and a full disk. Real public-inbox, real SMTP (aiosmtpd), the real `bot` CLI.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.demo.localinbox import LocalInbox
from bot.demo.writer import Patch, Revision, SeriesWriter, set_headers
from tests.conftest import BOT, Recorder, bot_env, run_bot, smtp_server, write_config
from tests.mailgen import rmap_with, toy_writer

NOW = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)


@pytest.fixture
def relay(inbox: LocalInbox) -> Iterator[tuple[int, Recorder]]:
    handler = Recorder(inbox)
    with smtp_server(handler) as port:
        yield port, handler


def config_for(tmp_path: Path, url: str, port: int | None = None, mode: str = "dry-run", **lore: object) -> Path:
    path = write_config(tmp_path / "config.toml", url, **lore)  # type: ignore[arg-type]
    report = {"mode": mode, "smtp_host": "127.0.0.1", "smtp_port": port or 25, "smtp_timeout": 10,
              "smtp_retries": 1, "smtp_backoff": 0.1, "sender": "mm-review-bot <bot@review.example.org>",
              "reconcile_grace": 0.0}
    path.write_text(path.read_text() + "[report]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in report.items()))
    return path


def bot(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_bot(*args, "--config", str(config), cwd=config.parent, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """A failing `bot` says why in exactly one line, `bot: ...`, its last (after any » progress lines), never
    with a traceback; and a short one (a 300-digit version is clipped)."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = proc.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("bot: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and len(errors[0]) < 400, proc.stderr
    return errors[0]


def lone(writer: SeriesWriter, title: str, version: int = 1, **rev: object) -> Revision:
    return Revision(version, title, [Patch(f"mm/rmap: {title}", files={"mm/rmap.c": rmap_with("nr_pages > 1")})],
                    cover=False, **rev)  # type: ignore[arg-type]


def deliver(inbox: LocalInbox, mails: list[str | bytes]) -> None:
    for m in mails:
        inbox.deliver(m.encode() if isinstance(m, str) else m)
    inbox.wait_searchable(_msgid(mails[-1]))


def _msgid(mail: str | bytes) -> str:
    text = mail.decode(errors="replace") if isinstance(mail, bytes) else mail
    line = next(ln for ln in text.splitlines() if ln.lower().startswith("message-id:"))
    return line.split(":", 1)[1].strip().strip("<>")


def raw_mail(msgid: str, subject: str, body: str, sender: str, refs: str = "") -> bytes:
    head = (f"From: {sender}\nTo: linux-mm@kvack.org\nSubject: {subject}\n"
            f"Date: {NOW.strftime('%a, %d %b %Y %H:%M:%S +0000')}\nMessage-ID: <{msgid}>\n")
    if refs:
        head += f"In-Reply-To: <{refs}>\nReferences: <{refs}>\n"
    return (head + "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n" + body).encode()


# ---------------------------------------------------------------- 1. CR/LF in a display name


def test_encoded_newline_in_a_display_name_is_data(tmp_path: Path, inbox: LocalInbox, writer: SeriesWriter
                                                   ) -> None:
    posting = writer.write(lone(writer, "troll thread"))
    root = posting.msgids[-1]
    troll = raw_mail(f"troll.{root}", "Re: [PATCH 1/1] mm/rmap: troll thread", "I object.\n",
                     "=?utf-8?q?Troll=0ABcc:_x@example.org?= <troll@example.org>", refs=root)
    deliver(inbox, [*posting.mails, troll])
    config = config_for(tmp_path, inbox.url)  # type: ignore[attr-defined]
    proc = bot(config, "check", root, "--stages", "fetch,report", "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    (rev,) = json.loads(proc.stdout)["revisions"]
    assert rev["stages"]["fetch"]["status"] == "ok" and rev["stages"]["report"]["status"] == "ok"


def test_encoded_newline_in_the_authors_name(tmp_path: Path, inbox: LocalInbox, relay) -> None:
    port, rec = relay
    troll = toy_writer(tmp_path, "trollauthor")
    posting = troll.write(lone(troll, "author with a newline"))
    hostile = "=?utf-8?q?Ev=0Ail_Bcc:_x@example.org?= <evil@example.org>"
    deliver(inbox, [set_headers(m, {"From": hostile}) for m in posting.mails])
    config = config_for(tmp_path, inbox.url, port, "author")  # type: ignore[attr-defined]
    proc = bot(config, "check", posting.msgids[-1], "--stages", "fetch,report", "--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    (msg,) = rec.received
    assert str(msg["To"]).endswith("<evil@example.org>") and "\n" not in str(msg["To"])
    assert msg["Bcc"] is None and "x@example.org" not in str(msg["Cc"] or "")


# ---------------------------------------------------------------- 2. versions out of range


@pytest.mark.parametrize("version", ["999999999999999999999999999999", "9" * 300])
def test_absurd_version_is_bad_input_and_writes_nothing(tmp_path: Path, inbox: LocalInbox, version: str) -> None:
    msgid = f"v{len(version)}.huge@example.org"
    diff = posting_diff(tmp_path, f"huge{len(version)}")
    deliver(inbox, [raw_mail(msgid, f"[PATCH v{version} 1/1] mm: huge version", diff, "Ada <ada@example.org>")])
    config = config_for(tmp_path, inbox.url)  # type: ignore[attr-defined]
    proc = bot(config, "check", msgid)
    assert proc.returncode == 1
    assert "out of range" in one_line_error(proc)
    assert not (tmp_path / "patchsets").exists() or not any((tmp_path / "patchsets").iterdir())


def posting_diff(tmp_path: Path, tag: str) -> str:
    """The body of a real one-patch posting (commit message and diff) for hand-made subjects."""
    w = toy_writer(tmp_path, tag)
    mail = w.write(lone(w, tag)).mails[-1]
    return mail.split("\n\n", 1)[1]


# ---------------------------------------------------------------- 3. same day, same subject, two authors


def test_two_authors_same_subject_same_day_are_two_series(tmp_path: Path, inbox: LocalInbox, relay) -> None:
    port, rec = relay
    ada = toy_writer(tmp_path, "typo-ada", author="Ada Lovelace <ada@example.org>", start=NOW)
    bob = toy_writer(tmp_path, "typo-bob", author="Bob Builder <bob@example.org>", start=NOW)
    a = ada.write(lone(ada, "fix typo in rmap"))
    b = bob.write(Revision(1, "fix typo in rmap", [Patch("mm/rmap: fix typo in rmap",
                                                         files={"mm/rmap.c": rmap_with("nr_pages > 2")})],
                           cover=False))
    deliver(inbox, [*a.mails, *b.mails])
    config = config_for(tmp_path, inbox.url, port, "author")  # type: ignore[attr-defined]
    slugs = []
    for posting in (a, b):
        proc = bot(config, "check", posting.msgids[-1], "--stages", "fetch,report", "--json")
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        slugs.append(out["series"]["slug"])
        assert out["revisions"][0]["stages"]["report"]["state"] == "sent"
    assert slugs[0] != slugs[1]
    assert sorted(str(m["To"]) for m in rec.received) == ["Ada Lovelace <ada@example.org>",
                                                          "Bob Builder <bob@example.org>"]
    by_to = {str(m["To"]): str(m["In-Reply-To"]) for m in rec.received}
    assert by_to["Ada Lovelace <ada@example.org>"] == f"<{a.msgids[-1]}>"
    assert by_to["Bob Builder <bob@example.org>"] == f"<{b.msgids[-1]}>"


# ---------------------------------------------------------------- 5. concurrency: exactly one mail


def test_concurrent_checks_daemon_and_posts_send_exactly_once(tmp_path: Path, own_inbox: LocalInbox) -> None:
    """Rounds of 4 `bot check` + `bot daemon --once` + `bot post` of one new series at once (an archive of the
    test's own: the daemon reviews every new series it sees): exactly one mail per round."""
    inbox = own_inbox
    rec = Recorder(inbox)
    with smtp_server(rec) as port:
        config = config_for(tmp_path, inbox.url, port, "author")  # type: ignore[attr-defined]
        config.write_text(config.read_text() + '[daemon]\nstages = ["fetch", "walkdiff", "report"]\n'
                          'arches = ["x86_64"]\npatterns = ["mm/"]\nlookback_days = 3\n')
        for n in range(int(os.environ.get("MM_REVIEW_BOT_CONCURRENCY_ROUNDS", "4"))):
            concurrent_round(config, inbox, rec, n)


def concurrent_round(config: Path, inbox: LocalInbox, rec: Recorder, n: int) -> None:
    work = config.parent
    writer = toy_writer(work, f"conc{n}", start=NOW)
    posting = writer.write(lone(writer, f"concurrent {n}"))
    deliver(inbox, posting.mails)
    root = posting.msgids[-1]
    before = len(rec.received)
    cmds = [["check", root, "--stages", "fetch,walkdiff,report"]] * 4 + [["daemon", "--once"], ["post", root]]
    procs = [subprocess.Popen([BOT, *c, "--config", str(config)], cwd=work, env=bot_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert "Traceback" not in err, err
        assert p.returncode in (0, 1), err  # 1: `bot post` before any check had fetched the series
    got = [m for m in rec.received[before:] if str(m["In-Reply-To"]) == f"<{root}>"]
    assert len(got) == 1 and len(rec.received) == before + 1, f"round {n}: {len(got)} mails"
    db = sqlite3.connect(work / "patchsets" / "bot.sqlite3")
    states = [r[0] for r in db.execute("SELECT state FROM replies WHERE series LIKE ?", (f"%concurrent-{n}-%",))]
    assert states.count("sent") == 1, states
    (result,) = (work / "patchsets").glob(f"*concurrent-{n}-*/v1/result.json")
    report = json.loads(result.read_text())["stages"]["report"]
    assert report["state"] == "sent", report  # result.json and the store agree


# ---------------------------------------------------------------- 6, 7. broken and dripping servers


class _Bad(http.server.BaseHTTPRequestHandler):
    mode = "gzip"

    def _answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        if self.mode == "gzip":
            body = b"\x1f\x8b\x08\x00 this is not gzip at all"
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.end_headers()
        for _ in range(600):  # one byte a second, for ten minutes
            try:
                self.wfile.write(b"x")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(1.0)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=["gzip", "drip"])
def bad_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    handler = type("Handler", (_Bad,), {"mode": request.param})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", request.param
    server.shutdown()


def test_broken_gzip_and_dripping_server_end_in_one_line(tmp_path: Path, bad_server: tuple[str, str]) -> None:
    url, mode = bad_server
    config = write_config(tmp_path / "config.toml", url, timeout=3, retries=0)
    started = time.monotonic()
    proc = bot(config, "check", "<x@example.org>", timeout=60)
    took = time.monotonic() - started
    line = one_line_error(proc)
    assert proc.returncode == 3
    if mode == "gzip":
        assert "broken gzip" in line, line
    else:
        assert "no answer within 3 s" in line and took < 15, (line, took)  # the deadline, not the drip


# ---------------------------------------------------------------- 8. rich markup in a subject


def test_rich_markup_in_a_subject_is_printed_as_text(tmp_path: Path, inbox: LocalInbox, writer: SeriesWriter
                                                     ) -> None:
    posting = writer.write(lone(writer, "rich [/] markup [bold red]x"))
    deliver(inbox, posting.mails)
    config = config_for(tmp_path, inbox.url)  # type: ignore[attr-defined]
    proc = bot(config, "check", posting.msgids[-1], "--stages", "fetch,walkdiff,report")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "rich [/] markup [bold red]x" in " ".join(proc.stdout.split())  # literally, wrapped or not


# ---------------------------------------------------------------- 7. a full disk


def test_full_disk_is_a_clear_error_and_the_next_run_finishes(tmp_path: Path, inbox: LocalInbox, relay) -> None:
    """patchsets/ on a small tmpfs (in a mount namespace of its own), filled so that a write fails at some point
    of `bot check`: exit 3 and one line, no half-written file; with room again, the job finishes, one reply."""
    port, rec = relay
    writer = toy_writer(tmp_path, "enospc", start=NOW)
    posting = writer.write(lone(writer, "full disk"))
    deliver(inbox, posting.mails)
    config = config_for(tmp_path, inbox.url, port, "author")  # type: ignore[attr-defined]
    root = posting.msgids[-1]
    script = (
        'set -u; ps="$1"; shift; mkdir -p "$ps"; mount -t tmpfs -o size=1m tmpfs "$ps"; '
        'for free in 4 12 24 48 96 160 240; do '
        '  rm -f "$ps/filler"; total=$(df -k --output=avail "$ps" | tail -1); '
        '  fallocate -l $(( (total - free) * 1024 )) "$ps/filler" 2>/dev/null || true; '
        '  "$@" > /dev/null 2> "$ps/../err.$free"; echo "rc $free $?"; '
        '  find "$ps" -name ".*.tmp" | sed "s/^/tmp /"; '
        'done; rm -f "$ps/filler"; "$@" > /dev/null 2> "$ps/../err.final"; echo "rc final $?"')
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(tmp_path / "patchsets"), BOT, "check",
                           root, "--stages", "fetch,report", "--config", str(config)],
                          capture_output=True, text=True, timeout=600, env=bot_env(), cwd=tmp_path)
    lines = proc.stdout.splitlines()
    assert not [ln for ln in lines if ln.startswith("tmp ")], proc.stdout  # nothing half-written
    codes = {ln.split()[1]: int(ln.split()[2]) for ln in lines if ln.startswith("rc ")}
    assert codes.get("final") == 0, (proc.stdout, proc.stderr, (tmp_path / "err.final").read_text())
    failed = [free for free, rc in codes.items() if rc != 0 and free != "final"]
    assert failed, f"no run hit the full disk: {codes}"
    where = []
    for free in failed:
        err = (tmp_path / f"err.{free}").read_text()
        assert codes[free] == 3 and "Traceback" not in err, err
        (line,) = [ln for ln in err.splitlines() if ln.startswith("bot: ")]
        assert "disk full" in line, err
        where.append(line)
    print("\n".join(where))
    assert len([m for m in rec.received if str(m["In-Reply-To"]) == f"<{root}>"]) == 1


# ---------------------------------------------------------------- fuzz: hostile mail, generated


NASTY = ["\r\n", "\n", "\x00", "\x1b[31m", "=?utf-8?q?x=0Ay?=", "=?utf-8?b?w6k=?=", "[bold]", "[/]", '"', "<", ">",
         ",", ":", ";", "\\", "'$(touch${IFS}PWNED)'", "`id`", "é", "漢", "\u202e", "%s", "{x}"]


def _pieces(max_size: int) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=8)), max_size=max_size).map("".join)


def _encoded(text: str) -> st.SearchStrategy[str]:
    """A header value as a list would carry it: an RFC 2047 encoded word, or the text with its line breaks
    cut (a raw one would end the header)."""
    word = "=?utf-8?b?" + base64.b64encode(text.encode("utf-8", "surrogatepass")).decode() + "?="
    return st.sampled_from([word, " ".join(text.replace("\x00", "").splitlines()) or "x"])


@st.composite
def hostile_mail(draw: st.DrawFn) -> dict[str, str]:
    version = draw(st.one_of(st.integers(-5, 12), st.sampled_from([999, 1000, 10**30, 10**300])))
    counter = draw(st.sampled_from(["", " 1/1", " 0/1", " 2/1", " 1/3", " 01/999999"]))
    prefix = draw(st.sampled_from(["[PATCH{v}{c}]", "[PATCHv{n}{c}]", "[RFC PATCH v{n}{c}]", "Re: [PATCH{v}{c}]",
                                   "[PATCH mm-new v{n}{c}]", "[GIT PULL]", ""]))
    prefix = prefix.format(v=f" v{version}" if version != 1 else "", n=version, c=counter)
    # Message-IDs are printable ASCII (RFC 5322), but anything printable: quotes, $(), backticks, slashes
    local = draw(st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="<>@"),
                         min_size=1, max_size=20))
    return {
        "name": draw(_pieces(6).flatmap(_encoded)),
        "subject": f"{prefix} " + draw(_pieces(8).flatmap(_encoded)),
        "local": local,
        "date": draw(st.sampled_from([NOW.strftime("%a, %d %b %Y %H:%M:%S +0000"), "yesterday",
                                      "Fri, 31 Dec 9999 23:59:59 +0000", "Mon, 1 Jan 1900 00:00:00 -2359",
                                      NOW.strftime("%d %b %Y %H:%M:%S +1400")])),
        "body": draw(st.sampled_from(["diff", "truncated", "none", "latin-1"])),
        "reply_from": draw(_pieces(4).flatmap(_encoded)),
    }


FUZZ = {"n": 0}


@settings(max_examples=int(os.environ.get("MM_REVIEW_BOT_FUZZ_EXAMPLES", "15")), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(mail=hostile_mail())
def test_fuzzed_hostile_mail_never_crashes_or_doubles(tmp_path: Path, inbox: LocalInbox, mail: dict[str, str]
                                                      ) -> None:
    """Generated hostile mails (control characters, encoded words, markup in names and subjects, absurd or
    negative versions and counters, odd Message-IDs, bad dates, mixed encodings) delivered to the archive, then
    `bot check --stages fetch,walkdiff,report`: exit 0, 1 or 3, never a traceback, one `bot:` line on failure,
    nothing written outside patchsets/, the cache and the dashboard, at most one reply per revision."""
    FUZZ["n"] += 1
    work = tmp_path / f"ex{FUZZ['n']}"
    work.mkdir()
    msgid = f"fz{FUZZ['n']}.{mail['local']}@fuzz.example.org"
    diff = posting_diff(work, f"fz{FUZZ['n']}")
    body = {"diff": diff, "truncated": diff[: len(diff) // 2], "none": "No diff here.\n",
            "latin-1": diff.replace("Explain", "Expliqu\xe9")}[mail["body"]]
    head = (f"From: {mail['name']} <fuzz@example.org>\nTo: linux-mm@kvack.org\nSubject: {mail['subject']}\n"
            f"Date: {mail['date']}\nMessage-ID: <{msgid}>\nMIME-Version: 1.0\n")
    charset = "iso-8859-1" if mail["body"] == "latin-1" else "utf-8"
    raw = (head + f"Content-Type: text/plain; charset={charset}\n\n").encode() + body.encode(charset, "replace")
    reply = raw_mail(f"re.{msgid}", f"Re: {mail['subject']}", "Looks odd.\n",
                     f"{mail['reply_from']} <other@example.org>", refs=msgid)
    for m in (raw, reply):
        try:
            inbox.deliver(m)
        except (RuntimeError, ValueError):  # public-inbox-mda refused it, as the list would
            return
    config = config_for(work, inbox.url, retries=0)  # type: ignore[attr-defined]
    before = set(os.listdir(work))
    proc = bot(config, "check", msgid, "--stages", "fetch,walkdiff,report")
    assert proc.returncode in (0, 1, 3), (proc.returncode, proc.stderr)
    if proc.returncode:
        one_line_error(proc)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert set(os.listdir(work)) - before <= {"patchsets", "cache", "dashboard"}, os.listdir(work)
    db = work / "patchsets" / "bot.sqlite3"
    if db.exists():
        counts = sqlite3.connect(db).execute("SELECT COUNT(*) FROM replies GROUP BY series, revision").fetchall()
        assert all(c <= 1 for (c,) in counts), counts
