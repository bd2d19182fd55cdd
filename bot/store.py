"""The bot's SQLite database (patchsets/bot.sqlite3): the reply outbox (`replies`) and the daemon's queue
(`revisions`, `runs`, `daemon_state`, read and written by bot/daemon/queue.py).

The schema is versioned with PRAGMA user_version: MIGRATIONS[i] takes the database from version i
to i + 1, so a later issue appends its tables as a new migration and old databases upgrade in place.

Replies are keyed by (series, revision, digest): the digest is of the verdict, so a rerun with the
same findings finds its row and sends nothing. States:
  rendered  -- in the outbox, not sent (queued; dry-run leaves it here)
  sending   -- claimed by one process (`owner`) for one SMTP transaction until `lease_until`; after a crash
               (lease run out) the archive is asked before anything is sent again
  sent      -- the SMTP server accepted it
  held      -- deliberately not sent (opt-out, superseded revision, another reply of the revision sent)
Claiming is one compare-and-set under BEGIN IMMEDIATE (claim()): of several processes, exactly one wins,
and a revision never has two replies sent or sending at once.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import OperationalError

BUSY_TIMEOUT = 30.0  # seconds to wait for another bot process holding the write lock
DISK_LOW = 1 << 20  # bytes free below which a database error is reported as a full disk
STATES = ("rendered", "sending", "sent", "held")

MIGRATIONS: list[str] = [
    # 0 -> 1: the reply outbox
    """
    CREATE TABLE replies (
        series      TEXT NOT NULL,
        revision    INTEGER NOT NULL,
        digest      TEXT NOT NULL,
        message_id  TEXT NOT NULL UNIQUE,
        state       TEXT NOT NULL CHECK (state IN ('rendered', 'sending', 'sent', 'held')),
        path        TEXT NOT NULL,          -- the message in the outbox Maildir
        reason      TEXT NOT NULL DEFAULT '',  -- why held / last error
        attempts    INTEGER NOT NULL DEFAULT 0,
        created     REAL NOT NULL,
        updated     REAL NOT NULL,
        sending_at  REAL,
        sent_at     REAL,
        PRIMARY KEY (series, revision, digest)
    );
    CREATE INDEX replies_sent_at ON replies (sent_at);
    """,
    # 1 -> 2: the daemon's queue (bot/queue.py), its runs and its poll state
    """
    CREATE TABLE revisions (
        message_id  TEXT PRIMARY KEY,       -- root of the posting: cover letter, else patch 1
        subject     TEXT NOT NULL,
        author      TEXT NOT NULL,
        version     INTEGER NOT NULL,
        posted      TEXT NOT NULL,          -- the root's date, ISO 8601
        series      TEXT NOT NULL DEFAULT '',  -- patchsets/<slug>, once fetched
        state       TEXT NOT NULL CHECK (state IN ('seen', 'ignored', 'queued', 'running', 'done', 'failed')),
        stage       TEXT NOT NULL DEFAULT '',  -- the running (or last) stage
        detail      TEXT NOT NULL DEFAULT '',  -- why ignored / failed / requeued, or the outcome
        files       TEXT NOT NULL DEFAULT '',  -- mm files it touches, comma-separated
        attempts    INTEGER NOT NULL DEFAULT 0,
        run_id      INTEGER,
        created     REAL NOT NULL,
        updated     REAL NOT NULL,
        started     REAL,
        stage_started REAL,
        finished    REAL
    );
    CREATE INDEX revisions_state ON revisions (state, posted);
    CREATE TABLE runs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        pid         INTEGER NOT NULL,
        pgid        INTEGER NOT NULL,
        marker      TEXT NOT NULL,          -- MM_REVIEW_BOT_RUN in the environment of the run and its children
        log         TEXT NOT NULL,
        started     REAL NOT NULL,
        ended       REAL,
        status      TEXT NOT NULL DEFAULT 'running',  -- running | ok | crashed | error
        detail      TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE daemon_state (
        key         TEXT PRIMARY KEY,
        value       TEXT NOT NULL
    );
    """,
    # 2 -> 3: who is sending a reply, and until when (exactly-once across concurrent processes)
    """
    ALTER TABLE replies ADD COLUMN owner TEXT NOT NULL DEFAULT '';
    ALTER TABLE replies ADD COLUMN lease_until REAL
    """,
]


@dataclass
class Reply:
    series: str
    revision: int
    digest: str
    message_id: str
    state: str
    path: str
    reason: str
    attempts: int
    created: float
    updated: float
    sending_at: float | None
    sent_at: float | None
    owner: str = ""
    lease_until: float | None = None

    def lease_running(self, now: float | None = None) -> bool:
        """Another live process holds this reply's claim: its lease has not run out, and its owner
        (host:pid:token) is not a process of this host that is gone."""
        if self.state != "sending" or (self.lease_until or 0) <= (now or time.time()):
            return False
        host, _, rest = self.owner.partition(":")
        pid = rest.partition(":")[0]
        return not (host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN ourselves, so each transaction is explicit.
            self.db = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")  # a recorded "sent" must survive a power cut
        except (OSError, sqlite3.Error) as e:
            raise self._error(e) from e
        self._migrate()

    def _error(self, e: Exception, after: str = "") -> OperationalError:
        """One line for a database failure; a full disk said as such (SQLite may only say "disk I/O error")."""
        try:
            full = shutil.disk_usage(self.path.parent).free < DISK_LOW
        except OSError:
            full = False
        why = f"disk full ({e})" if full else str(e)
        return OperationalError(f"database {self.path}: {why}{after}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        with self.transaction():
            for i in range(self.version, len(MIGRATIONS)):
                for statement in MIGRATIONS[i].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {i + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE: take the write lock up front, so check-then-update is atomic across processes.
        A database error (a full disk: "database or disk is full") rolls back and is an OperationalError."""
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise self._error(e) from e
        try:
            yield self.db
            self.db.execute("COMMIT")
        except BaseException as e:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            if isinstance(e, sqlite3.Error):
                raise self._error(e, "; nothing recorded, rerun when it is fixed") from e
            raise

    # ---- replies ----

    def reply(self, series: str, revision: int, digest: str) -> Reply | None:
        row = self.db.execute(
            "SELECT * FROM replies WHERE series = ? AND revision = ? AND digest = ?", (series, revision, digest)
        ).fetchone()
        return Reply(**dict(row)) if row else None

    def replies(self, series: str, revision: int | None = None) -> list[Reply]:
        sql = "SELECT * FROM replies WHERE series = ?"
        args: list[Any] = [series]
        if revision is not None:
            sql += " AND revision = ?"
            args.append(revision)
        rows = self.db.execute(sql + " ORDER BY revision, created", args).fetchall()
        return [Reply(**dict(r)) for r in rows]

    def add_reply(self, series: str, revision: int, digest: str, message_id: str, path: str,
                  state: str = "rendered", reason: str = "") -> Reply:
        """Insert the row unless it exists; return what is stored (an earlier run's row wins)."""
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO replies (series, revision, digest, message_id, state, path, reason, created,"
                " updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (series, revision, digest, message_id, state, path, reason, now, now),
            )
        got = self.reply(series, revision, digest)
        assert got is not None
        return got

    def set_state(self, reply: Reply, state: str, reason: str = "", expect: tuple[str, ...] | None = None) -> bool:
        """Move a reply to `state`; with `expect`, only if it is in one of those states now (compare and swap).

        Returns whether the row changed: False means another process got there first.
        """
        if state not in STATES:
            raise ValueError(f"bad reply state {state!r}")
        now = time.time()
        with self.transaction() as db:
            row = db.execute("SELECT state FROM replies WHERE message_id = ?", (reply.message_id,)).fetchone()
            if row is None or (expect is not None and row["state"] not in expect):
                return False
            extra = {"sending": ", sending_at = :now, attempts = attempts + 1",
                     "sent": ", sent_at = :now"}.get(state, "")
            db.execute(
                f"UPDATE replies SET state = :state, reason = :reason, updated = :now{extra} WHERE message_id = :mid",
                {"state": state, "reason": reason, "now": now, "mid": reply.message_id},
            )
        reply.state, reply.reason, reply.updated = state, reason, now
        return True

    def refresh(self, reply: Reply) -> Reply:
        """The row as it is now (another process may have moved it)."""
        row = self.db.execute("SELECT * FROM replies WHERE message_id = ?", (reply.message_id,)).fetchone()
        return Reply(**dict(row)) if row else reply

    def claim(self, reply: Reply, owner: str, lease: float, *, stale_ok: bool = False, held_ok: bool = False,
              sent_ok: bool = False) -> str:
        """Make `owner` the one sender of this reply (state sending, lease for `lease` seconds): "" when it did,
        else why not. From rendered always; from an expired sending only with stale_ok (after reconciling),
        from held with held_ok (--force), from sent with sent_ok (--resend). Refused while any other reply of
        the same revision is sent or sending (one reply per revision)."""
        now = time.time()
        with self.transaction() as db:
            row = db.execute("SELECT * FROM replies WHERE message_id = ?", (reply.message_id,)).fetchone()
            if row is None:
                return "the reply is not in the database"
            cur = Reply(**dict(row))
            allowed = (cur.state == "rendered" or (cur.state == "held" and held_ok)
                       or (cur.state == "sent" and sent_ok)
                       or (cur.state == "sending" and stale_ok and not cur.lease_running(now)))
            if not allowed:
                return f"it is {cur.state}" + (f" by another bot process ({cur.owner})" if cur.state == "sending"
                                               else "")
            other = db.execute("SELECT message_id, state FROM replies WHERE series = ? AND revision = ? AND"
                               " message_id != ? AND state IN ('sent', 'sending')",
                               (cur.series, cur.revision, cur.message_id)).fetchone()
            if other is not None and not sent_ok:
                return f"v{cur.revision} already has a reply {other['state']}: <{other['message_id']}>"
            db.execute("UPDATE replies SET state = 'sending', owner = ?, lease_until = ?, sending_at = ?,"
                       " attempts = attempts + 1, updated = ? WHERE message_id = ?",
                       (owner, now + lease, now, now, reply.message_id))
        return ""

    def finish_send(self, reply: Reply, owner: str, state: str, reason: str) -> bool:
        """End this owner's claim: sent (with reason = what the server said) or back to rendered."""
        now = time.time()
        sent_at = now if state == "sent" else None
        with self.transaction() as db:
            cur = db.execute("UPDATE replies SET state = ?, reason = ?, owner = '', lease_until = NULL,"
                             " sent_at = COALESCE(?, sent_at), updated = ? WHERE message_id = ? AND owner = ?"
                             " AND state = 'sending'", (state, reason, sent_at, now, reply.message_id, owner))
        return cur.rowcount == 1

    def set_path(self, reply: Reply, path: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE replies SET path = ?, updated = ? WHERE message_id = ?",
                       (path, time.time(), reply.message_id))
        reply.path = path

    def sent_since(self, since: float) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM replies WHERE sent_at >= ?", (since,)).fetchone()[0])


def open_store(patchsets: Path) -> Store:
    return Store(patchsets / "bot.sqlite3")
