"""The SQLite store's file: its schema, migrations, and the change log.

Page views and events are appended to a change log rather than rewriting the profile each
time: a profile rewrite (read, decode, fold, encode) costs ten times an append. Each write
batch is one row of the log, holding its changes by key; the batch id is remembered, so a
batch sent twice is written once. The log has no index by key: an index puts every change
on a random page of the index (7 KB of write-ahead log per page view, measured), where a
batch row is written to the end of the table. A read finds the rows of its key with instr()
over the rows' key lists (:func:`log_rows`) and folds their changes in; a compaction folds
the oldest rows into the stored profiles (:func:`oldest_changes`) and deletes them, a
sequential read and a range delete. Any other update of a profile (merge, erase, identity)
takes its changes out of the log first (:func:`unlog`).

>>> keys_text(["v:a", "v:b"])
'\\nv:a\\nv:b\\n'
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import orjson

from personalize.profiles.changes import FORWARD_GRACE
from personalize.stores.sqlite_expiry import INDEX as ANONYMOUS_INDEX

__all__ = [
    "BATCH_MEMORY",
    "FORWARD_ROW_LIFE",
    "INSTR_KEYS",
    "MAX_LOG_ROWS",
    "MAX_ROW_CHANGES",
    "PRUNE_INTERVAL",
    "UPSERT",
    "chunks",
    "keys_text",
    "log_rows",
    "log_rows_of",
    "oldest_changes",
    "open_connection",
    "unlog",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    key      TEXT PRIMARY KEY,
    data     BLOB NOT NULL,
    updated  REAL NOT NULL,
    merged   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    id       INTEGER PRIMARY KEY,
    keys     TEXT NOT NULL,
    data     BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    id       TEXT PRIMARY KEY,
    ts       REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS batches_by_ts ON batches (ts);
CREATE TABLE IF NOT EXISTS forwards (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    key      TEXT NOT NULL UNIQUE,
    until    REAL NOT NULL
);
DROP INDEX IF EXISTS tombstones;
CREATE TABLE IF NOT EXISTS quarantine (
    id       INTEGER PRIMARY KEY,
    key      TEXT NOT NULL,
    data     BLOB NOT NULL,
    ts       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS quarantine_by_key ON quarantine (key);
"""
# ``forwards`` lists the anonymous ids merged into a known profile (tombstones) whose page
# views may still arrive: each write batch reads the rows added since its process last
# looked (ids only grow: AUTOINCREMENT), so the check of a batch's keys against the
# tombstones is a set lookup in memory. A row is kept a day past the forwarding grace
# period, as long as a batch id is remembered (a batch retried that late is forwarded too).
# ``quarantine`` keeps what a compaction or write could not read, fold or encode (a
# :func:`quarantine_record` each), so that one bad profile never stops the others.
# The change log: one row per write batch. ``keys`` lists the batch's profile keys between
# newlines ("\nv:a\nv:b\n"), so a read finds the rows of a key with instr() and no index;
# ``data`` is the JSON object {key: [change, ...]} (changes as :func:`change_value` gives
# them). Files of earlier versions have a ``changes`` table (one row per change, indexed by
# key): its rows are moved into the log when the file is opened.
BATCH_MEMORY = 86_400.0  # seconds a write batch id is remembered (a retry comes far sooner)
PRUNE_INTERVAL = 60.0  # seconds between prunes of the remembered batch ids and forwards
FORWARD_ROW_LIFE = FORWARD_GRACE + BATCH_MEMORY  # seconds a forwards row is kept
IN_CHUNK = 500  # keys per IN (...) query
INSTR_KEYS = 16  # reads of up to this many keys search the log; more read all of it
MAX_LOG_ROWS = 2000  # a process compacts once it appended this many rows (batches)
MAX_ROW_CHANGES = 2000  # changes per log row (a larger batch is split between keys)
UPSERT = (
    "INSERT INTO profiles (key, data, updated, merged) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(key) DO UPDATE SET data = excluded.data, "
    "updated = excluded.updated, merged = excluded.merged"
)


def marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def keys_text(keys: Iterable[str]) -> str:
    """The ``keys`` column of a log row: each key between newlines, for instr()."""
    return "\n" + "\n".join(keys) + "\n"


def log_rows_of(entry: dict[str, list[Any]]) -> list[tuple[str, bytes]]:
    """The log rows of one write batch: usually one; a batch larger than
    ``MAX_ROW_CHANGES`` (the buffer of an outage, written at once) is split between keys,
    so that a read of one key never decodes megabytes."""
    rows: list[tuple[str, bytes]] = []
    part: dict[str, list[Any]] = {}
    size = 0
    for key, values in entry.items():
        if part and size + len(values) > MAX_ROW_CHANGES:
            rows.append((keys_text(part), orjson.dumps(part)))
            part, size = {}, 0
        part[key] = values
        size += len(values)
    if part:
        rows.append((keys_text(part), orjson.dumps(part)))
    return rows


