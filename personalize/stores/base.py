"""The ProfileStore interface every backend implements, and the rules built on it."""

from __future__ import annotations

import abc
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import orjson

from personalize.events import Event, apply_event
from personalize.profile import (
    MAX_ALIASES,
    SESSION_TIMEOUT,
    Hit,
    Profile,
    apply_hit,
    merge_profiles,
)

#: A change to one profile: gets the stored profile (or None) and returns the new one
#: (or None to delete it). It must be a pure, synchronous function of its input: a store may
#: call it more than once (optimistic retries) and runs it inside its atomic section.
Mutation = Callable[[Profile | None], Profile | None]

#: What the request path writes: page views and events.
Change = Hit | Event

#: After a merge, changes that reach the old anonymous id and happened up to this many seconds
#: after the merge (requests that were in flight during the login) are forwarded to the known
#: profile. Later ones stay on the tombstone: the old id never again reaches the known profile.
FORWARD_GRACE = 120.0  # seconds
MAX_BATCH_IDS = 8  # write batches remembered per profile, so a retried batch applies once


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

        def folding(key: str, items: Sequence[Change]) -> Mutation:
            ordered = sorted(items, key=lambda c: c.ts)

            def mutate(profile: Profile | None) -> Profile:
                forwards.pop(key, None)  # a retried mutation starts afresh
                profile = Profile(key=key) if profile is None else profile
                todo, forwarded = split_forwarded(profile, ordered)
                if forwarded:
                    assert profile.merged_into is not None
                    forwards[key] = (profile.merged_into, forwarded)
                if batch_id is not None:
                    if batch_id in profile.batches:
                        return profile
                    profile.batches.append(batch_id)
                    del profile.batches[:-MAX_BATCH_IDS]
                fold_changes(profile, todo, session_timeout=timeout)
                return profile

            return mutate

        result = await self.update_many({k: folding(k, v) for k, v in changes.items() if v})
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

        Two steps, each atomic and idempotent, so it also works where the two keys live on
        different Redis Cluster nodes: first the anonymous profile becomes a tombstone that
        remembers its data and where it went; then the known profile absorbs that data
        unless it already lists the anonymous id among its aliases. Running it again (after a
        crash between the steps, or a double submit) adds nothing twice.
        """
        now = time.time() if now is None else now
        anonymous_id = anonymous_key.removeprefix("v:")
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
            merged = [False]
            profile = Profile(key=known_key, user_id=user_id) if profile is None else profile
            profile.user_id = user_id
            source = snapshot[0]
            if (
                source is not None
                and source.merged_into in (None, known_key)
                and anonymous_id not in profile.aliases
                and len(profile.aliases) < max_aliases
            ):
                merge_profiles(profile, source)
                profile.aliases.append(anonymous_id)
                if device_id is not None and anonymous_id in profile.devices:
                    profile.devices[device_id] = profile.devices.pop(anonymous_id)
                merged[0] = True
            for name, value in (traits or {}).items():
                profile.traits[name] = value
                profile.trait_times[name] = now
            absorbed[0] = merged[0]
            return profile

        def compact(profile: Profile | None) -> Profile | None:
            # The data now lives in the known profile: keep only the forwarding address.
            if profile is None or profile.merged_into != known_key:
                return profile
            return Profile(
                key=anonymous_key,
                merged_into=known_key,
                merged_at=profile.merged_at,
                merged_device=profile.merged_device,
                batches=profile.batches,
            )

        absorbed = [False]
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
            keys += [f"v:{alias}" for alias in profile.aliases]
        removed = []
        for k in keys:
            if await self.delete(k):
                removed.append(k)
        return removed


def _renamed(change: Change, key: str, device_id: str | None) -> Change:
    """A page view forwarded from a merged anonymous id carries the device's new id."""
    if isinstance(change, Hit) and device_id and change.device_id == key.removeprefix("v:"):
        return replace(change, device_id=device_id)
    return change


def fold_changes(
    profile: Profile, changes: Sequence[Change], *, session_timeout: float = SESSION_TIMEOUT
) -> None:
    """Apply page views and events to ``profile`` in place, in the order given."""
    for change in changes:
        if isinstance(change, Hit):
            apply_hit(profile, change, session_timeout=session_timeout)
        else:
            apply_event(profile, change)


def split_forwarded(
    profile: Profile, ordered: Sequence[Change]
) -> tuple[Sequence[Change], list[Change]]:
    """For a tombstone: (changes it keeps, changes forwarded to the known profile)."""
    if profile.merged_into is None:
        return ordered, []
    grace_end = (profile.merged_at or 0.0) + FORWARD_GRACE
    forwarded = [_renamed(c, profile.key, profile.merged_device) for c in ordered
                 if c.ts <= grace_end]  # fmt: skip
    return [c for c in ordered if c.ts > grace_end], forwarded


#: The fields of a page view in the change log's compact form ``["h1", ts, path, ...]``, in
#: this order. A new field of :class:`Hit` needs a new tag ("h2"); "h1" rows keep decoding.
HIT_V1_FIELDS = (
    "ts",
    "path",
    "channel",
    "source",
    "medium",
    "campaign",
    "term",
    "category",
    "device_type",
    "country",
    "device_id",
    "os",
    "browser",
)


def change_value(change: Change) -> tuple[Any, ...] | dict[str, Any]:
    """A change as JSON-able data, in the form change logs keep (see :func:`encode_change`).

    >>> change_from_value(change_value(Hit(ts=1.5, path="/"))) == Hit(ts=1.5, path="/")
    True
    """
    if isinstance(change, Hit):
        return (
            "h1",
            change.ts,
            change.path,
            change.channel,
            change.source,
            change.medium,
            change.campaign,
            change.term,
            change.category,
            change.device_type,
            change.country,
            change.device_id,
            change.os,
            change.browser,
        )
    return {"e": change.to_dict()}


def encode_change(change: Change) -> bytes:
    """A change as stores keep it in a change log.

    Page views, written for every request, take a compact positional form (half the
    bytes of a JSON object, a third of the encoding time); events keep an object.

    >>> encode_change(Hit(ts=1.5, path="/"))
    b'["h1",1.5,"/","direct",null,null,null,null,null,null,null,null,null,null]'
    >>> decode_change(encode_change(Hit(ts=1.5, path="/"))) == Hit(ts=1.5, path="/")
    True
    """
    return orjson.dumps(change_value(change))


def decode_change(data: bytes | str) -> Change:
    """What :func:`encode_change` wrote, in this version or an earlier one (``{"h": {...}}``)."""
    return change_from_value(orjson.loads(data))


def change_from_value(d: Any) -> Change:
    """A change from the parsed JSON of :func:`encode_change` (for logs that hold several)."""
    if isinstance(d, list | tuple):
        if d[0] == "h1" and len(d) == len(HIT_V1_FIELDS) + 1:
            return Hit(*d[1:])
        raise ValueError(f"unknown change log record {d[0]!r}")
    if "h" in d:
        return Hit.from_dict(d["h"])
    e = d["e"]
    return Event(e["kind"], e["name"], e["ts"], e.get("properties") or {})
