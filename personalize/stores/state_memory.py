"""Decision state in this process: for tests and throwaway runs (one worker, forgets on exit).

>>> import asyncio
>>> store = MemoryStateStore()
>>> asyncio.run(store.put_values({"pick": b"a"}, ttl=60, only_if_absent=True))
{'pick': b'a'}
>>> asyncio.run(store.put_values({"pick": b"b"}, ttl=60, only_if_absent=True))
{'pick': b'a'}
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from personalize.stores.state import (
    Increments,
    StateStore,
    check_blob,
    check_increments,
    check_key,
    check_ttl,
    check_values,
)
from personalize.stores.state_feed import Changes, MemoryFeed, writer_of

__all__ = ["MemoryStateStore"]


class MemoryStateStore(StateStore):
    """A :class:`StateStore` in dicts, under a lock (tasks and threads of one process), with
    a change feed like the SQLite store's (services sharing it behave as workers do)."""

    has_feed = True

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (fields, expires at or None)
        self._counters: dict[str, tuple[dict[str, float], float | None]] = {}
        self._values: dict[str, tuple[bytes, float | None]] = {}
        self._blobs: dict[str, tuple[int, dict[int, bytes]]] = {}
        self._batches: dict[str, None] = {}
        self._feed = MemoryFeed()
        self._pruned = clock()

    def _live_counters(self, key: str, now: float) -> tuple[dict[str, float], float | None]:
        entry = self._counters.get(key)
        if entry is None or (entry[1] is not None and entry[1] <= now):
            self._counters.pop(key, None)
            return {}, None
        return entry

    async def increment(
        self, changes: Increments, *, ttl: float | None = None, batch_id: str | None = None
    ) -> dict[str, dict[str, float]]:
        checked = check_increments(changes)
        ttl = check_ttl(ttl)
        with self._lock:
            now = self._clock()
            repeated = batch_id is not None and batch_id in self._batches
            result = {}
            for key, amounts in checked.items():
                fields, expires = self._live_counters(key, now)
                fields = dict(fields)
                if not repeated:
                    for field, amount in amounts.items():
                        fields[field] = fields.get(field, 0.0) + amount
                    if ttl is not None:
                        expires = now + ttl
                    self._counters[key] = (fields, expires)
                result[key] = dict(fields)
            if not repeated:
                self._log(writer_of(batch_id), checked, now)
            if batch_id is not None and not repeated:
                self._batches[batch_id] = None
                while len(self._batches) > 1000:
                    del self._batches[next(iter(self._batches))]
            return result

    async def counters(self, keys: Sequence[str]) -> dict[str, dict[str, float]]:
        with self._lock:
            now = self._clock()
            found = {key: self._live_counters(key, now)[0] for key in keys}
            return {key: dict(fields) for key, fields in found.items() if fields}

    async def values(self, keys: Sequence[str]) -> dict[str, bytes]:
        with self._lock:
            now = self._clock()
            found = {}
            for key in keys:
                entry = self._values.get(key)
                if entry is not None and (entry[1] is None or entry[1] > now):
                    found[key] = entry[0]
            return found

    def _log(self, writer: str, keys: Iterable[str], now: float) -> None:
        self._feed.log(writer, keys, now=now)
        if now - self._pruned > 60.0:
            self._feed.prune(now=now)
            self._pruned = now

    async def changes(self, after: int | None) -> Changes:
        with self._lock:
            return self._feed.read(after)

    async def put_values(
        self,
        items: Mapping[str, bytes],
        *,
        ttl: float | None,
        only_if_absent: bool = False,
        writer: str = "",
    ) -> dict[str, bytes]:
        check_values(items)
        ttl = check_ttl(ttl)
        with self._lock:
            now = self._clock()
            expires = None if ttl is None else now + ttl
            result, written = {}, []
            for key, value in items.items():
                entry = self._values.get(key)
                live = entry is not None and (entry[1] is None or entry[1] > now)
                if only_if_absent and live and entry is not None:
                    result[key] = entry[0]
                else:
                    self._values[key] = (value, expires)
                    result[key] = value
                    written.append(key)
            self._log(writer, written, now)
            return result

    async def delete(self, keys: Sequence[str]) -> int:
        with self._lock:
            now = self._clock()
            removed = 0
            for key in keys:
                had = bool(self._live_counters(key, now)[0])
                self._counters.pop(key, None)
                entry = self._values.pop(key, None)
                had = had or (entry is not None and (entry[1] is None or entry[1] > now))
                removed += had
            self._log("", keys, now)
            return removed

    async def keys(self, prefix: str) -> list[str]:
        check_key(prefix, "prefix")
        with self._lock:
            now = self._clock()
            found = [k for k in list(self._counters) if k.startswith(prefix)]
            found = [k for k in found if self._live_counters(k, now)[0]]
            values = self._values.items()
            found += [k for k, (_, t) in values if k.startswith(prefix) and (t is None or t > now)]
            return list(dict.fromkeys(found))

    async def put_blob(self, name: str, data: bytes, *, keep: int = 3) -> int:
        check_blob(name, data, keep)
        with self._lock:
            version, versions = self._blobs.get(name, (0, {}))
            version += 1
            versions = {v: d for v, d in versions.items() if v > version - keep}
            versions[version] = data
            self._blobs[name] = (version, versions)
            return version

    async def get_blob(self, name: str, version: int | None = None) -> tuple[int, bytes] | None:
        check_key(name, "blob name")
        with self._lock:
            newest, versions = self._blobs.get(name, (0, {}))
            wanted = newest if version is None else version
            data = versions.get(wanted)
            return None if data is None else (wanted, data)