def log_rows(
    conn: sqlite3.Connection, keys: Sequence[str]
) -> list[tuple[int, dict[str, list[Any]]]]:
    """(id, {key: [change, ...]}) of the log rows that may hold changes of ``keys``."""
    if not keys:
        return []
    if len(keys) <= INSTR_KEYS:
        where = " OR ".join(["instr(keys, ?) > 0"] * len(keys))
        query = f"SELECT id, data FROM log WHERE {where} ORDER BY id"
        cursor = conn.execute(query, [f"\n{key}\n" for key in keys])
    else:
        cursor = conn.execute("SELECT id, data FROM log ORDER BY id")
    return [(row_id, orjson.loads(data)) for row_id, data in cursor]


def oldest_changes(
    conn: sqlite3.Connection, limit: int, max_keys: int
) -> tuple[dict[str, list[Any]], int | None, int]:
    """The changes of the oldest log rows, by key, as stored (decode each key's with
    :func:`~personalize.profiles.changes.change_from_value` when it is folded: decoding
    them all first kept tens of thousands of objects alive, and the garbage collector
    walked them again and again): up to ``limit`` rows, stopping once they hold
    ``max_keys`` keys; with the id of the last row read (None: the log is empty) and how
    many rows were read."""
    pending: dict[str, list[Any]] = {}
    last, taken = None, 0
    rows = conn.execute("SELECT id, data FROM log ORDER BY id LIMIT ?", (limit,)).fetchall()
    for row_id, data in rows:
        for key, values in orjson.loads(data).items():
            pending.setdefault(key, []).extend(values)
        last, taken = int(row_id), taken + 1
        if len(pending) >= max_keys:
            break
    return pending, last, taken


def unlog(conn: sqlite3.Connection, keys: Sequence[str]) -> int:
    """Delete the changes of ``keys`` from the log; returns how many there were."""
    wanted = set(keys)
    removed = 0
    for row_id, batch in log_rows(conn, keys):
        found = [key for key in batch if key in wanted]
        if not found:
            continue
        for key in found:
            removed += len(batch.pop(key))
        if batch:
            conn.execute(
                "UPDATE log SET keys = ?, data = ? WHERE id = ?",
                (keys_text(batch), orjson.dumps(batch), row_id),
            )
        else:
            conn.execute("DELETE FROM log WHERE id = ?", (row_id,))
    return removed


def migrate_changes(conn: sqlite3.Connection) -> None:
    """Move the rows of an earlier version's ``changes`` table into the log, and drop it."""
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'changes'"
    if conn.execute(query).fetchone() is None:
        return
    batch: dict[str, list[Any]] = {}
    for key, data in conn.execute("SELECT key, data FROM changes ORDER BY id"):
        batch.setdefault(str(key), []).append(orjson.loads(data))
    conn.executemany("INSERT INTO log (keys, data) VALUES (?, ?)", log_rows_of(batch))
    conn.execute("DROP TABLE changes")


def fill_forwards(conn: sqlite3.Connection) -> None:
    """List the tombstones of a file written before ``forwards`` existed."""
    conn.execute(
        "INSERT OR IGNORE INTO forwards (key, until) SELECT key, "
        "max(coalesce(json_extract(data, '$.merged_at'), 0), updated) + ? FROM profiles "
        "WHERE merged = 1",
        (FORWARD_ROW_LIFE,),
    )


def chunks(keys: Sequence[str]) -> Iterator[tuple[str, list[str]]]:
    for start in range(0, len(keys), IN_CHUNK):
        chunk = list(keys[start : start + IN_CHUNK])
        yield marks(chunk), chunk


def enter_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Put the file in WAL mode (a no-op once it is). Two processes that open a new file at
    once both switch it, and SQLite fails the second switch at once ("database is locked")
    instead of waiting: it is tried again for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def open_connection(
    path: str | os.PathLike[str],
    *,
    timeout: float,
    synchronous: Literal["OFF", "NORMAL", "FULL"],
) -> sqlite3.Connection:
    """A connection to the store's file in WAL mode, with the schema created or migrated."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        enter_wal(conn, timeout)
        conn.execute(f"PRAGMA synchronous={synchronous}")
        # Erased profiles are overwritten on disk, not just unlinked from the tree.
        conn.execute("PRAGMA secure_delete=ON")
        # After a checkpoint the write-ahead log shrinks back to this size (bytes), so a
        # burst of writes does not leave a large file behind for good.
        conn.execute("PRAGMA journal_size_limit=67108864")
        # Schema and migrations in one transaction that takes the write lock first
        # (waiting for it): with several processes opening the file at once, a
        # statement that read the schema and then writes would fail at once.
        conn.execute("BEGIN IMMEDIATE")
        try:
            query = "SELECT 1 FROM sqlite_master WHERE name = 'forwards'"
            had_forwards = conn.execute(query).fetchone() is not None
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(ANONYMOUS_INDEX)  # (its WHERE clause holds a ";")
            if not had_forwards:
                fill_forwards(conn)
            migrate_changes(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        raise
    return conn
