"""The daemon's parts without servers: feed parsing and retries (httpx.MockTransport), series roots,
MAINTAINERS patterns, the queue's state changes, the lock, and a full disk while results are written."""

from __future__ import annotations

import datetime
import errno
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bot import pipeline
from bot.config import Config, DaemonConfig, LoreConfig, PathsConfig
from bot.daemon import loop as daemon
from bot.daemon.mmfiles import MMFiles, extra_section, parse_maintainers
from bot.daemon.queue import Queue
from bot.errors import BadInput
from bot.fetch.poll import Entry, Poller, PollError, parse_feed, roots
from bot.patches import is_series_root
from bot.patches import touched_paths as touched_files
from bot.store import open_store

FEED = b"""<?xml version="1.0" encoding="us-ascii"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:thr="http://purl.org/syndication/thread/1.0">
<title>s:PATCH - search results</title>
<entry><author><name>Ada</name><email>ada@example.org</email></author><title>[PATCH 2/2] mm: b</title>
<updated>2026-11-26T20:31:17Z</updated><link href="http://h/linux-mm/a.2@example.org/"/></entry>
<entry><author><name>Ada</name><email>ada@example.org</email></author><title>[PATCH 0/2] mm: x</title>
<updated>2026-11-26T20:31:15Z</updated><link href="http://h/linux-mm/a.0@example.org/"/></entry>
<entry><author><name>Ada</name><email>ada@example.org</email></author><title>[PATCH 0/2] mm: x</title>
<updated>2026-11-26T20:31:15Z</updated><link href="http://h/linux-mm/a.0@example.org/"/></entry>
</feed>"""


def cfg(tmp_path: Path, **daemon: object) -> Config:
    return Config(lore=LoreConfig(url="http://archive.test", timeout=1.0, retries=2, backoff=0.01),
                  paths=PathsConfig(patchsets=tmp_path / "patchsets", kernel_tree=tmp_path / "nope",
                                    cache=tmp_path / "cache"),
                  daemon=DaemonConfig(**daemon))  # type: ignore[arg-type]


def poller(tmp_path: Path, answers: list[object]) -> tuple[Poller, list[float]]:
    calls = iter(answers)
    slept: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        a = next(calls)
        if isinstance(a, Exception):
            raise a
        assert isinstance(a, httpx.Response)
        return a

    return Poller(cfg(tmp_path), sleep=slept.append, transport=httpx.MockTransport(handler)), slept


def test_series_roots() -> None:
    assert is_series_root("[PATCH 0/3] mm: x")
    assert is_series_root("[PATCH v2 01/12] mm: x")
    assert is_series_root("[RFC PATCH mm-new v3] mm: lone")
    assert is_series_root("[PATCH] mm: lone")
    assert not is_series_root("[PATCH 2/3] mm: x")
    assert not is_series_root("Re: [PATCH 0/3] mm: x")
    assert not is_series_root("mm: no brackets")
    assert not is_series_root("[GIT PULL] mm")


def test_feed_dedupes_and_keeps_roots() -> None:
    entries = parse_feed(FEED)
    assert [e.message_id for e in entries] == ["a.2@example.org", "a.0@example.org", "a.0@example.org"]
    (root,) = roots(entries)  # the same message twice in the archive: one candidate
    assert root.subject == "[PATCH 0/2] mm: x" and root.author == "Ada <ada@example.org>"


def test_poll_retries_5xx_then_succeeds(tmp_path: Path) -> None:
    p, slept = poller(tmp_path, [httpx.Response(503), httpx.Response(200, content=FEED)])
    _, entries = p.since(datetime.date(2026, 11, 25))
    assert len(entries) == 3 and slept == [0.01]


def test_poll_404_is_no_results(tmp_path: Path) -> None:
    p, _ = poller(tmp_path, [httpx.Response(404)])
    assert p.since(datetime.date(2026, 11, 25))[1] == []


