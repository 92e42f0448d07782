"""The state service: decision state on the request path, without waiting for the store.

In front of a :class:`~personalize.stores.state.StateStore`:

- **counters** (:class:`~personalize.services.counters.CachedCounters`): increments are
  buffered and written after the response, in batches; reads come from a cache at most
  ``cache_ttl`` seconds old, plus what this process added and has not written yet.
- **values**: read through the same short-lived cache; :meth:`StateService.put_value` writes
  at once, :meth:`StateService.put_value_soon` after the response (for code that cannot
  await, such as a decision in a synchronous template).
- **blobs**: passed through (model snapshots are read at start and written rarely).

After every response the middleware calls :meth:`StateService.settle`: the first caller
that finds no write running waits ``flush_interval`` seconds, writes what is buffered, and
reads again what :meth:`~CachedCounters.cached` and :meth:`StateService.cached_value` found
missing or stale. A store that fails never fails the page: reads answer what is known.

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
import enum
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from personalize.exceptions import StoreError
from personalize.services.counters import FEED_TRUST, MAX_WANTED, CachedCounters
from personalize.services.retrying import RetryTimer
from personalize.stores.state import StateStore, check_key, check_ttl, check_values
from personalize.stores.state_feed import key_tag

__all__ = ["MISSING", "Missing", "StateService"]

logger = logging.getLogger("personalize.state")


class Missing(enum.Enum):
    """The type of :data:`MISSING`."""

    MISSING = "not in the cache"


#: :meth:`StateService.cached_value` knows nothing of the key yet.
MISSING = Missing.MISSING


class StateService(CachedCounters):
    """Batched writes and a short-lived read cache in front of a :class:`StateStore`."""

    def __init__(
        self,
        store: StateStore,
        *,
        flush_interval: float = 0.02,  # seconds increments wait to be written in one batch
        **options: Any,
    ) -> None:
        super().__init__(store, **options)
        self.flush_interval = flush_interval
        self._values: OrderedDict[str, tuple[bytes | None, float]] = OrderedDict()
        # key -> (value, ttl, only if absent): written after the response
        self._puts: dict[str, tuple[bytes, float | None, bool]] = {}
        self._wanted_values: dict[str, None] = {}
        self._flushing = False
        self._retry_timer = RetryTimer(self.settle)  # no request may come to retry

    def __repr__(self) -> str:
        return f"<StateService {self.store!r}>"

    # -- values ---------------------------------------------------------------------------

    def cached_value(self, key: str) -> bytes | Missing | None:
        """``key``'s value from memory alone (no I/O): a value put here and not written yet,
        else the cached one (stale or not), None for none, or :data:`MISSING`. A key
        missing or stale is read again after the response."""
        put = self._puts.get(key)
        entry = self._values.get(key)
        if entry is None:
            stale = True
        else:
            now = self._clock()
            stale = now - entry[1] > self.cache_ttl and not self._trusted(key, entry[1], now)
        if stale and len(self._wanted_values) < MAX_WANTED:
            self._wanted_values[key] = None
        if put is not None and not (put[2] and entry is not None and entry[0] is not None):
            return put[0]
        return MISSING if entry is None else entry[0]

    async def values(self, keys: Sequence[str]) -> dict[str, bytes | None]:
        """Each key's value (None: none), read from the store for keys not cached within
        ``cache_ttl`` (one call); the cached value (or None) when the store cannot be read."""
        for key in keys:
            check_key(key)
        now = self._clock()
        stale = [k for k in dict.fromkeys(keys) if self._stale_value(k, now)]
        self.stats["cache_hits"] += len(keys) - len(stale)
        if stale:
            await self._read_values(stale)
        out: dict[str, bytes | None] = {}
        for key in keys:
            found = self.cached_value(key)
            out[key] = None if found is MISSING else found
        return out

    async def value(self, key: str) -> bytes | None:
        """One key's value (see :meth:`values`)."""
        return (await self.values([key]))[key]

    def _stale_value(self, key: str, now: float) -> bool:
        entry = self._values.get(key)
        return entry is None or (
            now - entry[1] > self.cache_ttl and not self._trusted(key, entry[1], now)
        )

    async def _read_values(self, keys: list[str]) -> None:
        await self._read_both([], keys)

    def _take_values(self, keys: Sequence[str], found: Mapping[str, bytes], begun: float) -> None:
        values, wanted = self._values, self._wanted_values
        for key in keys:
            values[key] = (found.get(key), begun)
            values.move_to_end(key)
            wanted.pop(key, None)
        while len(values) > self._cache_size:
            values.popitem(last=False)

    async def _read_both(self, counters: list[str], values: list[str]) -> None:
        """Read counters and values in one store call (``StateStore.read``: SQLite answers a
        few keys on the caller's thread, Redis in one round trip)."""
        self.stats["cache_misses"] += len(counters) + len(values)
        self.stats["reads"] += 1
        seq = self._seq
        begun = self._clock()
        started = time.perf_counter()
        try:
            found, got = await self.store.read(counters, values)
        except Exception as exc:
            self.stats["read_failed"] += 1
            logger.warning("personalize: reading decision state failed (%s)", exc)
            return
        self.latency.observe(time.perf_counter() - started)
        self._take_counters(counters, found, seq, begun)
        self._take_values(values, got, begun)

    async def put_value(
        self, key: str, value: bytes, *, ttl: float | None, only_if_absent: bool = False
    ) -> bytes:
        """Store ``value`` now; returns what the key holds afterwards (with
        ``only_if_absent``, an earlier value wins). Raises
        :class:`~personalize.exceptions.StoreError` when the store cannot take it."""
        begun = self._clock()
        result = await self.store.put_values(
            {key: value}, ttl=ttl, only_if_absent=only_if_absent, writer=self._writer
        )
        self._remember_value(key, result[key], begun)
        return result[key]

    def put_value_soon(
        self, key: str, value: bytes, *, ttl: float | None, only_if_absent: bool = False
    ) -> None:
        """Store ``value`` after the response (see :meth:`put_value`); until then
        :meth:`cached_value` answers it (or, with ``only_if_absent``, the value known)."""
        check_values({key: value})
        ttl = check_ttl(ttl)
        self._puts[key] = (value, ttl, only_if_absent)

    def _remember_value(self, key: str, value: bytes | None, begun: float) -> None:
        self._values[key] = (value, begun)
        self._values.move_to_end(key)
        if len(self._values) > self._cache_size:
            self._values.popitem(last=False)

    async def _write_values(self) -> bool:
        puts, self._puts = self._puts, {}
        groups: dict[tuple[float | None, bool], dict[str, bytes]] = {}
        for key, (value, ttl, nx) in puts.items():
            groups.setdefault((ttl, nx), {})[key] = value
        try:
            for (ttl, nx), items in groups.items():
                begun = self._clock()
                stored = await self.store.put_values(
                    items, ttl=ttl, only_if_absent=nx, writer=self._writer
                )
                for key, value in stored.items():
                    self._remember_value(key, value, begun)
                    puts.pop(key, None)
        except Exception as exc:
            for key, put in puts.items():
                self._puts.setdefault(key, put)  # tried again after the back-off
            self._retry_at = self._clock() + self._retry_backoff
            self.stats["failed"] += 1
            logger.warning("personalize: writing decision state failed (%s); will retry", exc)
            return False
        return True

    async def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` that the store holds or this process has still to
        write (a scan: for erasure, never on the request path)."""
        stored = await self.store.keys(prefix)
        buffers = (self._pending, *(batch for _, batch in self._retry))
        local = [*self._puts, *(k for buffer in buffers for by_key in buffer.values()
                                for k in by_key)]  # fmt: skip
        return list(dict.fromkeys([*stored, *(k for k in local if k.startswith(prefix))]))

    async def delete(self, keys: Sequence[str]) -> int:
        """Remove keys' counters and values everywhere (buffered writes included)."""
        self.forget_counters(keys)
        for key in keys:
            self._values.pop(key, None)
            self._puts.pop(key, None)
        return await self.store.delete(keys)

    # -- blobs ----------------------------------------------------------------------------

    async def put_blob(self, name: str, data: bytes, *, keep: int = 3) -> int:
        """Store the next version of blob ``name`` (not cached); returns its version."""
        return await self.store.put_blob(name, data, keep=keep)

    async def get_blob(self, name: str, version: int | None = None) -> tuple[int, bytes] | None:
        """``(version, data)`` of blob ``name``'s newest version (or ``version``), or None."""
        return await self.store.get_blob(name, version)

    # -- after the response -----------------------------------------------------------------

    async def prefetch(self, counters: Sequence[str] = (), values: Sequence[str] = ()) -> None:
        """Read into the cache the keys missing or stale there (at most one call each), so
        that :meth:`cached` and :meth:`cached_value` answer them fresh."""
        now, ttl, known, held = self._clock(), self.cache_ttl, self._counters, self._values
        stale = [k for k in counters if (c := known.get(k)) is None or now - c[1] > ttl]
        stale_values = [k for k in values if (v := held.get(k)) is None or now - v[1] > ttl]
        if (stale or stale_values) and self._feed:
            # Older than cache_ttl: still good where no other writer changed them since.
            if self.feed_due:
                await self.poll_feed()
                now = self._clock()
            trusted = self._trusted
            stale = [k for k in stale if (c := known.get(k)) is None or not trusted(k, c[1], now)]
            stale_values = [
                k for k in stale_values if (v := held.get(k)) is None or not trusted(k, v[1], now)
            ]
        if stale or stale_values:
            await self._read_both(stale, stale_values)

    def holds(self, counters: Sequence[str] = (), values: Sequence[str] = ()) -> bool:
        """True when :meth:`prefetch` of these keys would neither read nor need the change
        feed read first: every copy is fresh, or trusted on a feed read recently enough
        (asked without a coroutine before each page)."""
        now = self._clock()
        fresh_from = now - self.cache_ttl
        trust_from: float | None = None  # (worked out for the first copy that needs it)
        revoked = self._revoked
        for keys, held in ((counters, self._counters), (values, self._values)):
            for key in keys:
                entry = held.get(key)
                if entry is None:
                    return False
                read = entry[1]
                if read >= fresh_from:
                    continue
                if trust_from is None:
                    if self._feed_time < now - self.cache_ttl or self.feed_due:
                        return False  # (no feed, or its read is due: prefetch reads it)
                    trust_from = max(self._trust_from, now - FEED_TRUST)
                if read < trust_from:
                    return False
                if revoked and revoked.get(key_tag(key), self._revoked_floor) > read:
                    return False
        return True

    @property
    def due(self) -> bool:
        """True when :meth:`settle` has something to do: the middleware asks first, so the
        common response (nothing buffered, nothing wanted) creates no coroutine."""
        return not self._flushing and bool(
            self._pending or self._retry or self._puts or self._wanted or self._wanted_values
        )

    async def settle(self) -> None:
        """After a response: if no write is running, wait ``flush_interval`` seconds, write
        what is buffered and read what was wanted; again each interval while more arrives.
        Never raises."""
        if not self.due:
            return
        self._flushing = True
        try:
            if self._feed_at is None and self.feed_due:
                # The feed's first read, before this process's first writes: the copies
                # they leave are covered by it from the start.
                await self.poll_feed()
            while True:
                # One write (and one read) per interval at most: under load, what comes
                # during a write waits for the next round instead of a write of its own at
                # once (each is a hand-off to the store's thread or a round trip).
                if self.flush_interval:
                    await asyncio.sleep(self.flush_interval)
                failed = False
                if self.may_write:
                    if self.unwritten:
                        failed = not await self.write_once()
                    if not failed and self._puts:
                        failed = not await self._write_values()
                if self._wanted or self._wanted_values:
                    keys, values = list(self._wanted), list(self._wanted_values)
                    self._wanted.clear()
                    self._wanted_values.clear()
                    await self._read_both(keys, values)
                if failed:
                    self._retry_timer.arm(self._retry_at - self._clock())
                    break
                if not (self.may_write and (self.unwritten or self._puts)):
                    break  # (what is wanted after this round is read after the next response)
        except Exception:  # never the visitor's problem
            logger.exception("personalize: settling decision state failed")
        finally:
            self._flushing = False

    async def flush(self) -> None:
        """Write everything buffered now (at shutdown, in tests); StoreError if it cannot."""
        while self.unwritten or self._puts:
            if self.unwritten and not await self.write_once():
                raise StoreError(f"could not write {self.pending} keys of decision state")
            if self._puts and not await self._write_values():
                raise StoreError(f"could not write {len(self._puts)} values of decision state")

    async def aclose(self) -> None:
        """Write what is buffered (logging what cannot be) and close the store."""
        try:
            await self.flush()
        except Exception:
            logger.exception(
                "personalize: %d keys of decision state could not be written at shutdown",
                self.pending,
            )
        self._retry_timer.cancel()
        await self.store.close()
