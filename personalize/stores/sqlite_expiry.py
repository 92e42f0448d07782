"""Anonymous profiles in the SQLite store expire, as they do in Redis.

An anonymous profile (and a tombstone, a merged anonymous id) that nobody wrote for
``anonymous_ttl`` seconds is no longer read, and is deleted in the background: a few hundred
rows per transaction, found through a partial index of anonymous profiles by the time they
were last written, so a steady flood of one-time visitors leaves a file that stops growing.
Known profiles never expire.

>>> RANGE
"key >= 'v:' AND key < 'v;'"
"""

from __future__ import annotations

import sqlite3

from personalize.profiles.identity import anonymous_key_range

__all__ = ["EXPIRE_BATCH", "EXPIRE_INTERVAL", "INDEX", "RANGE", "expire_batch", "expired"]

_LOW, _HIGH = anonymous_key_range()
# Literals, not parameters: SQLite uses a partial index only for a query whose WHERE clause
# it can see implies the index's.
RANGE = f"key >= '{_LOW}' AND key < '{_HIGH}'"
INDEX = f"CREATE INDEX IF NOT EXISTS anonymous_by_updated ON profiles (updated) WHERE {RANGE}"
EXPIRE_BATCH = 500  # profiles deleted per transaction: other writers never wait long
EXPIRE_INTERVAL = 60.0  # seconds between two runs of the background expiry


def expired(key: str, updated: float, cutoff: float | None) -> bool:
    """True for an anonymous profile last written before ``cutoff`` (None: nothing expires).

    >>> expired("v:x1", 10.0, 20.0), expired("u:ann", 10.0, 20.0), expired("v:x1", 30.0, 20.0)
    (True, False, False)
    """
    return cutoff is not None and updated < cutoff and _LOW <= key < _HIGH


def expire_batch(conn: sqlite3.Connection, cutoff: float, limit: int = EXPIRE_BATCH) -> int:
    """Delete up to ``limit`` anonymous profiles last written before ``cutoff``, in one
    transaction; returns how many. (Their page views still in the change log, if any, are
    newer: the next compaction starts a new profile with them, as a Redis key that expired
    just before an append.)"""
    conn.execute("BEGIN IMMEDIATE")
    try:
        # The oldest first, through the index (the key range alone would scan every
        # anonymous profile by key).
        query = (
            f"SELECT key FROM profiles INDEXED BY anonymous_by_updated WHERE {RANGE} "
            "AND updated < ? ORDER BY updated LIMIT ?"
        )
        keys = [(row[0],) for row in conn.execute(query, (cutoff, limit))]
        conn.executemany("DELETE FROM profiles WHERE key = ?", keys)
        conn.executemany("DELETE FROM forwards WHERE key = ?", keys)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return len(keys)
