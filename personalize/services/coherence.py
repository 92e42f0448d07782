"""How a near-cache folds another process's writes into its copy of a profile.

A cached entry is ``(profile, when it was read, position)``: the position is the number of the
store's last write the copy holds (see :class:`~personalize.stores.notices.Appended`), None
when unknown (the copy came from a merge or traits: only a read tells). A notice's changes
are folded in only when they follow exactly that position; a duplicate (already held) is
skipped; anything else, a gap (a notice missed, the profile created again), drops the copy,
and the next read of it goes to the store.

>>> from personalize.profiles.changes import change_value
>>> from personalize.profiles.pageviews import Hit
>>> from personalize.stores.notices import Appended
>>> entry = (Profile(key="v:x"), 0.0, 7)
>>> hit = Appended("v:x", 7, 8, "b1", (change_value(Hit(ts=1.0, path="/")),))
>>> folded = fold_notice(entry, hit, {})
>>> folded[0].page_views, folded[2], fold_notice(folded, hit, {}) is folded
(1, 8, True)
>>> fold_notice(entry, Appended("v:x", 8, 9, "b2", ()), {}) is None  # 7 -> 8 is missing
True
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping

from personalize.profiles.changes import MAX_BATCH_IDS
from personalize.profiles.events import apply_event
from personalize.profiles.pageviews import SESSION_TIMEOUT, Hit, hit_view
from personalize.profiles.profile import Profile, copy_profile
from personalize.stores.base import ProfileStore
from personalize.stores.notices import Appended, Notice

__all__ = ["DUPLICATE_WINDOW", "GAP_WAIT", "Coherence", "Entry", "fold_notice"]

#: A cached profile, when it was read (clock seconds) and its position (None: unknown).
Entry = tuple[Profile, float, int | None]

#: A notice numbered at most this far below a copy's position is one it holds already
#: (it arrived after the read that included it). Numbers of a profile created again start
#: at a random 48-bit number, so they almost never fall into this window by chance.
DUPLICATE_WINDOW = 1 << 16
#: How long a copy waits for the notice of another process's write that came before one of
#: its own (notices usually arrive within a millisecond), before it is dropped.
GAP_WAIT = 0.5  # seconds


def fold_notice(
    entry: Entry,
    appended: Appended,
    ahead: dict[int, int],
    *,
    session_timeout: float = SESSION_TIMEOUT,
) -> Entry | None:
    """``entry`` with ``appended`` folded in; ``entry`` itself for a duplicate; None when
    the copy must be dropped (a gap, a position unknown, a tombstone, changes that cannot be
    folded). ``ahead`` holds this process's own writes (previous -> this number) that
    followed a write it had not heard of yet: once that one is folded, they are
    consumed from it and the position moves past them.
    """
    profile, stored_at, position = entry
    if position is None or profile.merged_into is not None or not profile.key:
        return None  # no position, a tombstone, or the store's "no profile" (key "")
    if appended.prev != position:
        if position - DUPLICATE_WINDOW < appended.seq <= position:
            return entry  # held already
        return None
    if appended.batch_id is None or appended.batch_id not in profile.batches:
        folded = _with_changes(profile, appended, session_timeout)
        if folded is None:
            return None
        profile = folded
    position = appended.seq
    while position in ahead:
        position = ahead.pop(position)
    return profile, stored_at, position


def _with_changes(profile: Profile, appended: Appended, timeout: float) -> Profile | None:
    """A new profile: ``profile`` is shared with pages and never changes in place."""
    view = profile
    try:
        for change in appended.changes():
            if isinstance(change, Hit):
                view = hit_view(view, change, session_timeout=timeout)
            else:
                view = copy_profile(view)
                apply_event(view, change)
    except Exception:  # what the store sets aside: a read shows what it kept
        return None
    if appended.batch_id is not None:
        if view is profile:
            view = copy_profile(view)
        view.batches = [*profile.batches, appended.batch_id][-MAX_BATCH_IDS:]
    return view


class Coherence:
    """The near-cache's side that hears of other processes' writes (a base of
    :class:`~personalize.services.nearcache.CachedProfiles`, which owns the state below)."""

    store: ProfileStore
    stats: dict[str, int]
    _cache: OrderedDict[str, Entry]
    _cache_size: int
    _ahead: dict[str, dict[int, int]]  # own writes past one not heard of yet: prev -> seq
    _lock: threading.Lock
    _epoch: int  # bumped by remember/forget/invalidate: an overlapping read is not cached
    _written_seq: int
    _key_seq: OrderedDict[str, int]  # key -> _written_seq when it last changed
    _inflight: Mapping[str, object]  # the keys of the batch being written

    def _listen(self, store: ProfileStore) -> None:
        """Hear of other processes' writes: notices where the store numbers its writes
        (``get_at``, ``apply_changes_at``, ``on_notice``), else invalidated keys."""
        self._ahead = {}
        # Notices that follow a write of this process whose number it does not know yet
        # (the batch is being written): replayed once it knows.
        self._held: dict[str, list[Appended]] = {}
        self.stats.update(notices_folded=0, notices_dropped=0)
        self._get_at = getattr(store, "get_at", None)
        self._apply_at = getattr(store, "apply_changes_at", None)
        on_notice = getattr(store, "on_notice", None)
        on_invalidate = getattr(store, "on_invalidate", None)
        if on_notice is not None and self._get_at and self._apply_at:
            on_notice(self._on_notice)
        elif on_invalidate is not None:
            on_invalidate(self._invalidate)

    def _invalidate(self, keys: list[str] | None) -> None:
        """Another process changed ``keys`` (None: anything): drop them from the cache."""
        with self._lock:
            if keys is None:
                self._epoch += 1
                self._cache.clear()
                self._ahead.clear()
                return
            self._mark(keys)
            for key in keys:
                self._cache.pop(key, None)
                self._ahead.pop(key, None)

    def _on_notice(self, notice: Notice | None) -> None:
        """Another process changed profiles: fold what it appended into copies exactly at
        the write before, drop the rest (see :func:`fold_notice`)."""
        if notice is None or notice.dropped:
            self._invalidate(None if notice is None else notice.dropped)
        if notice is None or not notice.appended:
            return
        with self._lock:
            self._mark(a.key for a in notice.appended)
            for appended in notice.appended:
                key = appended.key
                entry = self._cache.get(key)
                if entry is None:
                    continue
                if key in self._held or (key in self._inflight and appended.prev != entry[2]):
                    self._held.setdefault(key, []).append(appended)
                else:
                    self._fold(key, entry, appended)

    def _fold(self, key: str, entry: Entry, appended: Appended) -> None:
        ahead = self._ahead.get(key, {})
        timeout = self.store.session_timeout
        folded = fold_notice(entry, appended, ahead, session_timeout=timeout)
        if folded is None:
            self.stats["notices_dropped"] += 1
            del self._cache[key]
            self._ahead.pop(key, None)
        elif folded is not entry:
            self.stats["notices_folded"] += 1
            self._cache[key] = folded

    def _replay_held(self) -> None:
        """The batch is written (its numbers known) or failed: fold what was held."""
        held, self._held = self._held, {}
        for key, notices in held.items():
            for appended in notices:
                entry = self._cache.get(key)
                if entry is None:
                    break
                self._fold(key, entry, appended)

    def _advance(self, key: str, prev: int, seq: int) -> None:
        """This process wrote ``key`` as write ``seq`` following ``prev``: its copy, which
        holds those changes, moves to ``seq`` (once it has heard of ``prev``)."""
        entry = self._cache.get(key)
        if entry is None or entry[2] is None:
            return
        if entry[2] == prev and key not in self._ahead:  # the common case: the next write
            self._cache[key] = (entry[0], entry[1], seq)
            return
        ahead = self._ahead.setdefault(key, {})
        ahead[prev] = seq
        position = entry[2]
        while position in ahead:
            position = ahead.pop(position)
        if not ahead:
            del self._ahead[key]
        elif len(ahead) > 16:  # a write of another process never heard of: read again
            del self._cache[key], self._ahead[key]
            return
        else:  # the other process's notice is usually on its way; if not, read again
            asyncio.get_running_loop().call_later(GAP_WAIT, self._give_up, key, position)
        self._cache[key] = (entry[0], entry[1], position)

    def _give_up(self, key: str, position: int) -> None:
        """The notice of the write after ``position`` never came: drop the copy."""
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None and entry[2] == position and self._ahead.get(key):
                self.stats["notices_dropped"] += 1
                del self._cache[key], self._ahead[key]

    def _mark(self, keys: Iterable[str]) -> None:
        """``keys`` changed: a read of them under way may miss it, and is not cached."""
        self._written_seq += 1
        for key in keys:
            self._key_seq[key] = self._written_seq
            self._key_seq.move_to_end(key)
        while len(self._key_seq) > 2 * self._cache_size:
            self._key_seq.popitem(last=False)