@pytest.mark.parametrize("answers, why", [
    ([httpx.Response(500)] * 3, "HTTP 500"),
    ([httpx.ReadTimeout("slow")] * 3, "timeout"),
    ([httpx.Response(200, content=b"<html>oops</html")] * 3, "malformed Atom feed"),
    ([httpx.Response(200, content=b"<html/>")] * 3, "not an Atom feed"),
])
def test_poll_gives_up_after_retries_with_backoff(tmp_path: Path, answers: list[object], why: str) -> None:
    p, slept = poller(tmp_path, answers)
    with pytest.raises(PollError, match=why):
        p.since(datetime.date(2026, 11, 25))
    assert slept == [0.01, 0.02]


def test_failed_poll_is_recorded_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: Poller, since: datetime.date) -> tuple[str, list[Entry]]:
        raise PollError("archive down")

    monkeypatch.setattr(Poller, "since", boom)
    with open_store(tmp_path / "patchsets") as store:
        q = Queue(store)
        assert daemon.poll(cfg(tmp_path), q) == []
        assert daemon.poll(cfg(tmp_path), q) == []
        assert q.get_state("last_poll_status") == "failed: archive down" and q.get_state("poll_failures") == "2"


MAINTAINERS = """\
Maintainers List
----------------
\tM: Mail patches to: FullName <address@domain>

MEMORY MANAGEMENT
M:\tAndrew Morton <akpm@linux-foundation.org>
F:\tmm/
X:\tmm/secret.c

MEMORY MANAGEMENT - CORE
F:\tinclude/linux/mm_*.h
F:\tkernel/fork.c
N:\tinclude\\/linux\\/page[-_][a-zA-Z]*

NETWORKING
F:\tnet/
"""


def test_maintainers_patterns() -> None:
    sections = parse_maintainers(MAINTAINERS)
    assert [s.name for s in sections] == ["MEMORY MANAGEMENT", "MEMORY MANAGEMENT - CORE"]
    mm = MMFiles([*sections, extra_section(["drivers/mm-ish/*.c"])], "test")
    paths = ["mm/rmap.c", "mm/damon/core.c", "mm/secret.c", "include/linux/mm_types.h", "include/linux/mm_x/y.h",
             "kernel/fork.c", "include/linux/page-flags.h", "net/core/dev.c", "drivers/mm-ish/a.c", "mmx/a.c"]
    # `*` stays within one path component: include/linux/mm_x/y.h is not include/linux/mm_*.h
    assert mm.match(paths) == ["mm/rmap.c", "mm/damon/core.c", "include/linux/mm_types.h", "kernel/fork.c",
                               "include/linux/page-flags.h", "drivers/mm-ish/a.c"]


def test_touched_files() -> None:
    body = ("x\n---\n mm/a.c | 2 +-\n\ndiff --git a/mm/a.c b/mm/b.c\nsimilarity index 90%\nrename from mm/a.c\n"
            "--- a/mm/a.c\n+++ b/mm/b.c\n@@ -1 +1 @@\n-a\n+b\n")
    assert touched_files(body) == ["mm/a.c", "mm/b.c"]
    assert touched_files("I forgot the diff.\n--- \n2.39\n") == []


def queued(q: Queue, mid: str, version: int = 1, posted: str = "2026-11-26T10:00:00+00:00") -> None:
    q.add(mid, f"[PATCH v{version} 0/1] x", "Ada <ada@example.org>", version, posted, state="queued")


