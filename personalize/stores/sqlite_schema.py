"""The SQLite store's file: its schema, migrations, and the change log's row format.

>>> keys_text(["v:a", "v:b"])
'\\nv:a\\nv:b\\n'
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

import orjson

from personalize.profiles.changes import FORWARD_GRACE

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
    "log_rows_of",
    "open_connection",
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
"""
# ``forwards`` lists the anonymous ids merged into a known profile (tombstones) whose page
# views may still arrive: each write batch reads the rows added since its process last
# looked (ids only grow: AUTOINCREMENT), so the check of a batch's keys against the
# tombstones is a set lookup in memory. A row is kept a day past the forwarding grace
# period, as long as a batch id is remembered (a batch retried that late is forwarded too).
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


def open_connection(
    path: str | os.PathLike[str],
    *,
    timeout: float,
    synchronous: Literal["OFF", "NORMAL", "FULL"],
) -> sqlite3.Connection:
    """A connection to the store's file in WAL mode, with the schema created or migrated."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        # Erased profiles are overwritten on disk, not just unlinked from the tree.
        conn.execute("PRAGMA secure_delete=ON")
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
