"""The state service: decision state on the request path, without waiting for the store.

In front of a :class:`~personalize.stores.state.StateStore`:

- **increments are batched**: :meth:`StateService.add` only buffers; after the response,
  :meth:`StateService.settle` (the first caller that finds no write running) waits
  ``flush_interval`` seconds and writes everything buffered in one ``increment`` call per
  TTL. A failed write is kept with its batch id and sent again after ``retry_backoff``
  seconds (the store adds a batch id once); the buffer is bounded (``max_pending`` keys).
- **reads are cached** in this process for ``cache_ttl`` seconds: what another worker adds
  is seen within that bound. Every answer includes what this process added and has not
  written yet, so a worker always sees its own increments at once.
  :meth:`StateService.cached` answers from memory alone (for code that must not await);
  :meth:`StateService.counters` reads the store for keys missing or stale in the cache.
- **a store that fails never fails the page**: reads then answer the last counters known
  (or none) plus what is buffered.

>>> import asyncio
>>> from personalize.stores.state_memory import MemoryStateStore
>>> async def views() -> dict[str, float]:
...     state = StateService(MemoryStateStore(), flush_interval=0)
...     state.add("cap:v1:hero", "views", 1.0, ttl=3600)
...     state.add("cap:v1:hero", "views", 1.0, ttl=3600)
...     await state.settle()  # after the response: one write for both
...     return (await state.counters(["cap:v1:hero"]))["cap:v1:hero"]
>>> asyncio.run(views())
{'views': 2.0}
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence

from personalize.exceptions import StoreError
from personalize.services.latency import LatencyHistogram
from personalize.stores.state import StateStore, check_increments, check_key, check_ttl

__all__ = ["StateService"]

logger = logging.getLogger("personalize.state")

Fields = dict[str, float]
# ttl (None: no expiry) -> key -> field -> amount
Buffer = dict[float | None, dict[str, Fields]]


class StateService:
    """Batched increments and a short-lived read cache in front of a :class:`StateStore`."""

    def __init__(
        self,
        store: StateStore,
        *,
        flush_interval: float = 0.02,  # seconds increments wait to be written in one batch
        cache_ttl: float = 1.0,  # seconds a read is used before the store is read again
        cache_size: int = 10_000,  # keys of counters (and of values) cached
        max_pending: int = 100_000,  # keys buffered while the store is slow or down
        retry_backoff: float = 1.0,  # seconds before retrying after a failed write
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.cache_ttl = cache_ttl
        self._cache_size = cache_size
        self._max_pending = max_pending
        self._retry_backoff = retry_backoff
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (counters, when read, the write sequence number the read started at)
        self._counters: OrderedDict[str, tuple[Fields, float, int]] = OrderedDict()
        self._values: OrderedDict[str, tuple[bytes | None, float]] = OrderedDict()
        self._pending: Buffer = {}
        self._inflight: Buffer = {}
        self._retry: list[tuple[str, Buffer]] = []  # (batch id, increments) to send again
        self._seq = 0  # writes completed: a read older than a write is not cached over it
        self._flushing = False
        self._retry_at = 0.0
        self.stats = {
            "cache_hits": 0,
            "cache_misses": 0,
            "written": 0,
            "failed": 0,
            "read_failed": 0,
            "dropped": 0,
        }
        self.latency = LatencyHistogram()

    def __repr__(self) -> str:
        return f"<StateService {self.store!r}>"

    # -- counters -------------------------------------------------------------------------

    def add(self, key: str, field: str, amount: float = 1.0, *, ttl: float | None = None) -> None:
        """Buffer ``amount`` for ``key``'s ``field``; written after the response (see
        :meth:`settle`). ``ttl`` (seconds) makes the key expire that long after the write."""
        self.add_many({key: {field: amount}}, ttl=ttl)

    def add_many(
        self, changes: Mapping[str, Mapping[str, float]], *, ttl: float | None = None
    ) -> None:
        """Buffer several increments at once (ValueError for a bad key, field or amount)."""
        checked = check_increments(changes)
        ttl = check_ttl(ttl)
        with self._lock:
            buffer = self._pending.setdefault(ttl, {})
            for key, amounts in checked.items():
                fields = buffer.setdefault(key, {})
                for field, amount in amounts.items():
                    fields[field] = fields.get(field, 0.0) + amount
            if self.pending > self._max_pending:
                self._drop_oldest()

    @property
    def pending(self) -> int:
        """Keys with increments not written yet (buffered or being retried)."""
        return sum(len(b) for b in self._pending.values()) + sum(
            len(b) for _, buffer in self._retry for b in buffer.values()
        )

    def _unwritten(self, key: str) -> Iterable[Fields]:
        for buffer in (self._pending, self._inflight, *(b for _, b in self._retry)):
            for by_key in buffer.values():
                fields = by_key.get(key)
                if fields:
                    yield fields

    def _view(self, key: str, stored: Fields | None) -> Fields:
        out = dict(stored or {})
        for fields in self._unwritten(key):
            for field, amount in fields.items():
                out[field] = out.get(field, 0.0) + amount
        return out

    def cached(self, key: str) -> Fields | None:
        """``key``'s counters from memory alone, stale or not, with what this process added
        since; None when this process never read the key and added nothing to it."""
        entry = self._counters.get(key)
        if entry is None and not any(True for _ in self._unwritten(key)):
            return None
        return self._view(key, None if entry is None else entry[0])

    async def counters(self, keys: Sequence[str]) -> dict[str, Fields]:
        """Each key's counters (``{}`` for none), read from the store when the cache has no
        copy younger than ``cache_ttl``; one store call for all of them."""
        for key in keys:
            check_key(key)
        now = self._clock()
        stale = []
        for key in dict.fromkeys(keys):
            entry = self._counters.get(key)
            if entry is None or now - entry[1] > self.cache_ttl:
                stale.append(key)
        self.stats["cache_hits"] += len(keys) - len(stale)
        if stale:
            self.stats["cache_misses"] += len(stale)
            seq = self._seq
            started = time.perf_counter()
            try:
                found = await self.store.counters(stale)
            except Exception as exc:
                self.stats["read_failed"] += 1
                logger.warning("personalize: reading decision state failed (%s)", exc)
            else:
                self.latency.observe(time.perf_counter() - started)
                with self._lock:
                    for key in stale:
                        self._install(key, found.get(key, {}), seq)
        out = {}
        for key in keys:
            entry = self._counters.get(key)
            out[key] = self._view(key, None if entry is None else entry[0])
        return out

    def _install(self, key: str, fields: Fields, seq: int) -> None:
        """Cache what the store said at write sequence ``seq``, unless a newer answer is in."""
        entry = self._counters.get(key)
        if entry is not None and entry[2] > seq:
            return
        self._counters[key] = (fields, self._clock(), seq)
        self._counters.move_to_end(key)
        if len(self._counters) > self._cache_size:
            self._counters.popitem(last=False)

    # -- values ---------------------------------------------------------------------------

    async def value(self, key: str) -> bytes | None:
        """``key``'s value (None: none), cached for ``cache_ttl`` seconds; None too when the
        store cannot be read and nothing is cached."""
        check_key(key)
        entry = self._values.get(key)
        if entry is not None and self._clock() - entry[1] <= self.cache_ttl:
            self.stats["cache_hits"] += 1
            return entry[0]
        self.stats["cache_misses"] += 1
        try:
            found = await self.store.values([key])
        except Exception as exc:
            self.stats["read_failed"] += 1
            logger.warning("personalize: reading decision state failed (%s)", exc)
            return None if entry is None else entry[0]
        value = found.get(key)
        self._remember_value(key, value)
        return value

    async def put_value(
        self, key: str, value: bytes, *, ttl: float | None, only_if_absent: bool = False
    ) -> bytes:
        """Store ``value`` now (not batched: workers must agree at once); returns what the key
        holds afterwards (with ``only_if_absent``, an earlier value wins). Raises
        :class:`~personalize.exceptions.StoreError` when the store cannot take it."""
        stored = (
            await self.store.put_values({key: value}, ttl=ttl, only_if_absent=only_if_absent)
        )[key]
        self._remember_value(key, stored)
        return stored

    def _remember_value(self, key: str, value: bytes | None) -> None:
        self._values[key] = (value, self._clock())
        self._values.move_to_end(key)
        if len(self._values) > self._cache_size:
            self._values.popitem(last=False)

    async def delete(self, keys: Sequence[str]) -> int:
        """Remove keys' counters and values everywhere (buffered increments included)."""
        with self._lock:
            for key in keys:
                self._counters.pop(key, None)
                self._values.pop(key, None)
                for buffer in (self._pending, *(b for _, b in self._retry)):
                    for by_key in buffer.values():
                        by_key.pop(key, None)
        return await self.store.delete(keys)

    # -- blobs ----------------------------------------------------------------------------

    async def put_blob(self, name: str, data: bytes, *, keep: int = 3) -> int:
        """Store the next version of blob ``name`` (not cached); returns its version."""
        return await self.store.put_blob(name, data, keep=keep)

    async def get_blob(self, name: str, version: int | None = None) -> tuple[int, bytes] | None:
        """``(version, data)`` of blob ``name``'s newest version (or ``version``), or None."""
        return await self.store.get_blob(name, version)

    # -- writing --------------------------------------------------------------------------

    async def settle(self) -> None:
        """After a response: if no write is running, wait ``flush_interval`` seconds and
        write what is buffered, looping while more arrives. Never raises."""
        if self._flushing or not (self._pending or self._retry):
            return  # the common case, without taking the lock
        with self._lock:
            if self._flushing or not (self._pending or self._retry):
                return
            if self._clock() < self._retry_at:
                return
            self._flushing = True
        try:
            if self.flush_interval:
                await asyncio.sleep(self.flush_interval)
            while (self._pending or self._retry) and self._clock() >= self._retry_at:
                if not await self._flush_once():
                    break
        finally:
            self._flushing = False

    async def flush(self) -> None:
        """Write everything buffered now (at shutdown, in tests); StoreError if it cannot."""
        while self._pending or self._retry:
            if not await self._flush_once():
                raise StoreError(f"could not write {self.pending} keys of decision state")

    async def aclose(self) -> None:
        """Write what is buffered (logging what cannot be) and close the store."""
        try:
            await self.flush()
        except Exception:
            logger.exception(
                "personalize: %d keys of decision state could not be written at shutdown",
                self.pending,
            )
        await self.store.close()

    async def _flush_once(self) -> bool:
        with self._lock:
            if self._retry:
                batch_id, batch = self._retry.pop(0)
            else:
                batch_id, batch = secrets.token_hex(8), self._pending
                self._pending = {}
            self._inflight = batch
        written: dict[str, Fields] = {}
        started = time.perf_counter()
        try:
            for ttl, changes in batch.items():
                if changes:
                    sub_id = batch_id if ttl is None else f"{batch_id}-{ttl:g}"
                    result = await self.store.increment(changes, ttl=ttl, batch_id=sub_id)
                    written.update(result)
        except Exception as exc:
            with self._lock:
                self._inflight = {}
                self._retry.insert(0, (batch_id, batch))
                self._retry_at = self._clock() + self._retry_backoff
                self.stats["failed"] += 1
            logger.warning(
                "personalize: writing decision state failed (%s); will retry, %d keys buffered",
                exc,
                self.pending,
            )
            return False
        self.latency.observe(time.perf_counter() - started)
        with self._lock:
            self._inflight = {}
            self._seq += 1
            for key, fields in written.items():
                self._install(key, fields, self._seq)
            self.stats["written"] += sum(len(b) for b in batch.values())
        return True

    def _drop_oldest(self) -> None:
        excess = self.pending - self._max_pending
        dropped = 0
        for buffer in [b for _, b in self._retry] + [self._pending]:
            for by_key in buffer.values():
                while by_key and dropped < excess:
                    del by_key[next(iter(by_key))]
                    dropped += 1
        self._retry = [(bid, b) for bid, b in self._retry if any(b.values())]
        self.stats["dropped"] += dropped
        logger.error(
            "personalize: decision state buffer full (%d keys); dropped the %d oldest",
            self._max_pending,
            dropped,
        )
