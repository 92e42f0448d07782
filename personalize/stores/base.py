"""The ProfileStore interface every backend implements, and the rules built on it."""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from personalize.profiles import identity
from personalize.profiles.changes import (
    FORWARD_GRACE,
    MAX_BATCH_IDS,
    Change,
    creates_profile,
    fold_changes,
    quarantine_record,
    split_forwarded,
)
from personalize.profiles.merge import MAX_ALIASES, merge_profiles
from personalize.profiles.pageviews import SESSION_TIMEOUT, Hit
from personalize.profiles.profile import Profile
from personalize.stores.state import StateStore

__all__ = [
    "FORWARD_GRACE",
    "MAX_BATCH_IDS",
    "Change",
    "Mutation",
    "ProfileStore",
    "absorb_anonymous",
]

#: A change to one profile: gets the stored profile (or None) and returns the new one
#: (or None to delete it). It must be a pure, synchronous function of its input: a store may
#: call it more than once (optimistic retries) and runs it inside its atomic section.
Mutation = Callable[[Profile | None], Profile | None]
logger = logging.getLogger("personalize")
_SET_ASIDE_PER_KEY, _SET_ASIDE_KEYS = 20, 1000  # records kept in memory by set_aside


def absorb_anonymous(
    profile: Profile | None,
    source: Profile | None,
    *,
    known_key: str,
    user_id: str,
    anonymous_id: str,
    device_id: str | None,
    traits: Mapping[str, object] | None,
    now: float,
    max_aliases: int,
) -> tuple[Profile, bool]:
    """The known ``profile`` (created if None) with the anonymous profile ``source`` (its data
    when it became a tombstone, or None) absorbed, and whether it was: only when ``source``
    was not merged into another profile, its id is not among the aliases yet (merged before)
    and the aliases are fewer than ``max_aliases``. The merge step of
    :meth:`ProfileStore.merge`; ``traits`` are set either way."""
    merged = False
    profile = Profile(key=known_key, user_id=user_id) if profile is None else profile
    profile.user_id = user_id
    if (
        (source is None or source.merged_into in (None, known_key))
        and anonymous_id not in profile.aliases
        and len(profile.aliases) < max_aliases
    ):
        if source is not None:
            merge_profiles(profile, source)
            if device_id is not None and anonymous_id in profile.devices:
                profile.devices[device_id] = profile.devices.pop(anonymous_id)
        profile.aliases.append(anonymous_id)
        merged = True
    for name, value in (traits or {}).items():
        profile.traits[name] = value
        profile.trait_times[name] = now
    return profile, merged


