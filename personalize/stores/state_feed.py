"""A state store's change feed: which keys other writers changed, and since when.

Before each page a worker needs its visitor's caps and session picks as every worker left
them. Without a feed it reads them whenever its copy is older than ``cache_ttl`` (a second):
with people's pace, before every page. With a feed, a worker asks the store a few times a
second "what changed since position N?" (one small read for every visitor at once) and keeps
using a copy for as long as no other writer changed its key
(:class:`~personalize.services.counters.CachedCounters`).

A feed entry is one write call: its position (consecutive integers, in commit order), its
writer (the part of the batch id before ``#``, or what the caller passed as ``writer``; ""
for anyone else) and a tag per key written. A tag is the key's CRC-32, not the key: keys
name visitors (``caps:<profile key>``), and an erasure must not leave them in a log; two
keys sharing a tag only cost a read. Entries are kept :data:`FEED_MEMORY` seconds; a reader
whose position fell out of that window, or who is more than :data:`MAX_ENTRIES` behind,
gets None instead of entries and treats every copy as unknown.

>>> feed = MemoryFeed()
>>> feed.log("w1", ["caps:v:1"], now=0.0); feed.log("", ["pick:v:1|0|hero"], now=1.0)
>>> feed.read(None)  # where the feed is now: nothing to report yet
Changes(position=2, entries=None)
>>> feed.read(0).entries == [("w1", [key_tag("caps:v:1")]), ("", [key_tag("pick:v:1|0|hero")])]
True
>>> feed.prune(now=FEED_MEMORY + 0.5); feed.read(0)  # position 1 was pruned: lost track
Changes(position=2, entries=None)
>>> feed.read(1).entries == [("", [key_tag("pick:v:1|0|hero")])]
True
"""

from __future__ import annotations

import sqlite3
import zlib
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import NamedTuple

__all__ = [
    "FEED_MEMORY",
    "FEED_SCHEMA",
    "MAX_ENTRIES",
    "Changes",
    "MemoryFeed",
    "key_tag",
    "log_sqlite",
    "parse_tags",
    "prune_sqlite",
    "read_sqlite",
    "tags_text",
    "writer_of",
]

FEED_MEMORY = 300.0  # seconds a store keeps its feed entries
MAX_ENTRIES = 10_000  # entries one read returns at most; a reader further behind lost track

FEED_SCHEMA = """
CREATE TABLE IF NOT EXISTS state_changes (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    writer   TEXT NOT NULL,
    tags     TEXT NOT NULL,
    at       REAL NOT NULL
)
"""


class Changes(NamedTuple):
    """What a feed read found: the position to read from next time, and ``(writer, tags)``
    per write since the position asked for, oldest first; ``entries`` is None when the
    reader cannot know what changed (no position yet, or entries it needed are gone)."""

    position: int
    entries: list[tuple[str, list[int]]] | None


def key_tag(key: str) -> int:
    """The tag of ``key`` in a feed (its CRC-32).

    >>> key_tag("caps:v:1") == key_tag("caps:v:1") != key_tag("caps:v:2")
    True
    """
    return zlib.crc32(key.encode("utf-8", "surrogatepass"))


def writer_of(batch_id: str | None) -> str:
    """The writer of a batch id ``<writer>#<n>`` ("" for no id or another form).

    >>> writer_of("3fa2-60#17"), writer_of(None), writer_of("plain")
    ('3fa2-60', '', '')
    """
    if batch_id is None or "#" not in batch_id:
        return ""
    return batch_id.rpartition("#")[0]


def tags_text(keys: Iterable[str]) -> str:
    """The tags of ``keys`` as a feed entry holds them (hexadecimal, comma-separated)."""
    return ",".join(f"{key_tag(k):x}" for k in keys)


def parse_tags(text: str) -> list[int]:
    """The tags of a feed entry (see :func:`tags_text`)."""
    return [int(t, 16) for t in text.split(",") if t]


def _changes(after: int | None, rows: Sequence[tuple[int, str, str]], last: int) -> Changes:
    """Changes from ``rows`` (position, writer, tags) read after ``after``, the newest
    position being ``last``; None entries unless the rows are exactly ``after+1 .. last``."""
    if after is None or after > last or len(rows) != last - after:
        return Changes(last, None)
    if rows and (rows[0][0] != after + 1 or rows[-1][0] != last):
        return Changes(last, None)
    return Changes(last, [(writer, parse_tags(tags)) for _, writer, tags in rows])


_position = itemgetter(0)  # of a MemoryFeed entry


class MemoryFeed:
    """The feed of a store in this process (the caller holds the store's lock)."""

    def __init__(self) -> None:
        self._entries: list[tuple[int, str, str, float]] = []
        self._last = 0

    def log(self, writer: str, keys: Iterable[str], *, now: float) -> None:
        """Record one write of ``keys`` by ``writer`` (nothing for no key)."""
        tags = tags_text(keys)
        if not tags:
            return
        self._last += 1
        self._entries.append((self._last, writer, tags, now))
        if len(self._entries) > 2 * MAX_ENTRIES:
            del self._entries[:MAX_ENTRIES]

    def prune(self, *, now: float) -> None:
        """Forget entries older than :data:`FEED_MEMORY` seconds."""
        self._entries = [e for e in self._entries if e[3] >= now - FEED_MEMORY]

    def read(self, after: int | None) -> Changes:
        """What was written after position ``after``."""
        if after is None or self._last - after > MAX_ENTRIES:
            return Changes(self._last, None)
        # Positions only grow along the list: what follows ``after`` is a tail, found by
        # bisection (a reader polls a few times a second; the list holds up to 20,000).
        entries = self._entries
        start = bisect_right(entries, after, key=_position)
        rows = [(p, w, t) for p, w, t, _ in entries[start:]]
        return _changes(after, rows, self._last)


def log_sqlite(conn: sqlite3.Connection, writer: str, keys: Iterable[str], now: float) -> None:
    """Record one write of ``keys`` by ``writer``, in the caller's transaction."""
    tags = tags_text(keys)
    if tags:
        query = "INSERT INTO state_changes (writer, tags, at) VALUES (?, ?, ?)"
        conn.execute(query, (writer, tags, now))


def prune_sqlite(conn: sqlite3.Connection, now: float) -> None:
    """Delete entries older than :data:`FEED_MEMORY` seconds (the position survives them:
    SQLite keeps the last one given in ``sqlite_sequence``)."""
    conn.execute("DELETE FROM state_changes WHERE at < ?", (now - FEED_MEMORY,))


_READ = "SELECT id, writer, tags FROM state_changes WHERE id > ? ORDER BY id LIMIT ?"
_LAST = "SELECT seq FROM sqlite_sequence WHERE name = 'state_changes'"


def read_sqlite(conn: sqlite3.Connection, after: int | None) -> Changes:
    """What was written after position ``after``, in one snapshot."""
    conn.execute("BEGIN")
    try:
        row = conn.execute(_LAST).fetchone()
        last = int(row[0]) if row is not None else 0
        rows: list[tuple[int, str, str]] = []
        if after is not None and 0 <= last - after <= MAX_ENTRIES:
            found = conn.execute(_READ, (after, MAX_ENTRIES))
            rows = [(int(i), str(w), str(t)) for i, w, t in found]
    finally:
        conn.execute("COMMIT")
    return _changes(after, rows, last)
