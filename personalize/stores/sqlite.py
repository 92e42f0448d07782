"""The embedded default store: SQLite from the standard library, durable, in WAL mode."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson

from personalize.exceptions import ConfigurationError, StoreError, StoreUnavailableError
from personalize.profiles.changes import Change, change_from_value
from personalize.profiles.profile import Profile
from personalize.stores.base import Mutation, ProfileStore
from personalize.stores.sqlite_expiry import EXPIRE_BATCH, EXPIRE_INTERVAL, expire_batch, expired
from personalize.stores.sqlite_forwards import Forwards
from personalize.stores.sqlite_quarantine import (
    encode_or_set_aside,
    fold_logged,
    quarantined,
    set_aside,
)
from personalize.stores.sqlite_schema import (
    FORWARD_ROW_LIFE,
    MAX_LOG_ROWS,
    UPSERT,
    chunks,
    log_rows,
    log_rows_of,
    oldest_changes,
    open_connection,
    unlog,
)
from personalize.stores.state import StateStore
from personalize.stores.state_sqlite import SQLiteStateStore

T = TypeVar("T")
logger = logging.getLogger("personalize.sqlite")


class SQLiteStore(ProfileStore):
    """Profiles in one SQLite file; safe for several processes on one host.

    Database work runs on two dedicated threads, so the event loop never blocks on disk:
    one writes (and folds the change log), the other reads single profiles, so a cache miss
    never waits behind a write. Each write is one ``BEGIN IMMEDIATE`` transaction: atomic
    against other tasks, threads and processes sharing the file.

    Page views and events are appended to a change log (one row per write batch, see
    :mod:`personalize.stores.sqlite_schema`) that reads fold in; so that reads stay cheap,
    each process compacts it after appending ``compact_after`` changes or 2,000 rows, or
    after ``compact_interval`` seconds if it appended anything. What cannot be read, folded or
    encoded is set aside (:mod:`~personalize.stores.sqlite_quarantine`), never stopping it.

    ``synchronous="NORMAL"`` (the default) survives application crashes; use ``"FULL"`` to
    also survive power loss, at some write cost.

    Anonymous profiles expire after ``anonymous_ttl`` seconds without a write, as in the
    Redis store (same option, same default; 0 keeps them forever): they are no longer read,
    and each process deletes them in the background, a few hundred per transaction, once a
    minute (see :mod:`personalize.stores.sqlite_expiry`). Known profiles never expire.
    ``clock`` (seconds since the epoch) is for tests.

    >>> import asyncio, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "profiles.sqlite3")
    >>> store = SQLiteStore(path)
    >>> asyncio.run(store.get("nobody")) is None
    True
    >>> asyncio.run(store.close())
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "personalize.sqlite3",
        *,
        timeout: float = 5.0,  # seconds to wait for another process's write lock
        synchronous: Literal["OFF", "NORMAL", "FULL"] = "NORMAL",
        compact_interval: float = 30.0,  # seconds between compactions of the change log
        compact_after: int = 16_000,  # changes appended by this process before a compaction
        anonymous_ttl: int = 90 * 24 * 3600,  # seconds; 0 keeps anonymous profiles forever
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        if not self.path.parent.exists():
            raise ConfigurationError(
                f"SQLiteStore: the folder of {str(self.path)!r} does not exist; create it "
                "or choose another path"
            )
        self._timeout = timeout
        self._synchronous = synchronous
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="personalize-sqlite")
        # Reads of single profiles (cache misses of the middleware) have a thread and a
        # connection of their own: they never queue behind write batches or a compaction.
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="personalize-read")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        if compact_after < 1:
            raise ConfigurationError("SQLiteStore: compact_after must be at least 1")
        self.compact_interval = compact_interval
        self.compact_after = compact_after
        self._last_compact = time.monotonic()
        # What this process appended to the log since its last compaction: changes, rows.
        self._appended = self._appended_rows = 0
        self._forwards = Forwards()
        if anonymous_ttl < 0:
            raise ConfigurationError("SQLiteStore: anonymous_ttl is seconds, 0 or more")
        self.anonymous_ttl = anonymous_ttl
        self._clock = clock
        self.expire_interval = EXPIRE_INTERVAL  # seconds of ``clock`` between expiries
        self._next_expiry = float("-inf")  # expire at the first batch

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = open_connection(self.path, timeout=self._timeout, synchronous=self._synchronous)
            self._local.conn = conn
            self._connections.append(conn)
        return conn

    async def _run(
        self, fn: Callable[[sqlite3.Connection], T], executor: ThreadPoolExecutor | None = None
    ) -> T:
        if self._closed:
            raise StoreError(f"{self!r} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                executor or self._executor, lambda: fn(self._connection())
            )
        except sqlite3.OperationalError as exc:  # locked past the timeout, disk I/O, full...
            raise StoreUnavailableError(f"{self!r}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"{self!r}: {exc}") from exc

    def _read(
        self, conn: sqlite3.Connection, keys: Sequence[str], quarantine: list[bytes]
    ) -> dict[str, Profile | None]:
        """The profiles of ``keys`` with their pending changes folded in (see fold_logged)."""
        stored = self._stored(conn, keys)
        pending: dict[str, list[Change]] = {}
        wanted = set(keys)
        for _, batch in log_rows(conn, keys):
            for key, values in batch.items():
                if key in wanted:
                    pending.setdefault(key, []).extend(map(change_from_value, values))
        timeout = self.session_timeout
        return {
            key: fold_logged(key, stored.get(key), pending.get(key), timeout, quarantine)
            for key in keys
        }

    def _stored(self, conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, bytes | str]:
        """The stored JSON of those ``keys`` that have a profile which has not expired."""
        cutoff = self._clock() - self.anonymous_ttl if self.anonymous_ttl else None
        stored: dict[str, bytes | str] = {}
        for marks, chunk in chunks(keys):
            query = f"SELECT key, data, updated FROM profiles WHERE key IN ({marks})"
            for key, data, updated in conn.execute(query, chunk):
                if not expired(key, updated, cutoff):
                    stored[key] = data
        return stored

    async def get(self, key: str) -> Profile | None:
        def read(conn: sqlite3.Connection) -> Profile | None:
            # One read transaction, one snapshot: a compaction by another process cannot
            # move changes from the log into the profile between the two reads.
            conn.execute("BEGIN")
            try:  # what cannot be read is left out here, and set aside by the next write
                return self._read(conn, [key], [])[key]
            finally:
                conn.execute("COMMIT")

        return await self._run(read, self._reader)

    async def update_many(self, mutations: Mapping[str, Mutation]) -> dict[str, Profile | None]:
        def write(conn: sqlite3.Connection) -> dict[str, Profile | None]:
            now = self._clock()
            keys = list(mutations)
            conn.execute("BEGIN IMMEDIATE")
            try:
                quarantine: list[bytes] = []
                current = self._read(conn, keys, quarantine)
                upserts: list[tuple[str, bytes, float, int]] = []
                deletes: list[tuple[str]] = []
                forwards: list[tuple[str, float]] = []
                result: dict[str, Profile | None] = {}
                for key in keys:
                    new = mutations[key](current[key])
                    if new is None:
                        deletes.append((key,))
                    else:
                        merged = int(new.merged_into is not None)
                        upserts.append((key, new.to_json(), now, merged))
                        if merged:  # a tombstone: its page views in flight are forwarded
                            until = max(new.merged_at or now, now) + FORWARD_ROW_LIFE
                            forwards.append((key, until))
                    result[key] = new
                unlog(conn, keys)  # folded into the profiles now
                if upserts:
                    conn.executemany(UPSERT, upserts)
                if deletes:
                    conn.executemany("DELETE FROM profiles WHERE key = ?", deletes)
                    conn.executemany("DELETE FROM forwards WHERE key = ?", deletes)
                if forwards:  # a new id: every process reads rows past the last id it saw
                    query = "INSERT OR REPLACE INTO forwards (key, until) VALUES (?, ?)"
                    conn.executemany(query, forwards)
                set_aside(conn, quarantine)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self._run(write)

    async def apply_changes(
        self, changes: Mapping[str, Sequence[Change]], *, batch_id: str | None = None
    ) -> dict[str, Profile]:
        """Append page views and events to the change log (see the class docstring).

        Returns no profiles: callers that cache profiles fold the changes in themselves.
        """

        def append(conn: sqlite3.Connection) -> tuple[int, int]:
            now = self._clock()
            conn.execute("BEGIN IMMEDIATE")
            try:
                if batch_id is not None:
                    inserted = conn.execute(
                        "INSERT OR IGNORE INTO batches (id, ts) VALUES (?, ?)", (batch_id, now)
                    ).rowcount
                    if not inserted:  # this batch was written before
                        conn.execute("COMMIT")
                        return 0, 0
                # Changes that reach a merged anonymous id go where the tombstone says.
                entry = self._forwards.route(conn, changes, now)
                rows = log_rows_of(entry)
                conn.executemany("INSERT INTO log (keys, data) VALUES (?, ?)", rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return sum(map(len, entry.values())), len(rows)

        appended, rows = await self._run(append)
        self._appended += appended
        self._appended_rows += rows
        if (
            self._appended >= self.compact_after
            or self._appended_rows >= MAX_LOG_ROWS
            or (self._appended and time.monotonic() - self._last_compact > self.compact_interval)
        ):
            self._appended = self._appended_rows = 0
            self._last_compact = time.monotonic()
            try:
                await self.compact()
            except Exception:  # the changes are stored: the caller must not hear otherwise
                logger.exception("personalize: compacting the change log failed; will retry")
        if self.anonymous_ttl and self._clock() >= self._next_expiry:
            self._next_expiry = self._clock() + self.expire_interval
            await self.expire()
        return {}

    async def expire(self, *, max_rows: int = 20_000) -> int:
        """Delete anonymous profiles nobody wrote for ``anonymous_ttl`` seconds, up to
        ``max_rows``, a few hundred per transaction; returns how many. Runs by itself once a
        minute after a write batch; call it to expire now."""
        if not self.anonymous_ttl:
            return 0
        deleted = 0
        while deleted < max_rows:
            cutoff = self._clock() - self.anonymous_ttl
            limit = min(EXPIRE_BATCH, max_rows - deleted)
            batch = await self._run(functools.partial(expire_batch, cutoff=cutoff, limit=limit))
            deleted += batch
            if batch < limit:
                break
        return deleted

    async def compact(self, *, max_rows: int = 5000, max_keys: int = 2000) -> int:
        """Fold the oldest rows (write batches) of the log, up to ``max_rows``, into their
        stored profiles and delete them from the log; returns how many profiles were
        rewritten. Reads the log in id order, the order it is written in. Each transaction
        rewrites about ``max_keys`` profiles, so that other writers (and this process's
        next batch) never wait long for the lock."""

        def fold(conn: sqlite3.Connection, limit: int) -> tuple[int, int]:
            now = self._clock()
            conn.execute("BEGIN IMMEDIATE")
            try:
                pending, last, taken = oldest_changes(conn, limit, max_keys)
                if last is None:
                    conn.execute("COMMIT")
                    return 0, 0
                keys = list(pending)
                stored = self._stored(conn, keys)
                upserts: list[tuple[str, bytes, float, int]] = []
                quarantine: list[bytes] = []
                timeout = self.session_timeout
                for key in keys:
                    changes = list(map(change_from_value, pending[key]))
                    profile = fold_logged(key, stored.get(key), changes, timeout, quarantine)
                    if profile is None:
                        continue  # nothing to create (see creates_profile)
                    data = encode_or_set_aside(key, profile, changes, quarantine)
                    if data is not None:
                        upserts.append((key, data, now, int(profile.merged_into is not None)))
                conn.executemany(UPSERT, upserts)
                set_aside(conn, quarantine)
                # Everything up to the last id read: a range of the table, no search.
                conn.execute("DELETE FROM log WHERE id <= ?", (last,))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return len(upserts), taken

        rewritten = rows = 0
        while rows < max_rows:
            profiles, taken = await self._run(functools.partial(fold, limit=max_rows - rows))
            rewritten, rows = rewritten + profiles, rows + taken
            if taken == 0:
                break
        return rewritten

    async def delete(self, key: str) -> bool:
        def remove(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            try:
                found = conn.execute("DELETE FROM profiles WHERE key = ?", (key,)).rowcount
                found += unlog(conn, [key])
                conn.execute("DELETE FROM forwards WHERE key = ?", (key,))
                found += conn.execute("DELETE FROM quarantine WHERE key = ?", (key,)).rowcount
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return found > 0

        return await self._run(remove)

    async def quarantined(self, key: str) -> list[dict[str, Any]]:
        return await self._run(lambda conn: quarantined(conn, key), self._reader)

    async def erase(self, key: str) -> list[str]:
        """Delete a profile and its aliases, then checkpoint the write-ahead log so no copy
        of the erased pages stays behind in it."""
        removed = await super().erase(key)
        await self._run(lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
        return removed

    async def keys(self) -> list[str]:
        """Every stored key (for maintenance and tests, not for the request path)."""

        def read(conn: sqlite3.Connection) -> list[str]:
            found = {str(row[0]) for row in conn.execute("SELECT key FROM profiles")}
            for (data,) in conn.execute("SELECT data FROM log"):
                found.update(orjson.loads(data))
            return sorted(found)

        return await self._run(read)

    def state_store(self) -> StateStore:
        """Decision state in the same file (tables of its own)."""
        return SQLiteStateStore(self.path, timeout=self._timeout)

    async def close(self) -> None:
        if self._closed:
            return

        def close_all() -> None:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
            self._local.conn = None

        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._reader, lambda: None)  # reads in flight are done
            self._reader.shutdown(wait=True)
            await loop.run_in_executor(self._executor, close_all)
        finally:
            self._reader.shutdown(wait=True)
            self._executor.shutdown(wait=True)
