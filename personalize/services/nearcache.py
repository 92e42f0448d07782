"""Profiles on the request path: a bounded near-cache in front of the store, and write-behind.

:class:`CachedProfiles` is the base of :class:`~personalize.services.profiles.CachedProfiles`.
The cache holds each profile as this process knows it: what the store returned plus the
changes recorded since, written or not; page views are written after the response, in
batches with an id, kept and sent again when the store fails. docs/ARCHITECTURE.md ("The
near-cache and write-behind") has the design.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping

from personalize.exceptions import StoreUnavailableError
from personalize.profiles.changes import Change, creates_profile, fold_changes
from personalize.profiles.events import apply_event
from personalize.profiles.pageviews import Hit, apply_hit, hit_view
from personalize.profiles.profile import Profile, copy_profile
from personalize.services.coherence import Coherence, Entry
from personalize.services.latency import LatencyHistogram
from personalize.services.retrying import RetryTimer
from personalize.stores.base import ProfileStore

logger = logging.getLogger("personalize.profiles")


_TRUSTED = ProfileStore.__dict__["trusted_cache_ttl"]  # the base store's: always trusted
_ABSENT = Profile(key="")  # cached "the store has no profile for this key"
Read = tuple[Profile | None, Profile]  # what a page read, and its view (see record)


class Missing(enum.Enum):
    """The type of :data:`MISSING`."""

    MISSING = "not in the cache"


#: :meth:`CachedProfiles.cached` found nothing: ask :meth:`CachedProfiles.load`.
MISSING = Missing.MISSING


class CachedProfiles(Coherence):
    """Near-cache and write-behind buffer in front of a :class:`ProfileStore`."""

    def __init__(
        self,
        store: ProfileStore,
        *,
        cache_size: int = 10_000,  # profiles
        flush_interval: float = 0.02,  # seconds
        max_pending: int = 100_000,  # changes buffered while the store is slow or down
        retry_backoff: float = 1.0,  # seconds before retrying after a failed write
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        # False when the store keeps the base class's trusted_cache_ttl (always trusted)
        self._ttl_varies = getattr(type(store), "trusted_cache_ttl", None) is not _TRUSTED
        # key -> (profile, when it was read, its position in the store's writes: see
        # services/coherence.py); a cached profile never changes in place: page views fold
        # into a new one (hit_view), events into a copy
        self._cache: OrderedDict[str, Entry] = OrderedDict()
        self._cache_size = cache_size
        self._flush_interval = flush_interval
        self._max_pending = max_pending
        self._retry_backoff = retry_backoff
        self._clock = clock
        self._pending: dict[str, list[Change]] = {}
        # Batches whose write failed or whose outcome is unknown; they are sent again with
        # the same id, and the store applies each id once.
        self._retry: list[tuple[str, dict[str, list[Change]]]] = []
        self._pending_count = 0
        self._lock = threading.Lock()
        self._flushing = False
        self._epoch = 0
        # A read that overlaps a write of the same key may miss it: such reads are not cached.
        self._inflight: Mapping[str, list[Change]] = {}
        self._written_seq = 0
        self._key_seq: OrderedDict[str, int] = OrderedDict()
        self._retry_at = 0.0
        self._retry_timer = RetryTimer(self.write_behind)  # no request may come to retry
        self.stats = {"cache_hits": 0, "cache_misses": 0, "written": 0, "failed": 0, "dropped": 0}
        self.latency = LatencyHistogram()  # store calls, for the metrics endpoint
        self._listen(store)

    @property
    def pending(self) -> int:
        """Changes accepted but not yet written to the store."""
        return self._pending_count

    def _pending_for(self, key: str) -> list[Change]:
        items = [c for _, batch in self._retry for c in batch.get(key, ())]
        items += self._pending.get(key, ())
        return items

    def cached(self, key: str) -> Profile | Missing | None:
        """The profile from the cache alone, without a coroutine (this runs for every
        request): the profile, None when the store is known to hold none, or
        :data:`MISSING` when only :meth:`load` can tell. Do not change what it returns.
        """
        entry = self._cache.get(key)
        if entry is None:
            return MISSING
        if self._ttl_varies:  # (the base store trusts its cache: no property call then)
            ttl = self.store.trusted_cache_ttl
            if ttl is not None and self._clock() - entry[1] > ttl:
                return MISSING  # stale: kept only as a fallback while the store is unreachable
        self._cache.move_to_end(key)
        self.stats["cache_hits"] += 1
        profile = entry[0]
        return None if profile is _ABSENT else profile

    async def load(self, key: str) -> Profile | None:
        """The profile as stored plus changes not written yet, or None for a new key.

        The result may be the cached object: do not change it (use :func:`hit_view` or
        :func:`copy_profile` for a copy to change).
        """
        profile = self.cached(key)
        if profile is MISSING:
            self.stats["cache_misses"] += 1
            epoch, seq = self._epoch, self._written_seq
            started = time.perf_counter()
            position = None
            try:
                if self._get_at is None:
                    profile = await self.store.get(key)
                else:
                    profile, position = await self._get_at(key)
            except Exception:
                stale = self._cache.get(key)
                if stale is None:
                    raise
                # The store is unreachable: a profile that may be a little old beats
                # default content for a visitor we know. (The cached profile already
                # holds what is pending here.)
                return None if stale[0] is _ABSENT else stale[0]
            self.latency.observe(time.perf_counter() - started)
            profile = self._with_pending(key, profile)
            if (
                epoch == self._epoch
                and key not in self._inflight
                and self._key_seq.get(key, -1) <= seq
            ):
                # "No profile" is remembered too: returning cookies without a profile
                # (erased, or nothing recorded yet) must not cost a store read each time.
                self._remember(key, _ABSENT if profile is None else profile, position)
        return profile

    def _with_pending(self, key: str, profile: Profile | None) -> Profile | None:
        pending = self._pending_for(key) if (self._pending or self._retry) else []
        if pending and (profile is not None or creates_profile(key, pending)):
            profile = Profile(key=key) if profile is None else copy_profile(profile)
            if profile.merged_into is None:
                for change in sorted(pending, key=lambda c: c.ts):
                    if isinstance(change, Hit):
                        apply_hit(profile, change, session_timeout=self.store.session_timeout)
                    else:
                        apply_event(profile, change)
        return profile

    def remember(self, key: str, profile: Profile | None) -> None:
        """Put a profile the caller just wrote into the cache (or drop the key for None)."""
        with self._lock:
            self._epoch += 1
            if profile is None:
                self._cache.pop(key, None)
            else:
                self._remember(key, profile)

    def forget(self, key: str) -> None:
        """Drop ``key`` from the cache and from every buffer (after an erase)."""
        with self._lock:
            self._epoch += 1
            self._cache.pop(key, None)
            items = self._pending.pop(key, None)
            if items:
                self._pending_count -= len(items)
            for _, batch in self._retry:
                items = batch.pop(key, None)
                if items:
                    self._pending_count -= len(items)
            self._retry = [(bid, batch) for bid, batch in self._retry if batch]

    async def record(
        self,
        key: str,
        change: Change,
        *,
        new: bool = False,
        read: Read | None = None,
    ) -> None:
        """Accept one change; the calling task may become the one that writes the batch.

        ``new``: the key was just created (a new visitor id), the cache starts its profile
        without a store read. ``read``: (a profile :meth:`load` returned, it with ``change``
        folded in by :func:`hit_view`): while the cache holds the first, the second replaces
        it (no second fold); (None, a new profile of ``change`` alone) starts the profile of
        a key the store holds none of.
        """
        if self.enqueue(key, change, new=new, read=read):
            await self.write_behind()

    def enqueue(
        self,
        key: str,
        change: Change,
        *,
        new: bool = False,
        read: Read | None = None,
    ) -> bool:
        """Accept one change without writing (``new`` and ``read`` as for :meth:`record`):
        the cache sees it at once, the next :meth:`write_behind` writes it. For code that
        cannot await (a logout, a page view): True when :meth:`write_behind` would write now.
        """
        with self._lock:  # one lock and no coroutine: this runs for every page view
            pending = self._pending.get(key)
            if pending is None:
                self._pending[key] = [change]
            else:
                pending.append(change)
            self._pending_count += 1
            entry = self._cache.get(key) if read is not None else None
            if read is not None and entry is not None and read[0] is entry[0]:
                # The page's view of the cached profile is the cached profile now (the
                # common case of _fold_into_cache, written out: most page views come here).
                self._cache[key] = (read[1], entry[1], entry[2])
            else:
                self._fold_into_cache(key, change, new, read)
            if self._pending_count > self._max_pending:
                self._drop_oldest()
            return not self._flushing and self._clock() >= self._retry_at

    async def write_behind(self) -> None:
        """Write what is pending after ``flush_interval``, unless a write is under way (it
        takes these changes too) or the store failed a moment ago (the next one retries)."""
        with self._lock:
            if not (self._pending or self._retry):
                return
            if self._flushing or self._clock() < self._retry_at:
                return
            self._flushing = True
        await self._write_loop()

    async def _write_loop(self) -> None:
        try:
            while (self._pending or self._retry) and self._clock() >= self._retry_at:
                # One write per interval at most: under load, what came during a write waits
                # for the next interval instead of going in a write of its own at once (each
                # write hands the GIL to the store's thread and back a few times).
                await asyncio.sleep(self._flush_interval)
                await self._flush_once()
        finally:
            self._flushing = False

    async def flush(self) -> None:
        """Write everything pending now (at shutdown, before a merge, in tests); raises
        :class:`StoreUnavailableError` when the store cannot take it (the changes stay)."""
        while self._pending or self._retry:
            if not await self._flush_once():
                count = self._pending_count
                raise StoreUnavailableError(f"could not write {count} pending changes")

    async def aclose(self) -> None:
        """Flush what is pending (logging what cannot be written) and close the store."""
        try:
            await self.flush()
        except StoreUnavailableError as exc:  # an outage, not a bug: no traceback
            logger.error("personalize: lost at shutdown, the store is unavailable: %s", exc)
        except Exception:
            logger.exception(
                "personalize: %d profile changes could not be written at shutdown",
                self._pending_count,
            )
        self._retry_timer.cancel()
        await self.store.close()

    async def _flush_once(self) -> bool:
        with self._lock:
            if self._retry:
                batch_id, batch = self._retry.pop(0)
            else:
                batch_id, batch = secrets.token_hex(6), self._pending
                self._pending = {}
            count = sum(len(v) for v in batch.values())
        if not batch:
            return True
        self._inflight = batch
        started = time.perf_counter()
        try:
            if self._apply_at is None:
                written, positions = await self.store.apply_changes(batch, batch_id=batch_id), {}
            else:
                written, positions = await self._apply_at(batch, batch_id=batch_id)
            self.latency.observe(time.perf_counter() - started)
        except Exception as exc:
            with self._lock:
                self._written(batch)  # the outcome is unknown: reads since may be stale
                self._retry.insert(0, (batch_id, batch))
                self.stats["failed"] += 1
                self._retry_at = self._clock() + self._retry_backoff
            self._retry_timer.arm(self._retry_backoff)
            logger.warning(
                "personalize: writing %d profile changes failed (%s); will retry, %d buffered",
                count,
                exc,
                self._pending_count,
            )
            return False
        with self._lock:
            # The cache already holds this batch (record folded it in), and what other
            # processes appended where it heard of it. Elsewhere, a profile the store computed
            # also holds what other processes wrote: take it where nothing newer is pending.
            for key, (prev, seq) in positions.items():
                self._advance(key, prev, seq)
            for key, profile in written.items():
                if key in positions or key in self._pending:
                    continue
                if not any(key in b for _, b in self._retry):
                    self._remember(key, profile)
            self._pending_count -= count
            self.stats["written"] += count
            self._written(batch)
        return True

    def _written(self, keys: Iterable[str]) -> None:
        self._inflight = {}
        self._mark(keys)
        self._replay_held()

    def _fold_into_cache(self, key: str, change: Change, new: bool, read: Read | None) -> None:
        """Keep the cached profile equal to the stored one plus what is pending.

        Nothing cached changes in place: a page view folds into a new profile that shares
        what it leaves unchanged (:func:`~personalize.profiles.pageviews.hit_view`), so a
        profile a page still holds never changes under it (a view handed over as ``read``
        becomes the cached profile). Events fold into a copy (:func:`copy_profile`).
        """
        entry = self._cache.get(key)
        if entry is None and not new:
            return  # not cached: the next load reads the store and folds in what is pending
        timeout = self.store.session_timeout
        if entry is None or entry[0] is _ABSENT:
            if not creates_profile(key, [change]):
                return  # stays absent: the store will not create it either
            if read is not None and read[0] is None:
                profile = read[1]  # the page's, started from nothing with this change
            else:
                profile = Profile(key=key)
                fold_changes(profile, [change], session_timeout=timeout)
            if entry is None:
                self._remember(key, profile, 0)  # a new key: the store holds no write of it
            else:
                self._cache[key] = (profile, entry[1], entry[2])
            return
        current, stored_at, position = entry
        if current.merged_into is not None:
            return  # a tombstone: where its changes go is the store's business
        if isinstance(change, Hit):  # (a view of this profile was taken by enqueue)
            profile = hit_view(current, change, session_timeout=timeout)
            self._cache[key] = (profile, stored_at, position)
        else:
            profile = copy_profile(current)
            apply_event(profile, change)
            self._cache[key] = (profile, stored_at, position)

    def _remember(self, key: str, profile: Profile, position: int | None = None) -> None:
        self._cache[key] = (profile, self._clock(), position)
        self._cache.move_to_end(key)
        self._ahead.pop(key, None)
        if len(self._cache) > self._cache_size:
            self._ahead.pop(self._cache.popitem(last=False)[0], None)

    def _drop_oldest(self) -> None:
        excess = self._pending_count - self._max_pending
        dropped = 0
        buffers = [batch for _, batch in self._retry] + [self._pending]
        for buffer in buffers:
            for items in buffer.values():
                while items and dropped < excess:
                    items.pop(0)
                    dropped += 1
            for key in [k for k, v in buffer.items() if not v]:
                del buffer[key]
            if dropped >= excess:
                break
        self._retry = [(bid, batch) for bid, batch in self._retry if batch]
        self._pending_count -= dropped
        self.stats["dropped"] += dropped
        logger.error(
            "personalize: write buffer full (%d changes); dropped the %d oldest",
            self._max_pending,
            dropped,
        )
