"""The StateStore interface: decision state every worker shares and a restart keeps.

Profiles are per visitor; decision state is per slot, variant and context bucket, or small
and short-lived per visitor. Three kinds of it, one interface:

- **counters**: named float fields under a key (a hash), added to atomically and in
  batches: a bandit arm's exposures and rewards per context bucket, frequency caps, holdout
  exposures and outcomes;
- **values**: small bytes under a key with a time to live, set outright or only if absent
  (two workers racing for a visitor's session pick agree on the first);
- **blobs**: versioned snapshots (a learned model): each put is the next version, the newest
  few are kept.

Counters and values live in separate namespaces: a key may hold both, and :meth:`delete`
removes both. Backends: :class:`~personalize.stores.state_memory.MemoryStateStore`,
:class:`~personalize.stores.state_sqlite.SQLiteStateStore`,
:class:`~personalize.stores.state_redis.RedisStateStore`.

>>> import asyncio
>>> from personalize.stores.state_memory import MemoryStateStore
>>> store = MemoryStateStore()
>>> asyncio.run(store.increment({"hero/a|*": {"trials": 2.0, "rewards": 1.0}}))
{'hero/a|*': {'trials': 2.0, 'rewards': 1.0}}
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from personalize.stores.state_feed import Changes

__all__ = [
    "MAX_BLOB_BYTES",
    "MAX_KEY_LENGTH",
    "MAX_VALUE_BYTES",
    "Increments",
    "StateStore",
    "check_blob",
    "check_increments",
    "check_key",
    "check_keys",
    "check_ttl",
    "check_values",
]

#: key -> {field: amount to add}
Increments = Mapping[str, Mapping[str, float]]

MAX_KEY_LENGTH = 512  # characters of a key, a field or a blob name
MAX_VALUE_BYTES = 64 * 1024  # a value is small: a session pick, a count
MAX_BLOB_BYTES = 256 * 1024 * 1024  # a model snapshot
MAX_TTL = 10 * 365 * 24 * 3600.0  # seconds
_STR = {str}


class StateStore(abc.ABC):
    """Async, shared decision state: counters, values with a TTL, and versioned blobs.

    Every method takes or returns many keys at once, so a backend answers a batch in one
    round trip. Counters of one key change atomically: an increment of several fields is
    seen whole or not at all.

    A store with ``has_feed`` also answers :meth:`changes`: which keys each write changed,
    so that workers keep using their copies of keys that no other writer changed (see
    :mod:`~personalize.stores.state_feed`).
    """

    #: True when :meth:`changes` reports every write (the SQLite, Redis and memory stores).
    has_feed: bool = False

    @abc.abstractmethod
    async def increment(
        self, changes: Increments, *, ttl: float | None = None, batch_id: str | None = None
    ) -> dict[str, dict[str, float]]:
        """Add each amount to its key's field (a missing field starts at 0) and return every
        field of each key afterwards.

        ``ttl`` (seconds) makes each key expire that long after this call, all of its
        fields together; None leaves a key's expiry as it was. With a ``batch_id``, a batch
        sent again (after a timeout whose outcome was unknown) is added only once.

        An id ``<writer>#<n>`` (``n`` a decimal integer) also gives the batch's place among
        its writer's: a store may skip a batch whose ``n`` is at or below the last it applied
        of that writer for a key (the Redis store does: a window of recent ids is outlived
        within a second by a key that every worker writes every few milliseconds). Its writer
        sends its batches one at a time, in increasing ``n``, a failed one again before any
        later one (as :class:`~personalize.services.state.StateService` does).
        """

    @abc.abstractmethod
    async def counters(self, keys: Sequence[str]) -> dict[str, dict[str, float]]:
        """Every field of each key that has counters (keys without any are absent)."""

    @abc.abstractmethod
    async def values(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The value of each key that holds one (expired and absent keys are left out)."""

    async def read(
        self, counters: Sequence[str], values: Sequence[str]
    ) -> tuple[dict[str, dict[str, float]], dict[str, bytes]]:
        """:meth:`counters` of ``counters`` and :meth:`values` of ``values`` at once (what a
        page reads before it decides); stores that can, answer both in one round trip."""
        return await self.counters(counters), await self.values(values)

    @abc.abstractmethod
    async def put_values(
        self,
        items: Mapping[str, bytes],
        *,
        ttl: float | None,
        only_if_absent: bool = False,
        writer: str = "",
    ) -> dict[str, bytes]:
        """Store each value for ``ttl`` seconds (None: until deleted); returns the value each
        key holds afterwards. With ``only_if_absent`` a value already there stays and is the
        one returned: of two workers putting at once, both get the first one's. ``writer``
        names the caller in the change feed (as a batch id's ``<writer>`` does)."""

    @abc.abstractmethod
    async def delete(self, keys: Sequence[str]) -> int:
        """Remove the counters and the value of each key; returns how many keys held any.
        A deletion is an erasure: no copy of what was deleted stays on disk."""

    @abc.abstractmethod
    async def keys(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix`` that holds counters or a value: a scan, for
        erasure and maintenance, never on the request path."""

    @abc.abstractmethod
    async def put_blob(self, name: str, data: bytes, *, keep: int = 3) -> int:
        """Store ``data`` as the next version of blob ``name`` and return that version
        (1, 2, ...); only the newest ``keep`` versions are kept."""

    @abc.abstractmethod
    async def get_blob(self, name: str, version: int | None = None) -> tuple[int, bytes] | None:
        """``(version, data)`` of the newest version of ``name`` (or of ``version``), or None."""

    async def changes(self, after: int | None) -> Changes:
        """The writes after feed position ``after`` (None: only where the feed is now), for
        stores with ``has_feed``; see :mod:`~personalize.stores.state_feed`."""
        raise NotImplementedError(f"{type(self).__name__} keeps no change feed")

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Release connections and threads."""


def check_key(key: object, what: str = "key") -> str:
    """``key`` if it is a usable key, field or blob name; ValueError otherwise.

    >>> check_key("hero/a|*")
    'hero/a|*'
    >>> check_key("")
    Traceback (most recent call last):
    ...
    ValueError: a state key is a non-empty string of at most 512 characters
    """
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(
            f"a state {what} is a non-empty string of at most {MAX_KEY_LENGTH} characters"
        )
    return key


def check_keys(*groups: Sequence[str]) -> None:
    """:func:`check_key` for every key of ``groups`` (reads check many keys at once)."""
    for keys in groups:  # (in C: types, emptiness, lengths; the message from check_key)
        if keys and (
            {*map(type, keys)} != _STR or not all(keys) or max(map(len, keys)) > MAX_KEY_LENGTH
        ):
            for key in keys:
                check_key(key)


def check_ttl(ttl: float | None) -> float | None:
    """``ttl`` if it is None or a positive, finite number of seconds; ValueError otherwise."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise ValueError("ttl is a number of seconds or None")
    if not 0 < ttl <= MAX_TTL:
        raise ValueError(f"ttl is more than 0 and at most {MAX_TTL:.0f} seconds, not {ttl!r}")
    return float(ttl)


def check_increments(changes: Increments) -> dict[str, dict[str, float]]:
    """``changes`` as plain dicts of floats; ValueError for a bad key, a field starting with
    ``~`` (reserved by the backends) or an amount that is not a finite number.

    >>> check_increments({"k": {"trials": 1}})
    {'k': {'trials': 1.0}}
    >>> check_increments({"k": {"trials": float("nan")}})
    Traceback (most recent call last):
    ...
    ValueError: the amount of k.trials is not a finite number: nan
    """
    out: dict[str, dict[str, float]] = {}
    for key, fields in changes.items():
        check_key(key)
        amounts: dict[str, float] = {}
        for field, amount in fields.items():
            if check_key(field, "field").startswith("~"):
                raise ValueError(f"counter fields starting with '~' are reserved: {field!r}")
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise ValueError(f"the amount of {key}.{field} is not a number: {amount!r}")
            if not math.isfinite(amount) or abs(amount) > 1e15:
                raise ValueError(f"the amount of {key}.{field} is not a finite number: {amount!r}")
            amounts[field] = float(amount)
        if amounts:
            out[key] = amounts
    return out


def check_values(items: Mapping[str, bytes]) -> None:
    """ValueError for a bad key or a value that is not bytes of at most 64 KiB."""
    for key, value in items.items():
        check_key(key)
        if not isinstance(value, bytes) or len(value) > MAX_VALUE_BYTES:
            raise ValueError(f"the value of {key} is not bytes of at most {MAX_VALUE_BYTES}")


def check_blob(name: str, data: bytes, keep: int) -> None:
    """ValueError for a bad blob name, data that is not bytes, or ``keep`` below 1."""
    check_key(name, "blob name")
    if not isinstance(data, bytes) or len(data) > MAX_BLOB_BYTES:
        raise ValueError(f"blob {name} is not bytes of at most {MAX_BLOB_BYTES}")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError("keep is at least 1 version")
