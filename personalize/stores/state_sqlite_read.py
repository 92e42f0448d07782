"""Reads of the SQLite state store: a page's counters and values in one statement, and the
reader that answers them on the calling thread when SQLite can answer at once.

Before each page the state service reads the visitor's caps and session picks (a few rows).
Sending that to the store's thread costs more than the read itself (a future, a thread
switch, the event loop woken through its pipe). :class:`InlineReader` reads on the calling
thread instead, on a connection of its own that never waits: with the database in WAL mode a
reader never waits for a writer, and its busy timeout is zero, so whenever SQLite would wait
(a checkpoint resetting the log, a recovery) it answers None at once and the store reads on
its thread as before. The store reads inline only while its thread has nothing queued, so a
read never overtakes a write of this process.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "state.sqlite3")
>>> InlineReader(path).read(["caps:v:1"], ["pick:v:1|0.0|hero"], 0.0) is None  # no tables yet
True
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Sequence

__all__ = ["LIVE", "InlineReader", "read_at_once"]

LIVE = "(expires IS NULL OR expires > ?)"
Found = tuple[dict[str, dict[str, float]], dict[str, bytes]]


def read_at_once(
    conn: sqlite3.Connection, counters: Sequence[str], values: Sequence[str], now: float
) -> Found:
    """Counters and values in one statement (so in one snapshot, without BEGIN/COMMIT)."""
    parts, args = [], []
    if counters:
        marks = ", ".join("?" * len(counters))
        parts.append(f"SELECT key, field, value FROM state_counters WHERE key IN ({marks}) "
                     f"AND {LIVE}")  # fmt: skip
        args += [*counters, now]
    if values:
        marks = ", ".join("?" * len(values))
        parts.append(f"SELECT key, NULL, value FROM state_values WHERE key IN ({marks}) "
                     f"AND {LIVE}")  # fmt: skip
        args += [*values, now]
    found: dict[str, dict[str, float]] = {}
    got: dict[str, bytes] = {}
    if parts:  # (every row fetched: no statement is left in progress)
        for key, field, value in conn.execute(" UNION ALL ".join(parts), args).fetchall():
            if field is None:
                got[key] = bytes(value)
            else:
                found.setdefault(key, {})[str(field)] = float(value)
    return found, got


class InlineReader:
    """Read-only connections (one per calling thread, usually the event loop's) that answer
    :func:`read_at_once` or None when SQLite cannot answer without waiting."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def read(self, counters: Sequence[str], values: Sequence[str], now: float) -> Found | None:
        """What the keys hold, or None: busy, locked, no tables yet, closed, or any error
        (the store's thread then reads, and reports what is wrong)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            if conn is None:
                return None
        try:
            return read_at_once(conn, counters, values, now)
        except sqlite3.Error:
            return None

    def _open(self) -> sqlite3.Connection | None:
        with self._lock:
            if self._closed:
                return None
            try:  # timeout=0: SQLITE_BUSY at once instead of waiting for a lock
                conn = sqlite3.connect(
                    self.path, timeout=0, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA query_only=ON")
            except sqlite3.Error:
                return None
            self._opened.append(conn)
        self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close every connection (reads afterwards answer None)."""
        with self._lock:
            self._closed = True
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
