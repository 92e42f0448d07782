"""Profiles on the request path: a bounded near-cache in front of the store, and write-behind.

Reads come from a bounded LRU of stored profiles, so a returning visitor costs no I/O. Page
views are written after the response, batched: the first request task that finds no flush
running waits ``flush_interval`` seconds, then writes everything pending in one
``store.apply_hits`` call, and loops while more arrived. No background task outlives a
request, so nothing is left pending when an event loop closes.

If the store fails, the batch goes back into the buffer and is retried by the next request
after a back-off. The buffer is bounded (``max_pending`` page views); when it overflows the
oldest page views are dropped, counted in ``stats["dropped"]`` and logged as errors.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from personalize.profile import Hit, Profile, SessionRecord, apply_hit
from personalize.stores.base import ProfileStore

logger = logging.getLogger("personalize.profiles")


def copy_profile(profile: Profile) -> Profile:
    """A copy that shares no mutable state with ``profile`` (cheaper than a JSON round trip)."""
    return replace(
        profile,
        affinities=dict(profile.affinities),
        sessions=[_copy_session(s) for s in profile.sessions],
        traits=dict(profile.traits),
    )


def _copy_session(session: SessionRecord) -> SessionRecord:
    return replace(session)


class ProfileService:
    """Near-cache and write-behind buffer in front of a :class:`ProfileStore`."""

    def __init__(
        self,
        store: ProfileStore,
        *,
        cache_size: int = 10_000,  # profiles
        flush_interval: float = 0.02,  # seconds
        max_pending: int = 100_000,  # page views buffered while the store is slow or down
        retry_backoff: float = 1.0,  # seconds before retrying after a failed write
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._cache: OrderedDict[str, Profile] = OrderedDict()
        self._cache_size = cache_size
        self._flush_interval = flush_interval
        self._max_pending = max_pending
        self._retry_backoff = retry_backoff
        self._clock = clock
        self._pending: dict[str, list[Hit]] = {}
        self._pending_count = 0
        self._lock = threading.Lock()
        self._flushing = False
        self._epoch = 0  # bumped by every flush; a read that overlaps one is not cached
        self._retry_at = 0.0
        self.stats = {"cache_hits": 0, "cache_misses": 0, "written": 0, "failed": 0, "dropped": 0}

    @property
    def pending(self) -> int:
        """Page views accepted but not yet written to the store."""
        return self._pending_count

    async def load(self, key: str) -> Profile | None:
        """The profile as stored plus page views not written yet, or None for a new key.

        The caller gets its own copy when there are pending page views; otherwise it gets the
        cached object and must not change it (use :func:`copy_profile`).
        """
        profile = self._cache.get(key)
        if profile is not None:
            self._cache.move_to_end(key)
            self.stats["cache_hits"] += 1
        else:
            self.stats["cache_misses"] += 1
            epoch = self._epoch
            profile = await self.store.get(key)
            if profile is not None and epoch == self._epoch and not self._flushing:
                self._remember(key, profile)
        pending = self._pending.get(key)
        if pending:
            profile = Profile(key=key) if profile is None else copy_profile(profile)
            for hit in list(pending):
                apply_hit(profile, hit, session_timeout=self.store.session_timeout)
        return profile

    def forget(self, key: str) -> None:
        """Drop ``key`` from the cache and the pending buffer (after an erase)."""
        with self._lock:
            self._cache.pop(key, None)
            hits = self._pending.pop(key, None)
            if hits:
                self._pending_count -= len(hits)

    async def record(self, key: str, hit: Hit) -> None:
        """Accept one page view; the calling task may become the one that writes the batch."""
        with self._lock:
            self._pending.setdefault(key, []).append(hit)
            self._pending_count += 1
            if self._pending_count > self._max_pending:
                self._drop_oldest()
            if self._flushing or self._clock() < self._retry_at:
                return
            self._flushing = True
        try:
            await asyncio.sleep(self._flush_interval)
            while self._pending and self._clock() >= self._retry_at:
                await self._flush_once()
        finally:
            self._flushing = False

    async def flush(self) -> None:
        """Write everything pending now (at shutdown, or in tests). Raises if the store fails."""
        while self._pending:
            if not await self._flush_once():
                raise RuntimeError(f"could not write {self._pending_count} pending page views")

    async def aclose(self) -> None:
        """Flush what is pending (logging what cannot be written) and close the store."""
        try:
            await self.flush()
        except Exception:
            logger.exception(
                "personalize: %d page views could not be written at shutdown", self._pending_count
            )
        await self.store.close()

    async def _flush_once(self) -> bool:
        with self._lock:
            batch, self._pending = self._pending, {}
            count, self._pending_count = self._pending_count, 0
            self._epoch += 1
        if not batch:
            return True
        try:
            written = await self.store.apply_hits(batch)
        except Exception as exc:
            with self._lock:
                for key, hits in batch.items():  # older hits go first, newer ones stay behind
                    self._pending[key] = hits + self._pending.get(key, [])
                self._pending_count += count
                self.stats["failed"] += 1
                self._retry_at = self._clock() + self._retry_backoff
            logger.warning(
                "personalize: writing %d page views failed (%s); will retry, %d buffered",
                count,
                exc,
                self._pending_count,
            )
            return False
        with self._lock:
            for key, profile in written.items():
                self._remember(key, profile)
            self.stats["written"] += count
            self._epoch += 1
        return True

    def _remember(self, key: str, profile: Profile) -> None:
        self._cache[key] = profile
        self._cache.move_to_end(key)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _drop_oldest(self) -> None:
        excess = self._pending_count - self._max_pending
        dropped = 0
        for hits in self._pending.values():
            while hits and dropped < excess:
                hits.pop(0)
                dropped += 1
            if dropped >= excess:
                break
        self._pending = {k: v for k, v in self._pending.items() if v}
        self._pending_count -= dropped
        self.stats["dropped"] += dropped
        logger.error(
            "personalize: write buffer full (%d page views); dropped the %d oldest",
            self._max_pending,
            dropped,
        )