class ProfileStore(abc.ABC):
    """An async key -> profile store whose updates of one key are atomic.

    Backends implement :meth:`get`, :meth:`update_many` and :meth:`delete`; page views,
    events, merges and erasure are built on them, so every backend follows the same rules.
    """

    session_timeout: float = SESSION_TIMEOUT  # seconds

    @property
    def trusted_cache_ttl(self) -> float | None:
        """Seconds a profile cached in this process may be used before it is read again;
        None: until this process changes it or the store says another one did."""
        return None

    @abc.abstractmethod
    async def get(self, key: str) -> Profile | None:
        """The stored profile for ``key``, or None."""

    @abc.abstractmethod
    async def update_many(self, mutations: Mapping[str, Mutation]) -> dict[str, Profile | None]:
        """Apply each key's mutation atomically (per key) and return the new profiles."""

    @abc.abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove the profile stored under ``key``; True if there was one."""

    @abc.abstractmethod
    async def keys(self) -> list[str]:
        """Every stored key (for maintenance, erasure checks and tests; not per request)."""

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Release connections and threads."""

    def state_store(self) -> StateStore:
        """A :class:`StateStore` for decision state on this store's backend (its file, its
        server), the default of ``Settings.state_store``. A backend without one keeps
        decision state in this process: each worker then learns alone."""
        from personalize.stores.state_memory import MemoryStateStore

        return MemoryStateStore()

    async def quarantined(self, key: str) -> list[dict[str, Any]]:
        """What was set aside for ``key`` because it could not be read, folded or encoded
        (see :func:`~personalize.profiles.changes.quarantine_record`), oldest first."""
        return [orjson.loads(r) for r in self._set_aside_records().get(key, ())]

    def set_aside(self, key: str, records: Sequence[bytes]) -> None:
        """Keep (the last few, in this process) and log what could not be folded into
        ``key``'s profile; stores that keep it with the profile, atomically with the write,
        do that instead."""
        kept = self._set_aside_records()
        mine = kept.setdefault(key, [])
        mine.extend(records)
        del mine[:-_SET_ASIDE_PER_KEY]
        while len(kept) > _SET_ASIDE_KEYS:  # bounded: the log keeps every record
            del kept[next(iter(kept))]
        for record in records:
            logger.error("personalize: quarantined data of profile %s: %s", key, record.decode())

    def _set_aside_records(self) -> dict[str, list[bytes]]:
        records: dict[str, list[bytes]] = self.__dict__.setdefault("_set_aside", {})
        return records

    async def update(self, key: str, mutation: Mutation) -> Profile | None:
        """Apply one mutation atomically and return the new profile."""
        return (await self.update_many({key: mutation}))[key]

    async def apply_hits(self, hits: Mapping[str, Sequence[Hit]]) -> dict[str, Profile]:
        """Fold page views into their profiles, creating profiles that do not exist yet.

        Returns the new profiles where the store computed them (a store that appends to a
        change log returns none)."""
        return await self.apply_changes(hits)

    async def apply_changes(
        self, changes: Mapping[str, Sequence[Change]], *, batch_id: str | None = None
    ) -> dict[str, Profile]:
        """Fold page views and events into their profiles, atomically per profile.

        With a ``batch_id``, a batch that is sent again (after a timeout whose outcome was
        unknown) is applied only once. Changes that reach a merged anonymous id within
        :data:`FORWARD_GRACE` are forwarded to the known profile.
        """
        timeout = self.session_timeout
        forwards: dict[str, tuple[str, list[Change]]] = {}
        rejected: dict[str, list[tuple[Change, str]]] = {}

        def folding(key: str, items: Sequence[Change]) -> Mutation:
            ordered = sorted(items, key=lambda c: c.ts)

            def mutate(profile: Profile | None) -> Profile | None:
                forwards.pop(key, None)  # a retried mutation starts afresh
                bad = rejected[key] = []
                if profile is None:
                    if not creates_profile(key, ordered):
                        return None  # page views of an erased user: nothing is recreated
                    profile = Profile(key=key)
                todo, forwarded = split_forwarded(profile, ordered)
                if forwarded:
                    assert profile.merged_into is not None
                    forwards[key] = (profile.merged_into, forwarded)
                if batch_id is not None:
                    if batch_id in profile.batches:
                        return profile
                    profile.batches.append(batch_id)
                    del profile.batches[:-MAX_BATCH_IDS]
                fold_changes(profile, todo, session_timeout=timeout, rejected=bad)
                return profile

            return mutate

        result = await self.update_many({k: folding(k, v) for k, v in changes.items() if v})
        for key, bad in rejected.items():
            if bad:
                self.set_aside(key, [quarantine_record(key, bad[0][1], changes=bad)])
        written = {k: p for k, p in result.items() if p is not None}
        by_target: dict[str, list[Change]] = {}
        for target, forwarded in forwards.values():
            by_target.setdefault(target, []).extend(forwarded)
        for target, items in by_target.items():
            sub_batch = None if batch_id is None else f"{batch_id}>{target}"
            written.update(await self.apply_changes({target: items}, batch_id=sub_batch))
        return written

    async def merge(
        self,
        anonymous_key: str,
        known_key: str,
        *,
        user_id: str,
        device_id: str | None = None,
        traits: Mapping[str, object] | None = None,
        now: float | None = None,
        max_aliases: int = MAX_ALIASES,
    ) -> tuple[Profile, bool]:
        """Merge an anonymous profile into a known one; returns (known profile, merged?).

        Steps, each atomic and idempotent, so it also works where the two keys live on
        different Redis Cluster nodes: the known profile is created if need be; then the
        anonymous profile becomes a tombstone that remembers its data and where it went
        (page views still arriving on it are forwarded); then the known profile absorbs that data
        unless it already lists the anonymous id among its aliases. Running it again (after a
        crash between the steps, or a double submit) adds nothing twice.

        Every tombstone that names the known profile is listed among its aliases, even that
        of a browser whose first request was the login (nothing to absorb), so erasing the
        known profile finds it. Past ``max_aliases`` nothing more is absorbed and the
        anonymous profile is deleted instead of becoming a tombstone nobody lists.
        """
        now = time.time() if now is None else now
        anonymous_id = identity.visitor_id_of(anonymous_key) or anonymous_key
        snapshot: list[Profile | None] = [None]

        def tombstone(profile: Profile | None) -> Profile | None:
            snapshot[0] = None if profile is None else profile.copy()
            # Even a visitor with no history yet gets a tombstone: the id must never again
            # be taken for a fresh anonymous visitor, and in-flight page views are forwarded.
            profile = Profile(key=anonymous_key) if profile is None else profile
            if profile.merged_into is None:
                profile.merged_into = known_key
                profile.merged_at = now
                profile.merged_device = device_id
            return profile

        def absorb(profile: Profile | None) -> Profile:
            profile, absorbed[0] = absorb_anonymous(
                profile, snapshot[0], known_key=known_key, user_id=user_id,
                anonymous_id=anonymous_id, device_id=device_id, traits=traits, now=now,
                max_aliases=max_aliases,
            )  # fmt: skip
            listed[0] = anonymous_id in profile.aliases
            return profile

        def compact(profile: Profile | None) -> Profile | None:
            # The data now lives in the known profile: keep only the forwarding address.
            if profile is None or profile.merged_into != known_key:
                return profile
            if not listed[0]:
                return None  # over the alias cap: no tombstone that erasure could not find
            return Profile(
                key=anonymous_key,
                merged_into=known_key,
                merged_at=profile.merged_at,
                merged_device=profile.merged_device,
                batches=profile.batches,
            )

        def ensure(profile: Profile | None) -> Profile:
            return Profile(key=known_key, user_id=user_id) if profile is None else profile

        absorbed, listed = [False], [False]
        # The known profile exists before any tombstone names it: page views in flight on
        # the anonymous cookie are forwarded to it from then on, and page views alone never
        # create a known profile (see creates_profile), so forwarded into a profile that did
        # not exist yet they would be dropped when it was created. Its cookie epoch is drawn
        # here, once, by whichever login creates it first.
        await self.update(known_key, ensure)
        await self.update(anonymous_key, tombstone)
        known = await self.update(known_key, absorb)
        assert known is not None
        await self.update(anonymous_key, compact)
        return known, absorbed[0]

    async def erase(self, key: str) -> list[str]:
        """Delete a profile and every anonymous profile merged into it; returns the keys."""
        profile = await self.get(key)
        keys = [key]
        if profile is not None:
            keys += [identity.anonymous_key(alias) for alias in profile.aliases]
        removed = []
        for k in keys:
            if await self.delete(k) | (self._set_aside_records().pop(k, None) is not None):
                removed.append(k)
        return removed
