"""The embedded default store: SQLite from the standard library, durable, in WAL mode."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar

from personalize.exceptions import ConfigurationError, StoreError
from personalize.profile import Profile
from personalize.stores.base import Mutation, ProfileStore

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    key      TEXT PRIMARY KEY,
    data     TEXT NOT NULL,
    updated  REAL NOT NULL
) WITHOUT ROWID;
"""


class SQLiteStore(ProfileStore):
    """Profiles in one SQLite file; safe for several processes on one host.

    All database work runs on one dedicated thread, so the event loop never blocks on disk.
    Each :meth:`update_many` is one ``BEGIN IMMEDIATE`` transaction: atomic per key against
    other tasks, threads and processes sharing the file.

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
                conn.execute(_SCHEMA)
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

    async def get(self, key: str) -> Profile | None:
        def read(conn: sqlite3.Connection) -> bytes | str | None:
            row = conn.execute("SELECT data FROM profiles WHERE key = ?", (key,)).fetchone()
            return None if row is None else row[0]

        raw = await self._run(read)
        return None if raw is None else Profile.from_json(raw)

    async def update_many(self, mutations: Mapping[str, Mutation]) -> dict[str, Profile | None]:
        def write(conn: sqlite3.Connection) -> dict[str, Profile | None]:
            result: dict[str, Profile | None] = {}
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            try:
                for key, mutate in mutations.items():
                    row = conn.execute("SELECT data FROM profiles WHERE key = ?", (key,)).fetchone()
                    old = None if row is None else Profile.from_json(row[0])
                    new = mutate(old)
                    if new is None:
                        conn.execute("DELETE FROM profiles WHERE key = ?", (key,))
                    else:
                        conn.execute(
                            "INSERT INTO profiles (key, data, updated) "
                            "VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE "
                            "SET data = excluded.data, updated = excluded.updated",
                            (key, new.to_json(), now),
                        )
                    result[key] = new
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self._run(write)

    async def delete(self, key: str) -> bool:
        def remove(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM profiles WHERE key = ?", (key,)).rowcount > 0

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
            return [str(row[0]) for row in conn.execute("SELECT key FROM profiles")]

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
