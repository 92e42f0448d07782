"""The impact log: each decision's exposure, and the outcomes attributed to it, in the state store.

The decision engine reports an :class:`Exposure` for each new decision while a holdout is on;
conversions (the beacon's, ``visitor.track("order")``, the events API's orders) arrive as
:class:`Outcome`. Both are only buffered on the request path (bounded, the oldest dropped
and counted when the store is away for long); :meth:`ImpactLog.settle` (the middleware calls
it after each response) and :meth:`ImpactLog.aclose` (at shutdown) write them, a batch at a
time, in three or four store calls.

Each exposure counts under three *scopes*, with the arm it was decided in: the site (the
site's arm), the slot, and the slot's matched segment (the slot's arm). Per visitor (the
profile key) the store keeps, for :data:`RETENTION` seconds, how often they were exposed,
converted and what value they brought in each (scope, arm): so a visitor counts once, and the
sum of squares of their values can be kept exactly. The times of their exposures are kept
for the attribution window. An outcome counts for every scope the visitor was exposed to
within the window before it. Per day the store keeps the sums :func:`daily` reads:
``<scope>|<arm>|visitors``, ``converted``, ``value`` and ``value_sq``.

A visitor's per-visitor counters are written with one atomic increment, which returns the
totals: whether this was their first exposure or conversion, and their value before and after,
follow from it, even with many workers. Two workers writing the same visitor's exposure times
at the same moment may lose one of them (a later exposure restores it).

>>> import asyncio
>>> from personalize.stores.state_memory import MemoryStateStore
>>> log = ImpactLog(MemoryStateStore(), window=86_400)
>>> log.exposed(Exposure("v:1", "hero", "uk", "holdout", "holdout", "uk_visitors", 1e9))
>>> log.converted("v:1", 20.0, 1e9 + 60)
>>> asyncio.run(log.flush())
True
>>> day = asyncio.run(log.daily(1e9, days=1))[0]
>>> day[0], day[1]["slot/hero|holdout|visitors"], day[1]["site|holdout|value"]
('2001-09-09', 1.0, 20.0)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import threading
from collections import deque
from collections.abc import Iterable, Sequence

from personalize.services.impact_records import (
    RETENTION,
    SKEW,
    STATS,
    TIMES_KEPT,
    Arm,
    CounterStore,
    Exposure,
    Outcome,
    Times,
    add_to,
    daily_sums,
    day_key,
    day_of,
    dump_times,
    load_times,
    orders_prefix,
    scopes_of,
    times_key,
    visitor_key,
)
from personalize.services.retrying import RetryTimer

__all__ = [
    "RETENTION",
    "STATS",
    "Arm",
    "CounterStore",
    "Exposure",
    "ImpactLog",
    "Outcome",
    "day_of",
    "scopes_of",
]

logger = logging.getLogger("personalize.impact")
RETRY_AFTER = 1.0  # seconds after a failed write before it is sent again without a request


class ImpactLog:
    """Buffers exposures and outcomes on the request path; writes them to ``store`` later.

    ``window`` (seconds): an outcome counts for exposures at most that long before it.
    ``max_pending``: exposures and outcomes buffered at most (the oldest are dropped, and
    counted in :attr:`stats`, when the store cannot keep up).
    """

    def __init__(
        self,
        store: CounterStore,
        *,
        window: float = 7 * 86_400.0,
        retention: float = RETENTION,
        max_pending: int = 50_000,
        flush_interval: float = 0.02,
    ) -> None:
        self.store = store
        self.window = window
        self.retention = retention
        self.flush_interval = flush_interval  # seconds :meth:`settle` waits to batch writes
        self._pending: deque[Exposure | Outcome] = deque(maxlen=max_pending)
        self._retry: tuple[str, list[Exposure | Outcome]] | None = None  # (batch id, batch)
        # Batch ids are ordered, <writer>#<n> (see StateStore.increment): the daily sums are
        # hot counters, written by every worker each interval. Batches go one at a time.
        self._writer = secrets.token_hex(6)
        self._batches = 0
        self._lock = threading.Lock()  # decisions may be made in threads (sync templates)
        self._flushing: asyncio.Lock | None = None
        self._retry_timer = RetryTimer(self.settle)  # no request may come to retry
        self.stats = {"exposures": 0, "outcomes": 0, "attributed": 0, "dropped": 0, "failed": 0}

    def __repr__(self) -> str:
        return f"<ImpactLog {self.store!r} pending={self.pending}>"

    def exposed(self, exposure: Exposure) -> None:
        """Buffer an exposure (called by the decision engine; never blocks, never raises)."""
        if exposure.unit:  # no profile key (a bot, nothing stored): nothing to attribute to
            self._buffer(exposure)

    def converted(self, unit: str, value: float, ts: float, *, ref: str = "") -> None:
        """Buffer a conversion of ``unit`` worth ``value`` at ``ts``; ``ref`` (an order id)
        makes the same order, reported again (a retried events API call), count once."""
        if not unit:
            return
        if value != value or value < 0 or value > 1e9:  # NaN, refunds, absurd: count no value
            value = 0.0
        # No "}" in a ref: after "{<unit>}:o:" a "}" then means another unit's key.
        self._buffer(Outcome(unit, float(value), ts, ref[:128].replace("}", "%7D")))

    def _buffer(self, item: Exposure | Outcome) -> None:
        with self._lock:
            if len(self._pending) == self._pending.maxlen:
                self.stats["dropped"] += 1
            self._pending.append(item)

    @property
    def pending(self) -> int:
        """Exposures and outcomes not written yet (buffered or to be retried)."""
        return len(self._pending) + (len(self._retry[1]) if self._retry else 0)

    @property
    def due(self) -> bool:
        """True when :meth:`settle` has something to do (something buffered, no write
        running): the middleware asks first and creates no coroutine otherwise."""
        if not (self._pending or self._retry):
            return False
        # The running write loops until the buffer is empty.
        return self._flushing is None or not self._flushing.locked()

    async def settle(self) -> None:
        """After a response: unless a write is already running, wait ``flush_interval``
        seconds (so concurrent requests share one batch) and write what is buffered. Cheap
        when nothing is; never raises."""
        if not self.due:
            return
        await self._flush(self.flush_interval)

    async def flush(self) -> bool:
        """Write everything buffered; True when all of it was written. A batch the store
        refuses is kept with its id and sent again by the next flush (stores apply a batch
        id once, so a write that timed out but happened is not counted twice). Never
        raises: impact must never cost a visitor their page."""
        return await self._flush(0.0)

    async def _flush(self, interval: float) -> bool:
        """:meth:`flush`, waiting ``interval`` seconds before each batch: after a response,
        what comes during a write waits for the next batch instead of a write of its own
        at once."""
        if self._flushing is None:
            self._flushing = asyncio.Lock()
        async with self._flushing:
            while self._retry or self._pending:
                if interval:
                    await asyncio.sleep(interval)
                with self._lock:
                    if self._retry is not None:
                        batch_id, batch = self._retry
                    else:
                        self._batches += 1
                        batch_id, batch = f"{self._writer}#{self._batches}", list(self._pending)
                        self._pending.clear()
                    self._retry = None
                try:
                    await self._write(batch, batch_id)
                    self._count(batch)
                except Exception as exc:
                    self.stats["failed"] += 1
                    logger.warning("personalize: impact not written yet (%s)", exc)
                    with self._lock:
                        self._retry = (batch_id, batch)
                    self._retry_timer.arm(RETRY_AFTER)
                    return False
        return True

    async def forget(self, units: Sequence[str]) -> int:
        """Erase what names the visitors with profile keys ``units``: their buffered
        exposures and outcomes, their counters, exposure times and order keys (the daily
        sums, which name no one, stay). Returns how many keys were deleted; raises
        :class:`~personalize.exceptions.StoreError` when the store cannot delete them."""
        gone = set(units)
        with self._lock:
            kept = [item for item in self._pending if item.unit not in gone]
            self._pending.clear()
            self._pending.extend(kept)
            if self._retry is not None:
                self._retry = (self._retry[0], [i for i in self._retry[1] if i.unit not in gone])
        if self._flushing is None:
            self._flushing = asyncio.Lock()
        async with self._flushing:  # a batch being written lands before it is deleted
            keys = [k for u in gone for k in (visitor_key(u), times_key(u))]
            for unit in gone:
                prefix = orders_prefix(unit)
                found = await self.store.keys(prefix)
                keys += [k for k in found if "}" not in k[len(prefix) :]]
            return await self.store.delete(keys)

    def _count(self, batch: Sequence[Exposure | Outcome]) -> None:
        exposures = sum(isinstance(item, Exposure) for item in batch)
        self.stats["exposures"] += exposures
        self.stats["outcomes"] += len(batch) - exposures

    async def aclose(self) -> None:
        """Write what is buffered (at shutdown); log what cannot be."""
        if not await self.flush():
            logger.error("personalize: %d impact records lost at shutdown", self.pending)
        self._retry_timer.cancel()

    async def _write(self, batch: Sequence[Exposure | Outcome], batch_id: str) -> None:
        batch = await self._new_orders(batch, batch_id)
        units = list(dict.fromkeys(item.unit for item in batch))
        found = await self.store.values([times_key(u) for u in units])
        times = {u: load_times(found.get(times_key(u))) for u in units}
        per_visitor: dict[str, dict[str, float]] = {}
        #: (unit, scope, arm, day, kind, amount): what the daily sums need once totals are known
        facts: list[tuple[str, str, str, str, str, float]] = []
        for item in batch:
            if isinstance(item, Exposure):
                day = day_of(item.ts)
                mine = times[item.unit]
                for scope, arm in scopes_of(item):
                    seen = mine[scope][1] if scope in mine else []
                    mine[scope] = (arm, sorted({*seen, item.ts})[-TIMES_KEPT:])
                    add_to(per_visitor, item.unit, f"n|{scope}|{arm}", 1.0)
                    facts.append((item.unit, scope, arm, day, "n", 1.0))
        for item in batch:
            if isinstance(item, Outcome):
                day = day_of(item.ts)
                for scope, held in self._attributed(times[item.unit], item.ts):
                    self.stats["attributed"] += 1
                    add_to(per_visitor, item.unit, f"c|{scope}|{held}", 1.0)
                    add_to(per_visitor, item.unit, f"v|{scope}|{held}", item.value)
                    facts.append((item.unit, scope, held, day, "c", item.value))
        changed = {times_key(u): dump_times(times[u], self.window) for u in units if times[u]}
        if changed:
            await self.store.put_values(changed, ttl=self.window + SKEW)
        if not per_visitor:
            return
        writer, _, n = batch_id.rpartition("#")
        totals = await self.store.increment(
            per_visitor,
            ttl=self.retention,
            batch_id=f"{writer}-v#{n}",
        )
        daily = daily_sums(facts, per_visitor, totals)
        await self.store.increment(daily, ttl=self.retention, batch_id=f"{writer}-d#{n}")

    async def _new_orders(
        self, batch: Sequence[Exposure | Outcome], batch_id: str
    ) -> list[Exposure | Outcome]:
        """``batch`` without the orders (outcomes with a ``ref``) counted before: the first
        batch to claim an order's key keeps it, a batch sent again keeps what it claimed."""
        refs = {
            orders_prefix(item.unit) + item.ref: item
            for item in batch
            if isinstance(item, Outcome) and item.ref
        }
        if not refs:
            return list(batch)
        mine = batch_id.encode()
        held = await self.store.put_values(
            dict.fromkeys(refs, mine), ttl=self.retention, only_if_absent=True
        )
        seen: set[str] = set()
        kept: list[Exposure | Outcome] = []
        for item in batch:
            if isinstance(item, Outcome) and item.ref:
                key = orders_prefix(item.unit) + item.ref
                if held.get(key) != mine or key in seen:
                    continue  # counted before, or twice in this batch
                seen.add(key)
            kept.append(item)
        return kept

    def _attributed(self, times: Times, ts: float) -> Iterable[tuple[str, str]]:
        for scope, (arm, seen) in times.items():
            if any(ts - self.window <= t <= ts + SKEW for t in seen):
                yield scope, arm

    async def daily(self, now: float, *, days: int = 90) -> list[tuple[str, dict[str, float]]]:
        """The daily sums of the ``days`` days up to ``now``, oldest first (days without any
        left out): ``(day, {"<scope>|<arm>|<stat>": sum})``."""
        today = dt.datetime.fromtimestamp(now, dt.UTC).date()
        wanted = [(today - dt.timedelta(days=i)).isoformat() for i in range(days - 1, -1, -1)]
        found = await self.store.counters([day_key(d) for d in wanted])
        return [(d, found[day_key(d)]) for d in wanted if found.get(day_key(d))]
