"""The SQLite store's folding of its change log, and its quarantine: what a write or
compaction could not read, fold or encode is kept in table ``quarantine`` (a
:func:`~personalize.profiles.changes.quarantine_record` per row) so that one bad profile
never stops the others; logged, and erased with its profile. Functions of one connection,
called inside the store's transactions."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

import orjson

from personalize.profiles.changes import (
    Change,
    creates_profile,
    fold_guarded,
    quarantine_record,
    read_stored,
)
from personalize.profiles.profile import Profile

__all__ = ["encode_or_set_aside", "fold_logged", "quarantined", "set_aside"]

logger = logging.getLogger("personalize.sqlite")


def fold_logged(
    key: str,
    raw: bytes | str | None,
    changes: Sequence[Change] | None,
    session_timeout: float,
    quarantine: list[bytes],
) -> Profile | None:
    """A stored profile (JSON, or None) with changes of the log folded in, in time order; a
    profile that cannot be read, or changes that cannot be folded, go to ``quarantine``."""
    profile = read_stored(key, raw, quarantine)
    # Page views of an erased user recreate nothing (see creates_profile).
    if changes and (profile is not None or creates_profile(key, changes)):
        ordered = sorted(changes, key=lambda c: c.ts)
        return fold_guarded(
            key, profile, ordered, session_timeout=session_timeout, quarantine=quarantine
        )
    return profile


def set_aside(conn: sqlite3.Connection, records: Sequence[bytes]) -> None:
    """Keep ``records`` in table ``quarantine`` and log each one."""
    rows = [(orjson.loads(r)["key"], r, time.time()) for r in records]
    conn.executemany("INSERT INTO quarantine (key, data, ts) VALUES (?, ?, ?)", rows)
    for key, record, _ in rows:
        reason = orjson.loads(record)["reason"]
        logger.error("personalize: quarantined data of profile %s: %s", key, reason)


def quarantined(conn: sqlite3.Connection, key: str) -> list[dict[str, Any]]:
    """What was set aside for ``key``, oldest first."""
    query = "SELECT data FROM quarantine WHERE key = ? ORDER BY id"
    return [orjson.loads(data) for (data,) in conn.execute(query, (key,))]


def encode_or_set_aside(
    key: str, profile: Profile, changes: Sequence[Change], quarantine: list[bytes]
) -> bytes | None:
    """``profile`` as stored, or None when it cannot be encoded: then ``changes`` (folded
    into it) are described in ``quarantine`` and the stored profile stays as it was."""
    try:
        return profile.to_json()
    except ValueError as exc:
        why = f"cannot encode: {exc}"[:300]
        quarantine.append(quarantine_record(key, why, changes=[(c, why) for c in changes]))
        return None
