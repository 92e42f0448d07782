"""The ProfileStore interface every backend implements."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence

from personalize.profile import SESSION_TIMEOUT, Hit, Profile, apply_hit

#: A change to one profile: gets the stored profile (or None) and returns the new one
#: (or None to delete it). It must be a pure, synchronous function of its input: a store may
#: call it more than once (optimistic retries) and runs it inside its atomic section.
Mutation = Callable[[Profile | None], Profile | None]


class ProfileStore(abc.ABC):
    """An async key -> profile store whose updates of one key are atomic.

    Backends implement :meth:`get`, :meth:`update_many` and :meth:`delete`; everything else is
    built on them, so every backend follows the same profile rules.
    """

    session_timeout: float = SESSION_TIMEOUT  # seconds

    @abc.abstractmethod
    async def get(self, key: str) -> Profile | None:
        """The stored profile for ``key``, or None."""

    @abc.abstractmethod
    async def update_many(self, mutations: Mapping[str, Mutation]) -> dict[str, Profile | None]:
        """Apply each key's mutation atomically (per key) and return the new profiles."""

    @abc.abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove the profile stored under ``key``; True if there was one."""

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Release connections and threads."""

    async def update(self, key: str, mutation: Mutation) -> Profile | None:
        """Apply one mutation atomically and return the new profile."""
        return (await self.update_many({key: mutation}))[key]

    async def apply_hits(self, hits: Mapping[str, Sequence[Hit]]) -> dict[str, Profile]:
        """Fold page views into their profiles, creating profiles that do not exist yet."""
        timeout = self.session_timeout

        def folding(key: str, key_hits: Sequence[Hit]) -> Mutation:
            def mutate(profile: Profile | None) -> Profile:
                profile = Profile(key=key) if profile is None else profile
                for hit in sorted(key_hits, key=lambda h: h.ts):
                    apply_hit(profile, hit, session_timeout=timeout)
                return profile

            return mutate

        result = await self.update_many({k: folding(k, v) for k, v in hits.items() if v})
        return {k: p for k, p in result.items() if p is not None}
