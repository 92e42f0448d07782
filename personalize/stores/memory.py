"""An in-process store for tests and throwaway runs."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from personalize.profiles.profile import Profile
from personalize.stores.base import Mutation, ProfileStore


class MemoryStore(ProfileStore):
    """Keeps profiles in a dict, serialised as JSON so callers never share mutable state.

    Atomic per key: mutations run under a lock with no ``await`` inside, so neither tasks of
    one event loop nor threads (several test clients) can interleave them.
    """

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    async def keys(self) -> list[str]:
        with self._lock:
            return list(self._data)

    async def get(self, key: str) -> Profile | None:
        raw = self._data.get(key)
        return None if raw is None else Profile.from_json(raw)

    async def update_many(self, mutations: Mapping[str, Mutation]) -> dict[str, Profile | None]:
        result: dict[str, Profile | None] = {}
        with self._lock:
            for key, mutate in mutations.items():
                raw = self._data.get(key)
                new = mutate(None if raw is None else Profile.from_json(raw))
                if new is None:
                    self._data.pop(key, None)
                else:
                    self._data[key] = new.to_json()
                result[key] = new
        return result

    async def delete(self, key: str) -> bool:
        with self._lock:
            return self._data.pop(key, None) is not None
