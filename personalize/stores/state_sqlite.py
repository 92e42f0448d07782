"""Decision state in an SQLite file: the embedded default, shared by the processes of a host.

Its tables live beside the profiles (the same file works, and is the default): counters are
rows ``(key, field, value, expires)``, values rows ``(key, value, expires)``, blobs rows
``(name, version, data)``. Every write is one ``BEGIN IMMEDIATE`` transaction, so an
increment batch is atomic against the other processes sharing the file. Expired rows are
ignored by reads and deleted once a minute by a write.

>>> import asyncio, tempfile, os
>>> store = SQLiteStateStore(os.path.join(tempfile.mkdtemp(), "state.sqlite3"))
>>> asyncio.run(store.put_blob("model", b"v1"))
1
>>> asyncio.run(store.close())
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from personalize.exceptions import ConfigurationError, StoreError
from personalize.stores.sqlite_schema import enter_wal
from personalize.stores.state import (
    Increments,
    StateStore,
    check_blob,
    check_increments,
    check_key,
    check_keys,
    check_ttl,
    check_values,
)
from personalize.stores.state_feed import (
    FEED_SCHEMA,
    Changes,
    log_sqlite,
    prune_sqlite,
    read_sqlite,
    writer_of,
)
from personalize.stores.state_sqlite_read import (
    LIVE,
    InlineReader,
    read_at_once,
    read_counters,
    read_values,
    scan_keys,
)

__all__ = ["SQLiteStateStore"]

T = TypeVar("T")

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS state_counters (
    key      TEXT NOT NULL,
    field    TEXT NOT NULL,
    value    REAL NOT NULL,
    expires  REAL,
    PRIMARY KEY (key, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state_values (
    key      TEXT PRIMARY KEY,
    value    BLOB NOT NULL,
    expires  REAL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state_blobs (
    name     TEXT NOT NULL,
    version  INTEGER NOT NULL,
    data     BLOB NOT NULL,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state_batches (
    id       TEXT PRIMARY KEY,
    ts       REAL NOT NULL
) WITHOUT ROWID;
"""
    + FEED_SCHEMA
)
PRUNE_INTERVAL = 60.0  # seconds between deletions of expired rows and old batch ids
ONE_QUERY = 200  # keys read in one statement (more: one statement per key, in one snapshot)
BATCH_MEMORY = 3600.0  # seconds a batch id is remembered (a retry comes far sooner)
# A new field takes its key's expiry: a key's fields expire together.
INCREMENT = (
    "INSERT INTO state_counters (key, field, value, expires) VALUES (?, ?, ?, "
    "(SELECT expires FROM state_counters WHERE key = ?1 LIMIT 1)) "
    "ON CONFLICT(key, field) DO UPDATE SET value = value + excluded.value"
)


