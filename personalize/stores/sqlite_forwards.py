"""Where the SQLite store's appended changes go: to their own profile, or, for a merged
anonymous id (a tombstone), the page views in flight during the login to the known profile.

The ``forwards`` table lists the tombstones whose page views may still arrive; each process
reads the rows added since it last looked (ids only grow), so checking a write batch's keys
against the tombstones is a set lookup in memory.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from personalize.profiles.changes import Change, change_value, split_forwarded
from personalize.profiles.profile import Profile
from personalize.stores.sqlite_schema import BATCH_MEMORY, PRUNE_INTERVAL, chunks

__all__ = ["Forwards"]


class Forwards:
    """This process's view of the ``forwards`` table, and the routing of a write batch."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}  # tombstone key -> until when it forwards
        self._seen = 0  # the last row id read
        self._last_prune = float("-inf")  # prune at the first batch

    def route(
        self, conn: sqlite3.Connection, changes: Mapping[str, Sequence[Change]], now: float
    ) -> dict[str, list[Any]]:
        """The log entry of a write batch: ``{key: [change value, ...]}``, with the changes
        that reach a tombstone split as it says (inside the batch's transaction)."""
        if time.monotonic() - self._last_prune > PRUNE_INTERVAL:
            self._prune(conn, now)
        self._read_new(conn)
        keys = [k for k, v in changes.items() if v]
        merged = [key for key in keys if key in self._until]
        tombstones: dict[str, Profile] = {}
        for marks, chunk in chunks(merged):
            query = f"SELECT key, data FROM profiles WHERE key IN ({marks})"
            for key, data in conn.execute(query, chunk):
                tombstone = Profile.from_json(data)
                if tombstone.merged_into is not None:
                    tombstones[key] = tombstone
        entry: dict[str, list[Any]] = {}
        for key in keys:
            items: Sequence[Change] = changes[key]
            tomb = tombstones.get(key)
            if tomb is not None:
                ordered = sorted(items, key=lambda c: c.ts)
                items, forwarded = split_forwarded(tomb, ordered)
                assert tomb.merged_into is not None
                if forwarded:
                    entry.setdefault(tomb.merged_into, []).extend(map(change_value, forwarded))
            if items:
                entry.setdefault(key, []).extend(map(change_value, items))
        return entry

    def _read_new(self, conn: sqlite3.Connection) -> None:
        """Take in the forwards rows other processes (or this one) added since last time."""
        query = "SELECT id, key, until FROM forwards WHERE id > ? ORDER BY id"
        for row_id, key, until in conn.execute(query, (self._seen,)):
            self._until[str(key)] = float(until)
            self._seen = int(row_id)

    def _prune(self, conn: sqlite3.Connection, now: float) -> None:
        """Forget batch ids and forwards older than they can matter (once a minute)."""
        # A range on the ts index: at 50 batches a second the table holds millions of ids,
        # too many to scan per batch.
        conn.execute("DELETE FROM batches WHERE ts < ?", (now - BATCH_MEMORY,))
        conn.execute("DELETE FROM forwards WHERE until < ?", (now,))
        self._until = {k: u for k, u in self._until.items() if u >= now}
        self._last_prune = time.monotonic()
