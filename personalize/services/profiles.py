"""The profile service: the only way to the profile store.

It is the near-cache and write-behind buffer of :mod:`personalize.services.nearcache`, plus
everything else that changes profiles: login (merge an anonymous profile into a known one),
traits, erasure, and events from other channels. Each of these writes everything pending
first, so nothing buffered is lost or applied out of order.

>>> import asyncio
>>> from personalize.profiles.pageviews import Hit
>>> from personalize.stores.memory import MemoryStore
>>> async def login() -> tuple[int, list[str]]:
...     profiles = ProfileService(MemoryStore(), flush_interval=0)
...     await profiles.record("v:x1", Hit(ts=1.0, path="/"))
...     merged = await profiles.merge("v:x1", "ann", device_id="x2", now=2.0)
...     return merged.page_views, merged.aliases
>>> asyncio.run(login())
(1, ['x1'])
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from personalize.exceptions import IdentityError
from personalize.profiles.bounds import problem_in
from personalize.profiles.changes import Change
from personalize.profiles.identity import (
    DEFAULT_JUNK_IDS,
    anonymous_key,
    check_user_id,
    known_key,
)
from personalize.profiles.merge import MAX_ALIASES
from personalize.profiles.profile import Profile
from personalize.services.nearcache import MISSING, CachedProfiles, Missing
from personalize.stores.base import ProfileStore

__all__ = ["MISSING", "Missing", "ProfileService"]

logger = logging.getLogger("personalize.identity")


class ProfileService(CachedProfiles):
    """Near-cache, write-behind and identity operations in front of a :class:`ProfileStore`.

    ``junk_user_ids`` are the user ids :meth:`check_user_id` refuses ("null", "guest"...);
    ``max_aliases`` bounds how many anonymous profiles one known profile absorbs.
    """

    def __init__(
        self,
        store: ProfileStore,
        *,
        junk_user_ids: Iterable[str] = DEFAULT_JUNK_IDS,
        max_aliases: int = MAX_ALIASES,
        **options: Any,
    ) -> None:
        super().__init__(store, **options)
        self.junk_user_ids = frozenset(j.strip().lower() for j in junk_user_ids)
        self.max_aliases = max_aliases

    @property
    def session_timeout(self) -> float:
        """Seconds of inactivity that end a session (the store folds page views with it)."""
        return self.store.session_timeout

    def check_user_id(self, user_id: object) -> str:
        """``user_id`` cleaned up; :class:`IdentityError` for junk (see :func:`check_user_id`)."""
        return check_user_id(user_id, self.junk_user_ids)

    async def set_traits(
        self, user_id: str, traits: Mapping[str, Any], *, now: float
    ) -> Profile | None:
        """Set traits on a known profile (creating it); returns the profile."""
        check_traits(traits)
        key = known_key(user_id)
        await self.flush()
        stored = await self.store.update(key, _with_traits(key, user_id, traits, now))
        self.remember(key, stored)
        return stored

    async def read(self, key: str) -> Profile | None:
        """The stored profile with everything pending, read from the store (not the cache)."""
        await self.flush()
        return await self.store.get(key)

    async def merge(
        self,
        anonymous_key: str,
        user_id: str,
        *,
        device_id: str | None,
        traits: Mapping[str, Any] | None = None,
        now: float,
    ) -> Profile:
        """Log a browser in: merge its anonymous profile into ``user_id``'s known profile.

        Idempotent and exact (see :meth:`ProfileStore.merge`); the anonymous key never again
        reads the known profile. Returns the merged known profile.
        """
        if traits:
            check_traits(traits)
        key = known_key(user_id)
        await self.flush()  # the merge must include every page view so far
        merged, absorbed = await self.store.merge(
            anonymous_key,
            key,
            user_id=user_id,
            device_id=device_id,
            traits=traits,
            now=now,
            max_aliases=self.max_aliases,
        )
        if not absorbed and merged.aliases and len(merged.aliases) >= self.max_aliases:
            logger.warning(
                "personalize: anonymous profile not merged into %s (alias cap %d reached)",
                key,
                self.max_aliases,
            )
        self.remember(key, merged)
        self.remember(anonymous_key, None)
        return merged

    async def linked_keys(self, key: str) -> list[str]:
        """``key`` and the keys of the anonymous profiles merged into it: what :meth:`erase`
        deletes (read from the store)."""
        profile = await self.read(key)
        aliases = [] if profile is None else [anonymous_key(a) for a in profile.aliases]
        return list(dict.fromkeys([key, *aliases]))

    async def erase(self, key: str) -> list[str]:
        """Erase a profile and every anonymous profile merged into it; returns the keys."""
        await self.flush()
        removed = await self.store.erase(key)
        for k in {key, *removed}:
            self.forget(k)
        return removed

    async def ingest(self, changes: Mapping[str, Sequence[Change]]) -> None:
        """Store events from other channels now (not write-behind): the caller answers only
        once they are stored. Raises :class:`~personalize.exceptions.StoreError` when the
        store cannot take them."""
        await self.flush()
        written = await self.store.apply_changes(changes)
        for key in changes:
            # A store that only logged the events returns no profile: the next read folds them.
            self.remember(key, written.get(key))

    async def keys(self) -> list[str]:
        """Every stored key (maintenance and the editor UI's segment sizes; not per request)."""
        await self.flush()
        return await self.store.keys()


def check_traits(traits: object) -> None:
    """Traits are a mapping of names to plain JSON values (see
    :func:`~personalize.profiles.bounds.problem_in`: finite numbers, storable text, not
    nested too deeply)."""
    if not isinstance(traits, Mapping):
        raise IdentityError("traits must be a mapping")
    problem = problem_in(dict(traits), "traits")
    if problem is not None:
        raise IdentityError(problem)


def _with_traits(
    key: str, user_id: str, traits: Mapping[str, Any], now: float
) -> Callable[[Profile | None], Profile]:
    def mutate(profile: Profile | None) -> Profile:
        profile = Profile(key=key, user_id=user_id) if profile is None else profile
        for name, value in traits.items():
            profile.traits[str(name)] = value
            profile.trait_times[str(name)] = now
        return profile

    return mutate
