"""The embedded default store: SQLite from the standard library, durable, in WAL mode."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar

from personalize.exceptions import ConfigurationError, StoreError
from personalize.profile import Profile
from personalize.stores.base import (
    Change,
    Mutation,
    ProfileStore,
    decode_change,
    encode_change,
    fold_changes,
    split_forwarded,
)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    key      TEXT PRIMARY KEY,
    data     BLOB NOT NULL,
    updated  REAL NOT NULL,
    merged   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    id       INTEGER PRIMARY KEY,
    key      TEXT NOT NULL,
    data     BLOB NOT NULL,
    ts       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_key ON changes (key, id);
CREATE TABLE IF NOT EXISTS batches (
    id       TEXT PRIMARY KEY,
    ts       REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS batches_by_ts ON batches (ts);
CREATE INDEX IF NOT EXISTS tombstones ON profiles (key) WHERE merged = 1;
"""
# The change log's ids only order rows of one key between compactions (reads sort by ts),
# so they need no AUTOINCREMENT (files written by earlier versions keep it; both work).
BATCH_MEMORY = 86_400.0  # seconds a write batch id is remembered (a retry comes far sooner)
_PRUNE_INTERVAL = 60.0  # seconds between prunes of the remembered batch ids
_IN_CHUNK = 500  # keys per IN (...) query


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def _chunks(keys: Sequence[str]) -> Iterator[tuple[str, list[str]]]:
    for start in range(0, len(keys), _IN_CHUNK):
        chunk = list(keys[start : start + _IN_CHUNK])
        yield _marks(chunk), chunk


