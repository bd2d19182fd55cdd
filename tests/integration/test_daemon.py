"""`bot daemon` end to end: its own public-inbox (the daemon sees every series in an archive, so it must not
share the session archive with other tests), an SMTP relay delivering list-mode replies into it, the real
`bot` CLI. Stages are limited to fetch,walkdiff,report: no kernel builds here."""

from __future__ import annotations

import datetime
import email
import email.policy
import email.utils
import gzip
import json
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.demo.localinbox import LocalInbox
from bot.demo.writer import Patch, Revision, SeriesWriter
from bot.patches import split_mbox
from tests.conftest import BOT, Recorder, bot_env, run_bot, smtp_server
from tests.mailgen import rmap_with, toy_writer

KERNEL_TREE = Path(__file__).resolve().parents[2] / "kernel-tree"


@pytest.fixture
def relay(own_inbox: LocalInbox) -> Iterator[tuple[int, Recorder]]:
    handler = Recorder(own_inbox)
    with smtp_server(handler) as port:
        yield port, handler


def daemon_config(tmp_path: Path, url: str, port: int, kernel_tree: Path | str = "kernel-tree",
                  **daemon: object) -> Path:
    keys = {"stages": ["fetch", "walkdiff", "report"], "arches": ["x86_64"], "patterns": ["mm/note.c"], **daemon}
    text = (f'[lore]\nurl = "{url}"\nlist = "linux-mm"\ntimeout = 10\nretries = 1\nbackoff = 0.1\n'
            f'[paths]\npatchsets = "patchsets"\nkernel_tree = "{kernel_tree}"\ncache = "cache"\n'
            f'[report]\nmode = "list"\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\nsmtp_timeout = 10\n'
            f'smtp_retries = 1\nsmtp_backoff = 0.1\nsender = "mm-review-bot <bot@review.example.org>"\n'
            f'reconcile_grace = 0.0\n'
            "[daemon]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items()))
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def bot(config: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
        ) -> subprocess.CompletedProcess[str]:
    return run_bot(*args, "--config", str(config), cwd=config.parent, timeout=timeout, env=env)


def spawn(config: Path, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([BOT, *args, "--config", str(config)], cwd=config.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=bot_env(env))


def status(config: Path) -> dict:
    proc = bot(config, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def rows(config: Path) -> dict[str, sqlite3.Row]:
    db = sqlite3.connect(config.parent / "patchsets" / "bot.sqlite3")
    db.row_factory = sqlite3.Row
    return {r["message_id"]: r for r in db.execute("SELECT * FROM revisions")}


def deliver(box: LocalInbox, msgs: list[EmailMessage]) -> None:
    for m in msgs:
        box.deliver(m)
    for m in msgs:
        box.wait_searchable(str(m["Message-ID"]).strip("<>"))


def replies(box: LocalInbox, msgid: str) -> list[EmailMessage]:
    url = f"{box.url}/linux-mm/{msgid}/t.mbox.gz"  # type: ignore[attr-defined]
    with urllib.request.urlopen(url, timeout=30) as r:
        msgs = split_mbox(gzip.decompress(r.read()))
    return [m for m in msgs if str(m.get("Message-ID", "")).strip().startswith("<mm-review-bot.")]


def mm_series(writer: SeriesWriter, version: int, cond: str) -> list[EmailMessage]:
    return writer.write(Revision(version, "mm: daemon series", [
        Patch(f"mm/rmap: exit when {cond}", files={"mm/rmap.c": rmap_with(cond)}),
        Patch("mm: note", files={"mm/note.c": f"/* {cond} */\n"}),
    ])).messages()


def now_writer(tmp_path: Path, tag: str) -> SeriesWriter:
    return toy_writer(tmp_path, tag, start=datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1))


def result(config: Path, slug: str, version: int) -> dict:
    return json.loads((config.parent / "patchsets" / slug / f"v{version}" / "result.json").read_text())


def test_new_series_reviewed_once_then_new_revision_against_previous(tmp_path: Path, own_inbox: LocalInbox,
                                                                     relay) -> None:
    port, rec = relay
    config = daemon_config(tmp_path, own_inbox.url, port, kernel_tree=KERNEL_TREE)  # type: ignore[attr-defined]
    writer = now_writer(tmp_path, "d1")
    v1 = mm_series(writer, 1, "nr_pages > 1")
    deliver(own_inbox, v1)
    deliver(own_inbox, v1)  # the same series posted twice (same Message-IDs): the archive keeps both
    drivers = toy_writer(tmp_path, "drv", start=writer.when)
    deliver(own_inbox, drivers.write(Revision(1, "drivers: not mm", [Patch("drv: x", files={"drivers/x.c": "x\n"})],
                                              cover=False)).messages())
    nodiff = EmailMessage()
    nodiff["From"], nodiff["To"], nodiff["Subject"] = "Bob <bob@example.org>", "linux-mm@kvack.org", \
        "[PATCH] mm: a patch without a diff"
    nodiff["Date"], nodiff["Message-ID"] = email.utils.formatdate(), "<nodiff@example.org>"
    nodiff.set_content("I forgot the diff.\n")
    deliver(own_inbox, [nodiff])

    proc = bot(config, "daemon", "--once")
    assert proc.returncode == 0, proc.stderr
    got = rows(config)
    root = writer.msgid(1, 0)
    assert got[root]["state"] == "done", dict(got[root])
    assert "mm/rmap.c" in got[root]["files"].split(",")  # matched via the kernel tree's MAINTAINERS
    assert got[drivers.msgid(1, 1)]["state"] == "ignored" and "not mm" in got[drivers.msgid(1, 1)]["detail"]
    assert got["nodiff@example.org"]["state"] == "ignored" and "no diff" in got["nodiff@example.org"]["detail"]
    assert len(replies(own_inbox, root)) == 1 and len(rec.received) == 1
    slug = got[root]["series"]
    assert result(config, slug, 1)["stages"]["walkdiff"]["against"] == "base"
    assert list((config.parent / "patchsets" / "logs").glob("daemon-*.log"))
    page = config.parent / "dashboard" / "series" / slug / "index.html"  # updated after the revision finished
    assert 'id="v1"' in page.read_text() and f"series/{slug}/index.html" in page.with_name("row.json").read_text()
    assert f'href="series/{slug}/index.html"' in (config.parent / "dashboard" / "index.html").read_text()

    again = bot(config, "daemon", "--once")
    assert again.returncode == 0, again.stderr
    assert ": start" not in again.stderr and len(rec.received) == 1

    writer.when = datetime.datetime.now(datetime.UTC)
    deliver(own_inbox, mm_series(writer, 2, "nr_pages == 4"))
    third = bot(config, "daemon", "--once")
    assert third.returncode == 0, third.stderr
    got = rows(config)
    assert got[writer.msgid(2, 0)]["state"] == "done", dict(got[writer.msgid(2, 0)])
    assert got[writer.msgid(2, 0)]["series"] == slug
    assert result(config, slug, 2)["stages"]["walkdiff"]["against"] == "v1"
    assert 'id="v2"' in page.read_text() and 'id="v1"' in page.read_text()
    assert len(replies(own_inbox, writer.msgid(2, 0))) == 1 and len(rec.received) == 2
    st = status(config)
    assert [r["version"] for r in st["recent"]] == [2, 1] and st["queue"] == []
    assert st["poll"]["last_poll_status"].startswith("ok") and "MAINTAINERS" in st["poll"]["mm_source"]
    human = bot(config, "status", env={"COLUMNS": "250"})
    assert human.returncode == 0 and "[PATCH v2 0/2] mm: daemon series" in human.stdout, human.stdout


def wait_for(path: Path, timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)
    return int(path.read_text())


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z"


def test_sigkill_mid_stage_resumes_kills_leftovers_and_replies_once(tmp_path: Path, own_inbox: LocalInbox,
                                                                    relay) -> None:
    port, rec = relay
    config = daemon_config(tmp_path, own_inbox.url, port)  # type: ignore[attr-defined]
    writer = now_writer(tmp_path, "k1")
    deliver(own_inbox, mm_series(writer, 1, "nr_pages > 1"))
    pidfile = tmp_path / "child.pid"
    first = spawn(config, "daemon", "--once",
                  env={"BOT_TEST_STAGE_SLEEP": "walkdiff:300", "BOT_TEST_STAGE_PIDFILE": str(pidfile)})
    try:
        child = wait_for(pidfile)
        row = rows(config)[writer.msgid(1, 0)]
        assert (row["state"], row["stage"]) == ("running", "walkdiff")
        st = status(config)
        assert st["queue"][0]["stage"] == "walkdiff" and "stage_elapsed" in st["queue"][0]
        second = bot(config, "daemon", "--once")
        assert second.returncode == 3 and "another bot daemon is running" in second.stderr, second.stderr
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=30)
    assert not gone(child)  # the "build" outlived the daemon, as QEMU in its own session would
    assert status(config)["runs"][0]["state"].startswith("dead")

    proc = bot(config, "daemon", "--once")
    assert proc.returncode == 0, proc.stderr
    assert "leftover process(es) killed" in proc.stderr and "interrupted in stage walkdiff" in proc.stderr
    deadline = time.monotonic() + 10
    while not gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(child)
    row = rows(config)[writer.msgid(1, 0)]
    assert row["state"] == "done" and row["attempts"] == 2, dict(row)
    assert "fetch finished before" not in proc.stderr  # progress goes to the log, not stderr
    assert len(replies(own_inbox, writer.msgid(1, 0))) == 1 and len(rec.received) == 1
    runs = status(config)["runs"]
    assert runs[1]["status"] == "crashed" and "1 leftover" in runs[1]["detail"]


def test_killed_while_posting_does_not_post_twice(tmp_path: Path, own_inbox: LocalInbox, relay) -> None:
    port, rec = relay
    config = daemon_config(tmp_path, own_inbox.url, port)  # type: ignore[attr-defined]
    writer = now_writer(tmp_path, "p1")
    deliver(own_inbox, mm_series(writer, 1, "nr_pages > 1"))
    proc = bot(config, "daemon", "--once", env={"BOT_TEST_KILL_AFTER_SEND": "1"})
    assert proc.returncode == -9, proc.stderr
    assert len(rec.received) == 1
    proc = bot(config, "daemon", "--once")
    assert proc.returncode == 0, proc.stderr
    row = rows(config)[writer.msgid(1, 0)]
    assert row["state"] == "done", dict(row)
    assert len(rec.received) == 1 and len(replies(own_inbox, writer.msgid(1, 0))) == 1


def test_revision_posted_while_previous_is_tested_waits_for_it(tmp_path: Path, own_inbox: LocalInbox,
                                                                relay) -> None:
    port, rec = relay
    config = daemon_config(tmp_path, own_inbox.url, port)  # type: ignore[attr-defined]
    writer = now_writer(tmp_path, "w1")
    deliver(own_inbox, mm_series(writer, 1, "nr_pages > 1"))
    pidfile = tmp_path / "child.pid"
    first = spawn(config, "daemon", "--once",
                  env={"BOT_TEST_STAGE_SLEEP": "walkdiff:4", "BOT_TEST_STAGE_PIDFILE": str(pidfile)})
    wait_for(pidfile)
    writer.when = datetime.datetime.now(datetime.UTC)
    deliver(own_inbox, mm_series(writer, 2, "nr_pages == 4"))  # v2 arrives while v1 is in walkdiff
    assert bot(config, "daemon", "--once").returncode == 3  # the next cron tick finds v1 still running
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert rows(config)[writer.msgid(1, 0)]["state"] == "done"
    proc = bot(config, "daemon", "--once")
    assert proc.returncode == 0, proc.stderr
    got = rows(config)
    assert got[writer.msgid(2, 0)]["state"] == "done"
    assert result(config, got[writer.msgid(2, 0)]["series"], 2)["stages"]["walkdiff"]["against"] == "v1"
    assert len(rec.received) == 2  # v1's reply (newest when it was tested), then v2's


def test_unreachable_archive_skips_the_round_without_failing(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = daemon_config(tmp_path, f"http://127.0.0.1:{port}", 1)
    proc = bot(config, "daemon", "--once")
    assert proc.returncode == 0, proc.stderr
    assert "poll skipped this round" in proc.stderr
    st = status(config)
    assert st["poll"]["last_poll_status"].startswith("failed") and st["poll"]["poll_failures"] == "1"
    assert st["runs"][0]["status"] == "ok"


def test_loop_mode_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = daemon_config(tmp_path, f"http://127.0.0.1:{port}", 1, interval=0.5)
    proc = spawn(config, "daemon", env={})
    deadline = time.monotonic() + 60  # two rounds, however loaded the machine is
    while int(status(config).get("poll", {}).get("poll_failures") or 0) < 2:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert err.count("poll skipped this round") >= 2 and "stopped" in err
    assert status(config)["runs"][0]["status"] == "stopped"
