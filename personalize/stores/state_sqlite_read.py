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

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["LIVE", "InlineReader", "read_at_once", "read_counters", "read_values", "scan_keys"]

T = TypeVar("T")

LIVE = "(expires IS NULL OR expires > ?)"
LIVE_NAMED = "(expires IS NULL OR expires > :now)"
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


def read_counters(
    conn: sqlite3.Connection, keys: Sequence[str], now: float
) -> dict[str, dict[str, float]]:
    """Every live field of each key that has any (one statement per key)."""
    found: dict[str, dict[str, float]] = {}
    query = f"SELECT field, value FROM state_counters WHERE key = ? AND {LIVE}"
    for key in dict.fromkeys(keys):
        fields = {str(f): float(v) for f, v in conn.execute(query, (key, now))}
        if fields:
            found[key] = fields
    return found


def read_values(conn: sqlite3.Connection, keys: Sequence[str], now: float) -> dict[str, bytes]:
    """The live value of each key that holds one (one statement per key)."""
    query = f"SELECT value FROM state_values WHERE key = ? AND {LIVE}"
    found = {}
    for key in dict.fromkeys(keys):
        row = conn.execute(query, (key, now)).fetchone()
        if row is not None:
            found[key] = bytes(row[0])
    return found


def scan_keys(conn: sqlite3.Connection, prefix: str, now: float) -> list[str]:
    """Every live key starting with ``prefix`` (counters or values), sorted."""
    # A range on the primary keys (UTF-8 sorts by code point): prefix <= key < upper.
    last = ord(prefix[-1])
    upper = prefix[:-1] + chr(last + 1) if last < 0x10FFFF else None
    bound = "" if upper is None else " AND key < :upper"
    query = (
        f"SELECT key FROM state_counters WHERE key >= :prefix{bound} AND {LIVE_NAMED} "
        f"UNION SELECT key FROM state_values WHERE key >= :prefix{bound} AND {LIVE_NAMED}"
    )
    rows = conn.execute(query, {"prefix": prefix, "upper": upper, "now": now}).fetchall()
    return sorted(str(r[0]) for r in rows if str(r[0]).startswith(prefix))


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
        return self.call(lambda conn: read_at_once(conn, counters, values, now))

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> T | None:
        """``fn(connection)`` on this thread's read-only connection, or None as :meth:`read`."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            if conn is None:
                return None
        try:
            return fn(conn)
        except sqlite3.Error:
            if conn.in_transaction:  # (a read that failed half-way: BEGIN without COMMIT)
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
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