class SQLiteStore(ProfileStore):
    """Profiles in one SQLite file; safe for several processes on one host.

    All database work runs on one dedicated thread, so the event loop never blocks on disk.
    Each write is one ``BEGIN IMMEDIATE`` transaction: atomic against other tasks, threads
    and processes sharing the file.

    Page views and events are appended to a change log rather than rewriting the profile
    each time: an append is a few microseconds, a profile rewrite (read, decode, fold,
    encode) ten times that. Reads fold the pending changes in; :meth:`compact` folds them
    into the stored profiles (the middleware calls it every ``compact_interval`` seconds,
    and any other update of a profile compacts it first). Appends carry the batch id, so a
    batch sent twice is written once.

    ``synchronous="NORMAL"`` (the default) survives application crashes; use ``"FULL"`` to
    also survive power loss, at some write cost.

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
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        self.compact_interval = compact_interval
        self._last_compact = time.monotonic()
        self._last_prune = float("-inf")  # prune at the first batch

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
                # Erased profiles are overwritten on disk, not just unlinked from the tree.
                conn.execute("PRAGMA secure_delete=ON")
                conn.executescript(_SCHEMA)
            except BaseException:
                conn.close()
                raise
            self._local.conn = conn
            self._connections.append(conn)
        return conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError(f"{self!r} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(self._connection()))
        except sqlite3.Error as exc:
            raise StoreError(f"{self!r}: {exc}") from exc

    def _read(self, conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, Profile | None]:
        """The profiles of ``keys`` with their pending changes folded in."""
        stored: dict[str, bytes | str] = {}
        pending: dict[str, list[Change]] = {}
        for marks, chunk in _chunks(keys):
            stored.update(
                conn.execute(f"SELECT key, data FROM profiles WHERE key IN ({marks})", chunk)
            )
            for k, data in conn.execute(
                f"SELECT key, data FROM changes WHERE key IN ({marks}) ORDER BY id", chunk
            ):
                pending.setdefault(k, []).append(decode_change(data))
        result: dict[str, Profile | None] = {}
        for key in keys:
            raw = stored.get(key)
            profile = None if raw is None else Profile.from_json(raw)
            changes = pending.get(key)
            if changes:
                profile = Profile(key=key) if profile is None else profile
                kept, _ = split_forwarded(profile, sorted(changes, key=lambda c: c.ts))
                fold_changes(profile, kept, session_timeout=self.session_timeout)
            result[key] = profile
        return result

    async def get(self, key: str) -> Profile | None:
        def read(conn: sqlite3.Connection) -> Profile | None:
            return self._read(conn, [key])[key]

        return await self._run(read)

    async def update_many(self, mutations: Mapping[str, Mutation]) -> dict[str, Profile | None]:
        def write(conn: sqlite3.Connection) -> dict[str, Profile | None]:
            now = time.time()
            keys = list(mutations)
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = self._read(conn, keys)
                upserts: list[tuple[str, bytes, float, int]] = []
                deletes: list[tuple[str]] = []
                result: dict[str, Profile | None] = {}
                for key in keys:
                    new = mutations[key](current[key])
                    if new is None:
                        deletes.append((key,))
                    else:
                        merged = int(new.merged_into is not None)
                        upserts.append((key, new.to_json(), now, merged))
                    result[key] = new
                for marks, chunk in _chunks(keys):  # folded into the profiles now
                    conn.execute(f"DELETE FROM changes WHERE key IN ({marks})", chunk)
                if upserts:
                    conn.executemany(
                        "INSERT INTO profiles (key, data, updated, merged) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET data = excluded.data, "
                        "updated = excluded.updated, merged = excluded.merged",
                        upserts,
                    )
                if deletes:
                    conn.executemany("DELETE FROM profiles WHERE key = ?", deletes)
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

        def append(conn: sqlite3.Connection) -> None:
            now = time.time()
            keys = [k for k, v in changes.items() if v]
            conn.execute("BEGIN IMMEDIATE")
            try:
                if batch_id is not None:
                    inserted = conn.execute(
                        "INSERT OR IGNORE INTO batches (id, ts) VALUES (?, ?)", (batch_id, now)
                    ).rowcount
                    if not inserted:  # this batch was written before
                        conn.execute("COMMIT")
                        return
                    if time.monotonic() - self._last_prune > _PRUNE_INTERVAL:
                        # A range on the ts index, once a minute: at 50 batches a second
                        # the table holds millions of ids, too many to scan per batch.
                        conn.execute("DELETE FROM batches WHERE ts < ?", (now - BATCH_MEMORY,))
                        self._last_prune = time.monotonic()
                # Changes that reach a merged anonymous id go where the tombstone says.
                rows: list[tuple[str, bytes, float]] = []
                tombstones: dict[str, Profile] = {}
                for marks, chunk in _chunks(keys):
                    # Through the partial index of tombstones, which holds only merged
                    # profiles: a search of the profiles themselves reads each row's
                    # overflow pages to get at ``merged`` (7x the time, every batch).
                    merged = [
                        str(k)
                        for (k,) in conn.execute(
                            "SELECT key FROM profiles INDEXED BY tombstones "
                            f"WHERE merged = 1 AND key IN ({marks})",
                            chunk,
                        )
                    ]
                    if merged:
                        query = f"SELECT key, data FROM profiles WHERE key IN ({_marks(merged)})"
                        for key, data in conn.execute(query, merged):
                            tombstones[key] = Profile.from_json(data)
                for key in keys:
                    items = sorted(changes[key], key=lambda c: c.ts)
                    tomb = tombstones.get(key)
                    if tomb is not None:
                        items, forwarded = split_forwarded(tomb, items)  # type: ignore[assignment]
                        assert tomb.merged_into is not None
                        rows += [(tomb.merged_into, encode_change(c), c.ts) for c in forwarded]
                    rows += [(key, encode_change(c), c.ts) for c in items]
                conn.executemany("INSERT INTO changes (key, data, ts) VALUES (?, ?, ?)", rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        await self._run(append)
        if time.monotonic() - self._last_compact > self.compact_interval:
            self._last_compact = time.monotonic()
            await self.compact()
        return {}

    async def compact(self, *, max_keys: int = 2000) -> int:
        """Fold the change log into the stored profiles; returns how many were rewritten."""

        def pending_keys(conn: sqlite3.Connection) -> list[str]:
            query = "SELECT DISTINCT key FROM changes LIMIT ?"
            return [str(row[0]) for row in conn.execute(query, (max_keys,))]

        keys = await self._run(pending_keys)
        if keys:
            await self.update_many({k: _unchanged for k in keys})
        return len(keys)

    async def delete(self, key: str) -> bool:
        def remove(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            found = conn.execute("DELETE FROM profiles WHERE key = ?", (key,)).rowcount
            found += conn.execute("DELETE FROM changes WHERE key = ?", (key,)).rowcount
            conn.execute("COMMIT")
            return found > 0

        return await self._run(remove)

    async def erase(self, key: str) -> list[str]:
        """Delete a profile and its aliases, then checkpoint the write-ahead log so no copy
        of the erased pages stays behind in it."""
        removed = await super().erase(key)

        def checkpoint(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        await self._run(checkpoint)
        return removed

    async def keys(self) -> list[str]:
        """Every stored key (for maintenance and tests, not for the request path)."""

        def read(conn: sqlite3.Connection) -> list[str]:
            query = "SELECT key FROM profiles UNION SELECT key FROM changes"
            return [str(row[0]) for row in conn.execute(query)]

        return await self._run(read)

    async def close(self) -> None:
        if self._closed:
            return

        def close_all() -> None:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
            self._local.conn = None

        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, close_all)
        finally:
            self._executor.shutdown(wait=True)


def _unchanged(profile: Profile | None) -> Profile | None:
    return profile