class SQLiteStateStore(StateStore):
    """A :class:`StateStore` in one SQLite file (WAL mode), safe for several processes.

    The database work runs on one thread of its own, so the event loop never waits on disk
    or on a lock; except, with ``inline_reads``, the read of a page's caps and session picks
    (:meth:`read`, a few rows of a hot table) while that thread is idle: it runs on the
    caller's thread on a connection that never waits (see
    :mod:`~personalize.stores.state_sqlite_read`), and on the thread when it would.

    Every write also records which keys it changed in a change feed (a table of the same
    file, see :mod:`~personalize.stores.state_feed`), so that the workers sharing the file
    keep using their copies of keys nobody else changed (:meth:`changes`).
    """

    has_feed = True

    def __init__(
        self,
        path: str | os.PathLike[str] = "personalize.sqlite3",
        *,
        timeout: float = 5.0,  # seconds to wait for another process's write lock
        clock: Callable[[], float] = time.time,
        inline_reads: bool = True,  # a page's keys read on the caller's thread (see above)
    ) -> None:
        self.path = Path(path)
        if not self.path.parent.exists():
            raise ConfigurationError(
                f"SQLiteStateStore: the folder of {str(self.path)!r} does not exist"
            )
        self._timeout = timeout
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="personalize-state")
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._last_prune = float("-inf")
        self._close_lock = threading.Lock()
        self._reader = InlineReader(self.path) if inline_reads else None
        self._queued = 0  # calls sent to the thread and not finished
        self._queue_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteStateStore({str(self.path)!r})"

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            try:
                enter_wal(conn, self._timeout)
                conn.execute("PRAGMA synchronous=NORMAL")
                # Deleting is erasing (a visitor's caps, picks, impact): overwrite the pages.
                conn.execute("PRAGMA secure_delete=ON")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError(f"{self!r} is closed")
        loop = asyncio.get_running_loop()
        with self._queue_lock:  # (event loops in several threads may share the store)
            self._queued += 1
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(self._connection()))
        except sqlite3.Error as exc:
            raise StoreError(f"{self!r}: {exc}") from exc
        finally:
            with self._queue_lock:
                self._queued -= 1

    async def _write(self, fn: Callable[[sqlite3.Connection, float], T]) -> T:
        """Run ``fn(conn, now)`` in one write transaction."""

        def transaction(conn: sqlite3.Connection) -> T:
            now = self._clock()
            conn.execute("BEGIN IMMEDIATE")
            try:
                if time.monotonic() - self._last_prune > PRUNE_INTERVAL:
                    self._prune(conn, now)
                result = fn(conn, now)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT too: never leave the connection in one
                    conn.execute("ROLLBACK")
                raise
            return result

        return await self._run(transaction)

    def _prune(self, conn: sqlite3.Connection, now: float) -> None:
        conn.execute("DELETE FROM state_counters WHERE expires <= ?", (now,))
        conn.execute("DELETE FROM state_values WHERE expires <= ?", (now,))
        conn.execute("DELETE FROM state_batches WHERE ts < ?", (now - BATCH_MEMORY,))
        prune_sqlite(conn, now)
        self._last_prune = time.monotonic()

    async def changes(self, after: int | None) -> Changes:
        """What other writers changed after feed position ``after`` (see
        :mod:`~personalize.stores.state_feed`): read on the caller's thread when it can."""
        reader = self._reader
        if reader is not None and not self._queued and self._conn is not None:
            found = reader.call(lambda conn: read_sqlite(conn, after))
            if found is not None:
                return found
        return await self._run(lambda conn: read_sqlite(conn, after))

    async def increment(
        self, changes: Increments, *, ttl: float | None = None, batch_id: str | None = None
    ) -> dict[str, dict[str, float]]:
        checked = check_increments(changes)
        ttl = check_ttl(ttl)

        def add(conn: sqlite3.Connection, now: float) -> dict[str, dict[str, float]]:
            if batch_id is not None:
                query = "INSERT OR IGNORE INTO state_batches (id, ts) VALUES (?, ?)"
                if not conn.execute(query, (batch_id, now)).rowcount:
                    return read_counters(conn, list(checked), now)  # added before
            keys = [(key,) for key in checked]
            # An expired key starts again from nothing, as it would in Redis.
            conn.executemany(
                "DELETE FROM state_counters WHERE key = ? AND expires <= ?",
                [(key, now) for key in checked],
            )
            rows = [(k, f, a) for k, fields in checked.items() for f, a in fields.items()]
            conn.executemany(INCREMENT, rows)
            if ttl is not None:
                query = "UPDATE state_counters SET expires = ? WHERE key = ?"
                conn.executemany(query, [(now + ttl, key) for (key,) in keys])
            log_sqlite(conn, writer_of(batch_id), checked, now)
            return read_counters(conn, list(checked), now)

        return await self._write(add)

    async def counters(self, keys: Sequence[str]) -> dict[str, dict[str, float]]:
        for key in keys:
            check_key(key)

        def read(conn: sqlite3.Connection) -> dict[str, dict[str, float]]:
            conn.execute("BEGIN")  # one snapshot for every key
            try:
                return read_counters(conn, keys, self._clock())
            finally:
                conn.execute("COMMIT")

        return await self._run(read)

    async def values(self, keys: Sequence[str]) -> dict[str, bytes]:
        for key in keys:
            check_key(key)
        return await self._run(lambda conn: read_values(conn, keys, self._clock()))

    async def read(
        self, counters: Sequence[str], values: Sequence[str]
    ) -> tuple[dict[str, dict[str, float]], dict[str, bytes]]:
        check_keys(counters, values)
        reader, small = self._reader, len(counters) + len(values) <= ONE_QUERY
        if reader is not None and small and not self._queued and self._conn is not None:
            found = reader.read(counters, values, self._clock())  # (at once, on this thread)
            if found is not None:
                return found

        def read(conn: sqlite3.Connection) -> tuple[dict[str, dict[str, float]], dict[str, bytes]]:
            now = self._clock()
            if len(counters) + len(values) <= ONE_QUERY:
                return read_at_once(conn, counters, values, now)
            conn.execute("BEGIN")  # one snapshot for every key, one trip to the thread
            try:
                return read_counters(conn, counters, now), read_values(conn, values, now)
            finally:
                conn.execute("COMMIT")

        return await self._run(read)

    async def put_values(
        self,
        items: Mapping[str, bytes],
        *,
        ttl: float | None,
        only_if_absent: bool = False,
        writer: str = "",
    ) -> dict[str, bytes]:
        check_values(items)
        ttl = check_ttl(ttl)

        def put(conn: sqlite3.Connection, now: float) -> dict[str, bytes]:
            expires = None if ttl is None else now + ttl
            result, written = {}, []
            query = f"SELECT value FROM state_values WHERE key = ? AND {LIVE}"
            for key, value in items.items():
                if only_if_absent:
                    row = conn.execute(query, (key, now)).fetchone()
                    if row is not None:
                        result[key] = bytes(row[0])
                        continue
                conn.execute(
                    "INSERT OR REPLACE INTO state_values (key, value, expires) VALUES (?, ?, ?)",
                    (key, value, expires),
                )
                result[key] = value
                written.append(key)
            log_sqlite(conn, writer, written, now)
            return result

        return await self._write(put)

    async def delete(self, keys: Sequence[str]) -> int:
        for key in keys:
            check_key(key)

        def remove(conn: sqlite3.Connection, now: float) -> int:
            removed = 0
            for key in dict.fromkeys(keys):
                live = conn.execute(
                    f"SELECT 1 FROM state_counters WHERE key = ? AND {LIVE} UNION ALL "
                    f"SELECT 1 FROM state_values WHERE key = ? AND {LIVE} LIMIT 1",
                    (key, now, key, now),
                ).fetchone()
                conn.execute("DELETE FROM state_counters WHERE key = ?", (key,))
                conn.execute("DELETE FROM state_values WHERE key = ?", (key,))
                removed += live is not None
            log_sqlite(conn, "", keys, now)  # (tags, not keys: see state_feed)
            return removed

        removed = await self._write(remove)
        # An erasure leaves no copy in the write-ahead log either.
        # (Its row read here: a cursor left unread would keep a statement in progress, and
        # the next transaction's COMMIT on this connection would fail.)
        await self._run(lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
        return removed

    async def keys(self, prefix: str) -> list[str]:
        check_key(prefix, "prefix")
        return await self._run(lambda conn: scan_keys(conn, prefix, self._clock()))

    async def put_blob(self, name: str, data: bytes, *, keep: int = 3) -> int:
        check_blob(name, data, keep)

        def put(conn: sqlite3.Connection, now: float) -> int:
            query = "SELECT max(version) FROM state_blobs WHERE name = ?"
            newest = conn.execute(query, (name,)).fetchone()[0]
            version = int(newest or 0) + 1
            conn.execute(
                "INSERT INTO state_blobs (name, version, data) VALUES (?, ?, ?)",
                (name, version, data),
            )
            conn.execute(
                "DELETE FROM state_blobs WHERE name = ? AND version <= ?", (name, version - keep)
            )
            return version

        return await self._write(put)

    async def get_blob(self, name: str, version: int | None = None) -> tuple[int, bytes] | None:
        check_key(name, "blob name")

        def read(conn: sqlite3.Connection) -> tuple[int, bytes] | None:
            if version is None:
                query = (
                    "SELECT version, data FROM state_blobs WHERE name = ? "
                    "ORDER BY version DESC LIMIT 1"
                )
                row = conn.execute(query, (name,)).fetchone()
            else:
                query = "SELECT version, data FROM state_blobs WHERE name = ? AND version = ?"
                row = conn.execute(query, (name, version)).fetchone()
            return None if row is None else (int(row[0]), bytes(row[1]))

        return await self._run(read)

    async def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True

        if self._reader is not None:
            self._reader.close()

        def close_connection() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, close_connection)
        finally:
            self._executor.shutdown(wait=True)