def test_full_disk_leaves_the_entry_retryable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated with a monkeypatched pipeline raising ENOSPC (as write_bytes_atomic would on a full disk);
    the database is on a disk with room, as when patchsets/ and the db are on different filesystems."""
    def full(*args: object, **kwargs: object) -> pipeline.Run:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pipeline, "run", full)
    config = cfg(tmp_path, max_attempts=2)
    with open_store(config.paths.patchsets) as store:
        q = Queue(store)
        queued(q, "a@x")
        run_id = q.begin_run(os.getpid(), os.getpgid(0), "m", "log")
        daemon.process(config, q, run_id, "a@x")
        row = q.get("a@x")
        assert row is not None and row.state == "queued" and row.attempts == 1
        assert "disk full" in row.detail and "retried next round" in row.detail
        daemon.process(config, q, run_id, "a@x")
        row = q.get("a@x")
        assert row is not None and row.state == "failed" and "gave up after 2 attempts" in row.detail


def test_bad_input_fails_without_retry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def bad(*args: object, **kwargs: object) -> pipeline.Run:
        raise BadInput("two postings claim to be v1")

    monkeypatch.setattr(pipeline, "run", bad)
    config = cfg(tmp_path)
    with open_store(config.paths.patchsets) as store:
        q = Queue(store)
        queued(q, "a@x")
        daemon.process(config, q, 1, "a@x")
        row = q.get("a@x")
        assert row is not None and row.state == "failed" and "two postings" in row.detail


def test_oldest_revision_first_one_attempt_per_round(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []

    def fake_process(config: Config, q: Queue, run_id: int, mid: str) -> None:
        order.append(mid)
        q.start(mid, run_id)
        q.set(mid, state="queued")  # fails operationally every time: must not loop within the round

    monkeypatch.setattr(daemon, "process", fake_process)
    monkeypatch.setattr(daemon, "poll", lambda config, q: [])
    config = cfg(tmp_path)
    with open_store(config.paths.patchsets) as store:
        q = Queue(store)
        queued(q, "v2@x", 2, "2026-11-26T12:00:00+00:00")
        queued(q, "v1@x", 1, "2026-11-26T10:00:00+00:00")
        daemon.one_round(config, q, q.begin_run(os.getpid(), os.getpgid(0), "m", "log"))
    assert order == ["v1@x", "v2@x"]


def test_running_row_of_a_dead_run_is_requeued(tmp_path: Path) -> None:
    with open_store(tmp_path / "patchsets") as store:
        q = Queue(store)
        queued(q, "a@x")
        dead = q.begin_run(999999, 999999, "gone-marker", "log")
        q.start("a@x", dead)
        q.stage("a@x", "build")
        me = q.begin_run(os.getpid(), os.getpgid(0), "me", "log")
        daemon.recover(q, me)
        row = q.get("a@x")
        assert row is not None and row.state == "queued" and "interrupted in stage build" in row.detail
        assert [r.status for r in q.runs(2)] == ["running", "crashed"]


def test_second_instance_is_refused(tmp_path: Path) -> None:
    lock = tmp_path / "daemon.lock"
    code = ("import sys, time; from pathlib import Path; from bot.daemon.loop import single_instance\n"
            f"with single_instance(Path({str(lock)!r})):\n    print('locked', flush=True); time.sleep(30)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(daemon.Locked, match=f"another bot daemon is running \\(pid {holder.pid}"):
            with daemon.single_instance(lock):
                pass
        assert daemon.Locked.exit_code == 3
    finally:
        holder.kill()
        holder.wait(timeout=10)
    with daemon.single_instance(lock):  # the kernel dropped the dead holder's lock
        pass


def test_a_version_1_database_upgrades_in_place(tmp_path: Path) -> None:
    import sqlite3

    from bot.store import MIGRATIONS, Store

    db = sqlite3.connect(tmp_path / "bot.sqlite3")
    db.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
    db.execute("INSERT INTO replies (series, revision, digest, message_id, state, path, created, updated)"
                " VALUES ('s', 1, 'd', 'm@x', 'sent', '/p', 0, 0)")
    db.commit()
    db.close()
    with Store(tmp_path / "bot.sqlite3") as store:
        assert store.version == 3
        assert store.replies("s")[0].state == "sent"  # the outbox survives the upgrade
        q = Queue(store)
        assert q.add("a@x", "s", "a", 1, "2026-11-26") and not q.add("a@x", "s", "a", 1, "2026-11-26")
