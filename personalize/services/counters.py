"""Counters on the request path: a short-lived cache in front of the state store, and
increments batched after the response.

:class:`CachedCounters` is the base of :class:`~personalize.services.state.StateService`.

Every answer is the store's counters as last read (or as the last write returned them) plus
what this process added and has not written yet, so a worker sees its own increments at once
and the other workers' within ``cache_ttl`` seconds. A write returns the key's counters, which
replace the cached copy; a read that started before that write cannot overwrite it (a write
sequence number says which is newer).

With a store that keeps a change feed (every backend here; see
:mod:`~personalize.stores.state_feed`), a copy older than ``cache_ttl`` is still used while
the feed, read at most ``cache_ttl`` ago, reports no other writer's change of its key since
the copy was read (and for at most :data:`FEED_TRUST` seconds): :meth:`poll_feed` reads it,
a few times a second under load, instead of a read of each visitor's keys before each page.

Writes: :meth:`CachedCounters.add` buffers; :meth:`write_once` sends everything buffered in
one ``increment`` call per TTL with an ordered batch id (``<writer>#<n>``, see
:meth:`~personalize.stores.state.StateStore.increment`). Writes go one at a time: a failed
one is kept with its id and sent again, before anything newer, after ``retry_backoff``
seconds (the store adds a batch once); the buffer is bounded (``max_pending`` keys),
overflow is dropped oldest first, counted and logged.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence

from personalize.services.latency import LatencyHistogram
from personalize.stores.state import StateStore, check_increments, check_key, check_ttl
from personalize.stores.state_feed import key_tag

__all__ = ["FEED_TRUST", "CachedCounters", "Fields"]

logger = logging.getLogger("personalize.state")

Fields = dict[str, float]
# ttl (None: no expiry) -> key -> field -> amount
Buffer = dict[float | None, dict[str, Fields]]
MAX_WANTED = 2_000  # keys read again after a response, at most
#: Seconds a copy is used on the feed's word alone: a writer that keeps no feed (an older
#: version during a rolling deploy, a hand-made change) is seen within this time.
FEED_TRUST = 300.0
MAX_REVOKED = 50_000  # keys remembered as changed by others (beyond: every older copy is)
_NEVER = float("inf")


class CachedCounters:
    """A short-lived counter cache and an increment buffer in front of a :class:`StateStore`."""

    def __init__(
        self,
        store: StateStore,
        *,
        cache_ttl: float = 1.0,  # seconds a read is used before the store is read again
        cache_size: int = 50_000,  # keys cached (counters and values each; ~360 B a key)
        max_pending: int = 100_000,  # keys buffered while the store is slow or down
        retry_backoff: float = 1.0,  # seconds before retrying after a failed write
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.cache_ttl = cache_ttl
        self._cache_size = cache_size
        self._max_pending = max_pending
        self._retry_backoff = retry_backoff
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (counters, when read, the write sequence number the read started at)
        self._counters: OrderedDict[str, tuple[Fields, float, int]] = OrderedDict()
        self._pending: Buffer = {}
        self._inflight: Buffer = {}
        self._retry: list[tuple[str, Buffer]] = []  # (batch id, increments) to send again
        self._writer = secrets.token_hex(6)  # this buffer's batches: <writer>[-ttl]#<n>
        self._batches = 0
        self._turn: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._seq = 0  # writes completed: a read older than a write is not cached over it
        self._retry_at = 0.0
        # Keys asked for from memory alone while missing or stale: read after the response.
        self._wanted: dict[str, None] = {}
        # The change feed (module docstring): where it was read up to and when that read
        # started, since when copies are covered by it, and when other writers changed a
        # key (by tag) as far as it told.
        self._feed = bool(getattr(store, "has_feed", False))
        self._feed_at: int | None = None
        self._feed_time = -_NEVER
        self._feed_asked = -_NEVER  # when it was last read, or tried (a failure waits too)
        self._feed_ok = True  # (a failure is logged once, until the feed answers again)
        self._trust_from = _NEVER
        self._revoked: OrderedDict[int, float] = OrderedDict()
        self._revoked_floor = -_NEVER
        self._polling = False
        self.stats = {
            "cache_hits": 0,
            "cache_misses": 0,  # keys read from the store (missing or stale here)
            "reads": 0,  # calls that read them
            "written": 0,
            "failed": 0,
            "read_failed": 0,
            "dropped": 0,
            "feed_reads": 0,  # reads of the store's change feed
            "feed_failed": 0,
        }
        self.latency = LatencyHistogram()

    def add(self, key: str, field: str, amount: float = 1.0, *, ttl: float | None = None) -> None:
        """Buffer ``amount`` for ``key``'s ``field``, written after the response. ``ttl``
        (seconds) makes the key expire that long after the write, all its fields together."""
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

    def _unwritten(self, key: str) -> Iterator[Fields]:
        for buffer in (self._pending, self._inflight, *(b for _, b in self._retry)):
            for by_key in buffer.values():
                fields = by_key.get(key)
                if fields:
                    yield fields

    def _view(self, key: str, stored: Fields | None) -> Fields:
        out = dict(stored) if stored else {}
        if self._pending or self._inflight or self._retry:
            for fields in self._unwritten(key):
                for field, amount in fields.items():
                    out[field] = out.get(field, 0.0) + amount
        return out

    def cached(self, key: str) -> Fields | None:
        """``key``'s counters from memory alone (no I/O), with what this process added since;
        None when this process never read the key and added nothing to it. A key missing or
        older than ``cache_ttl`` is read again after the response."""
        entry = self._counters.get(key)
        now = self._clock()
        if entry is None or (
            now - entry[1] > self.cache_ttl and not self._trusted(key, entry[1], now)
        ):
            if len(self._wanted) < MAX_WANTED:
                self._wanted[key] = None
            if entry is None and not any(True for _ in self._unwritten(key)):
                return None
        return self._view(key, None if entry is None else entry[0])

    def known(self, prefix: str = "") -> dict[str, Fields]:
        """Every key starting with ``prefix`` that this process holds (cached, stale or not,
        or added to), with its counters as :meth:`cached` gives them (for reports)."""
        keys = dict.fromkeys(k for k in self._counters if k.startswith(prefix))
        for buffer in (self._pending, self._inflight, *(b for _, b in self._retry)):
            for by_key in buffer.values():
                keys.update(dict.fromkeys(k for k in by_key if k.startswith(prefix)))
        found = {}
        for key in keys:
            entry = self._counters.get(key)
            found[key] = self._view(key, None if entry is None else entry[0])
        return found

    async def counters(self, keys: Sequence[str]) -> dict[str, Fields]:
        """Each key's counters (``{}`` for none), read from the store when the cache has no
        copy younger than ``cache_ttl`` (one store call for all of them). When the store
        cannot be read: the last counters known (or none) plus what is buffered."""
        for key in keys:
            check_key(key)
        now = self._clock()
        stale = []
        for key in dict.fromkeys(keys):
            entry = self._counters.get(key)
            if entry is None or (
                now - entry[1] > self.cache_ttl and not self._trusted(key, entry[1], now)
            ):
                stale.append(key)
        self.stats["cache_hits"] += len(keys) - len(stale)
        if stale:
            await self._read(stale)
        out = {}
        for key in keys:
            entry = self._counters.get(key)
            out[key] = self._view(key, None if entry is None else entry[0])
        return out

    def _trusted(self, key: str, read: float, now: float) -> bool:
        """Whether a copy of ``key`` read (begun) at ``read``, older than ``cache_ttl``, may
        still be used at ``now`` on the change feed's word (see the module docstring)."""
        revoked = self._revoked  # (empty with one worker: no tag to compute)
        return (
            read >= self._trust_from
            and now - self._feed_time <= self.cache_ttl
            and now - read <= FEED_TRUST
            and (not revoked or revoked.get(key_tag(key), self._revoked_floor) <= read)
        )

    @property
    def feed_due(self) -> bool:
        """True when the change feed should be read before copies older than ``cache_ttl``
        are used (a quarter of ``cache_ttl`` after the last read of it)."""
        return (
            self._feed
            and self.cache_ttl > 0  # (0: every copy is read again; the feed cannot help)
            and not self._polling
            and self._clock() - self._feed_asked > self.cache_ttl / 4
        )

    async def poll_feed(self) -> None:
        """Read the store's change feed: the keys other writers changed since the last read
        lose the trust of their copies. Never raises (a failed read leaves the copies to
        ``cache_ttl`` once the last good read is ``cache_ttl`` old)."""
        if not self._feed or self._polling:
            return
        self._polling = True
        begun = self._feed_asked = self._clock()
        try:
            position, entries = await self.store.changes(self._feed_at)
        except Exception as exc:
            self.stats["feed_failed"] += 1
            if self._feed_ok:
                self._feed_ok = False
                logger.warning(
                    "personalize: reading the decision state's feed failed (%s); copies "
                    "older than cache_ttl are read again until it answers",
                    exc,
                )
            return
        finally:
            self._polling = False
        # What it reports was written before it read: copies begun before it ended may lack it.
        ended = self._clock()
        if entries is None:  # nothing known of what changed: only copies read from now on
            self._trust_from = ended
        else:
            own, own_ttl = self._writer, self._writer + "-"
            revoked = self._revoked
            for writer, tags in entries:
                if writer == own or writer.startswith(own_ttl):
                    continue  # this process's writes: their results are what it holds
                for tag in tags:
                    revoked[tag] = ended
                    revoked.move_to_end(tag)
            while len(revoked) > MAX_REVOKED:
                self._revoked_floor = max(self._revoked_floor, revoked.popitem(last=False)[1])
        self._feed_at = position
        self._feed_time = begun
        self.stats["feed_reads"] += 1
        if not self._feed_ok:
            self._feed_ok = True
            logger.info("personalize: the decision state's feed answers again")

    async def _read(self, keys: list[str]) -> None:
        self.stats["cache_misses"] += len(keys)
        self.stats["reads"] += 1
        seq = self._seq
        begun = self._clock()
        started = time.perf_counter()
        try:
            found = (await self.store.read(keys, ()))[0]  # (SQLite: a few keys inline)
        except Exception as exc:
            self.stats["read_failed"] += 1
            logger.warning("personalize: reading decision state failed (%s)", exc)
            return
        self.latency.observe(time.perf_counter() - started)
        self._take_counters(keys, found, seq, begun)

    def _take_counters(
        self, keys: Sequence[str], found: Mapping[str, Fields], seq: int, begun: float
    ) -> None:
        """Cache what a read that started at write sequence ``seq`` and clock ``begun``
        found for ``keys``."""
        with self._lock:
            for key in keys:
                self._install(key, found.get(key, {}), seq, begun)
                self._wanted.pop(key, None)

    async def read_wanted(self) -> None:
        """Read the keys :meth:`cached` found missing or stale (after a response)."""
        if self._wanted:
            keys = list(self._wanted)
            self._wanted.clear()
            await self._read(keys)

    def _install(self, key: str, fields: Fields, seq: int, begun: float) -> None:
        """Cache what the store said at write sequence ``seq`` to a call begun at clock
        ``begun``, unless a newer answer is in."""
        entry = self._counters.get(key)
        if entry is not None and entry[2] > seq:
            return
        self._counters[key] = (fields, begun, seq)
        self._counters.move_to_end(key)
        if len(self._counters) > self._cache_size:
            self._counters.popitem(last=False)

    def forget_counters(self, keys: Sequence[str]) -> None:
        """Drop keys from the cache and the buffers (before they are deleted)."""
        with self._lock:
            for key in keys:
                self._counters.pop(key, None)
                for buffer in (self._pending, *(b for _, b in self._retry)):
                    for by_key in buffer.values():
                        by_key.pop(key, None)

    async def write_once(self) -> bool:
        """Send one batch (a failed one first), after any write under way; False when the
        store refused it."""
        loop = asyncio.get_running_loop()
        if self._turn is None or self._turn[0] is not loop:  # a Lock belongs to one loop
            self._turn = (loop, asyncio.Lock())
        async with self._turn[1]:
            return await self._write_next()

    async def _write_next(self) -> bool:
        with self._lock:
            if self._retry:
                batch_id, batch = self._retry.pop(0)
            else:
                self._batches += 1
                batch_id, batch = str(self._batches), self._pending
                self._pending = {}
            self._inflight = batch
        written: dict[str, Fields] = {}
        begun = self._clock()
        started = time.perf_counter()
        try:
            for ttl, changes in batch.items():
                if changes:  # one id per TTL: a retried batch skips the parts already added
                    writer = self._writer if ttl is None else f"{self._writer}-{ttl:g}"
                    sub_id = f"{writer}#{batch_id}"
                    written.update(await self.store.increment(changes, ttl=ttl, batch_id=sub_id))
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
                self._install(key, fields, self._seq, begun)
                self._wanted.pop(key, None)
            self.stats["written"] += sum(len(b) for b in batch.values())
        return True

    @property
    def unwritten(self) -> bool:
        """True while increments wait to be written."""
        return bool(self._pending or self._retry)

    @property
    def may_write(self) -> bool:
        """False during the back-off after a failed write."""
        return self._clock() >= self._retry_at

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
