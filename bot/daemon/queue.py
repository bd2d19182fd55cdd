"""The daemon's queue in the bot's SQLite database (tables from store migration 2).

Each revision (the root Message-ID of one posting) moves
  seen -> queued -> running(stage) -> done | failed,   or seen -> ignored (not mm, no diff).
"seen" means it could not be classified yet (its thread could not be fetched): retried next round.
A "running" row left by a dead run goes back to "queued" and resumes from its last finished stage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bot.store import Store

STATES = ("seen", "ignored", "queued", "running", "done", "failed")


@dataclass
class Row:
    message_id: str
    subject: str
    author: str
    version: int
    posted: str
    series: str
    state: str
    stage: str
    detail: str
    files: str
    attempts: int
    run_id: int | None
    created: float
    updated: float
    started: float | None
    stage_started: float | None
    finished: float | None


@dataclass
class RunRow:
    id: int
    pid: int
    pgid: int
    marker: str
    log: str
    started: float
    ended: float | None
    status: str
    detail: str


class Queue:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    # ---- revisions ----

    def get(self, message_id: str) -> Row | None:
        row = self.db.execute("SELECT * FROM revisions WHERE message_id = ?", (message_id,)).fetchone()
        return Row(**dict(row)) if row else None

    def add(self, message_id: str, subject: str, author: str, version: int, posted: str,
            state: str = "seen", detail: str = "", files: str = "") -> bool:
        """Record a revision once; False when it was known (the same posting seen twice)."""
        now = time.time()
        with self.store.transaction() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO revisions (message_id, subject, author, version, posted, state, detail, files,"
                " created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (message_id, subject, author, version, posted, state, detail, files, now, now))
        return cur.rowcount == 1

    def set(self, message_id: str, **fields: Any) -> None:
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"bad queue state {fields['state']!r}")
        fields["updated"] = time.time()
        cols = ", ".join(f"{k} = :{k}" for k in fields)
        with self.store.transaction() as db:
            db.execute(f"UPDATE revisions SET {cols} WHERE message_id = :mid", fields | {"mid": message_id})

    def in_state(self, *states: str) -> list[Row]:
        marks = ", ".join("?" for _ in states)
        rows = self.db.execute(f"SELECT * FROM revisions WHERE state IN ({marks}) ORDER BY posted, version",
                               states).fetchall()
        return [Row(**dict(r)) for r in rows]

    def start(self, message_id: str, run_id: int) -> Row:
        now = time.time()
        with self.store.transaction() as db:
            db.execute("UPDATE revisions SET state = 'running', stage = '', attempts = attempts + 1, run_id = ?,"
                       " started = ?, stage_started = ?, updated = ? WHERE message_id = ?",
                       (run_id, now, now, now, message_id))
        row = self.get(message_id)
        assert row is not None
        return row

    def stage(self, message_id: str, stage: str) -> None:
        now = time.time()
        with self.store.transaction() as db:
            db.execute("UPDATE revisions SET stage = ?, stage_started = ?, updated = ? WHERE message_id = ?",
                       (stage, now, now, message_id))

    def finish(self, message_id: str, state: str, detail: str) -> None:
        self.set(message_id, state=state, detail=detail, finished=time.time())

    def recent(self, n: int) -> list[Row]:
        rows = self.db.execute("SELECT * FROM revisions WHERE state IN ('done', 'failed') ORDER BY finished DESC"
                               " LIMIT ?", (n,)).fetchall()
        return [Row(**dict(r)) for r in rows]

    # ---- runs ----

    def begin_run(self, pid: int, pgid: int, marker: str, log: str) -> int:
        with self.store.transaction() as db:
            cur = db.execute("INSERT INTO runs (pid, pgid, marker, log, started) VALUES (?, ?, ?, ?, ?)",
                             (pid, pgid, marker, log, time.time()))
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def end_run(self, run_id: int, status: str, detail: str = "") -> None:
        with self.store.transaction() as db:
            db.execute("UPDATE runs SET ended = ?, status = ?, detail = ? WHERE id = ?",
                       (time.time(), status, detail, run_id))

    def open_runs(self, exclude: int) -> list[RunRow]:
        rows = self.db.execute("SELECT * FROM runs WHERE ended IS NULL AND id != ?", (exclude,)).fetchall()
        return [RunRow(**dict(r)) for r in rows]

    def runs(self, n: int = 5) -> list[RunRow]:
        rows = self.db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (n,)).fetchall()
        return [RunRow(**dict(r)) for r in rows]

    # ---- key/value state (poll cursor, last poll outcome) ----

    def get_state(self, key: str, default: str = "") -> str:
        row = self.db.execute("SELECT value FROM daemon_state WHERE key = ?", (key,)).fetchone()
        return str(row["value"]) if row else default

    def put_state(self, **values: str) -> None:
        with self.store.transaction() as db:
            for k, v in values.items():
                db.execute("INSERT INTO daemon_state (key, value) VALUES (?, ?)"
                           " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (k, v))
