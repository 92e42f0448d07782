"""Reading Redis profiles: a profile's stored JSON with its change log folded in, and the
keys of every profile.

>>> from personalize.profiles.pageviews import Hit
>>> from personalize.profiles.changes import encode_change
>>> entry = b'["b1",' + encode_change(Hit(ts=1.0, path="/", category="shoes")) + b"]"
>>> profile = fold_log("v:a", None, [entry, entry], [], session_timeout=1800)
>>> profile.page_views, profile.batches  # the batch sent twice is folded once
(1, ['b1'])
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from personalize.profiles.changes import (
    MAX_BATCH_IDS,
    Change,
    change_from_value,
    fold_guarded,
    read_stored,
)
from personalize.profiles.identity import user_id_of
from personalize.profiles.profile import Profile

__all__ = ["fold_log", "log_set_aside", "scan_keys", "set_aside"]

logger = logging.getLogger("personalize.redis")


def fold_log(
    key: str,
    raw: bytes | None,
    entries: list[bytes],
    quarantine: list[bytes],
    *,
    session_timeout: float,
) -> Profile | None:
    """The stored profile (JSON ``raw``) with the log's entries folded in, in order; an
    entry whose batch id the profile already holds (a batch sent again after a timeout)
    is skipped. What cannot be read or folded is described in ``quarantine``."""
    profile = read_stored(key, raw, quarantine)
    if not entries:
        return profile
    if profile is None and user_id_of(key) is not None:
        return None  # a log without its profile (see creates_profile): nothing to read
    batches = list(profile.batches) if profile is not None else []
    changes: list[Change] = []
    for entry in entries:
        batch_id, *items = orjson.loads(entry)
        if batch_id is not None:
            if batch_id in batches:
                continue
            batches.append(batch_id)
            del batches[:-MAX_BATCH_IDS]
        changes += sorted(map(change_from_value, items), key=_ts)
    profile = fold_guarded(
        key, profile, changes, session_timeout=session_timeout, quarantine=quarantine
    )
    profile = Profile(key=key) if profile is None else profile
    profile.batches = batches
    return profile


def _ts(change: Change) -> float:
    return change.ts


async def scan_keys(
    client: Any, prefix: str, *, call: Callable[[Any], Awaitable[Any]] | None = None
) -> list[str]:
    """The profile keys under ``prefix`` (a profile and its log are one key). With ``call``
    (one Redis), SCAN call by call, each through ``call`` (the store's timeout); without,
    ``scan_iter``, which visits every primary of a cluster."""
    found: dict[str, None] = {}
    match = f"{prefix}{{*}}*"

    def add(batch: list[bytes]) -> None:
        for raw in batch:
            text = raw.decode()
            end = len(text) - (len(":log") if text.endswith("}:log") else 0) - 1
            if text[end] == "}":
                found[text[len(prefix) + 1 : end]] = None

    if call is None:
        add([raw async for raw in client.scan_iter(match=match, count=500)])
        return list(found)
    cursor = 0
    while True:
        cursor, batch = await call(client.scan(cursor, match=match, count=500))
        add(batch)
        if not cursor:
            return list(found)


def set_aside(fields: dict[bytes, bytes]) -> list[dict[str, Any]]:
    """The records a profile's hash (HGETALL) keeps of what was set aside (fields
    ``q<version>``), oldest first."""
    found = [(int(f[1:]), v) for f, v in fields.items() if f.startswith(b"q")]
    return [r for _, v in sorted(found) for r in orjson.loads(v)]


def log_set_aside(key: str, records: list[bytes]) -> None:
    """Log, at ERROR, each record of what was set aside for ``key``."""
    for record in records:
        reason = orjson.loads(record)["reason"]
        logger.error("personalize: quarantined data of profile %s: %s", key, reason)
