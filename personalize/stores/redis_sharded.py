"""Near-cache invalidations on a Redis Cluster: sharded pub/sub (``SPUBLISH``/``SSUBSCRIBE``,
Redis 7).

Plain ``PUBLISH`` on a cluster is broadcast over the cluster bus to every node, whatever the
channel; a sharded channel lives on the one node that owns its hash slot. The invalidations
are split over :data:`RANGES` channels, one per range of ``16384 / RANGES`` slots: the
invalidation of a key goes on the channel of its slot's range, and each channel's name is
hash-tagged so that the channel itself hashes into that range. On the usual layout (each
primary owns a few contiguous ranges of slots) a write's invalidation is therefore published
on the node that took the write, and each node carries the invalidations of its own keys
only. Every process subscribes to all the channels (one connection per node that serves
some), since its near-cache holds keys of every slot.

The messages are the notices of :class:`~personalize.stores.redis_invalidation.InvalidationBus`,
one per channel for the keys it carries.
When a channel moves to another node (a failover, a resharding: checked every two seconds
with ``CLUSTER SLOTS``, since a node that died or froze says nothing itself), or a node drops
the subscription (``sunsubscribe``), the listener reads the slot map again, subscribes again
and reports "everything may have changed", as after any reconnection.

>>> names = channel_names("pz:invalidate")
>>> len(names), names[0]
(16, 'pz:invalidate:{0.13}')
>>> from redis.crc import key_slot
>>> [key_slot(name.encode()) // SPAN for name in names] == list(range(RANGES))
True
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError

from personalize.stores.redis_calls import reread_slots
from personalize.stores.redis_invalidation import InvalidationBus

__all__ = ["RANGES", "SPAN", "ShardedInvalidationBus", "channel_names"]

SLOTS = 16384
RANGES = 16  # channels; each carries the invalidations of SPAN slots
SPAN = SLOTS // RANGES
_CHECK_EVERY = 2.0  # seconds between checks that every channel is still where we listen


def channel_names(base: str) -> list[str]:
    """The channel of each slot range: ``<base>:{<range>.<n>}``, the first ``n`` whose slot
    falls in the range (the same names in every process)."""
    names = []
    for index in range(RANGES):
        for n in itertools.count():
            name = f"{base}:{{{index}.{n}}}"
            if key_slot(name.encode()) // SPAN == index:
                names.append(name)
                break
    return names


class ShardedInvalidationBus(InvalidationBus):
    """An :class:`InvalidationBus` on a ``redis.asyncio.cluster.RedisCluster``: ``SPUBLISH``
    on the channel of each key's slot range, ``SSUBSCRIBE`` to every channel.
    ``redis_key(key)`` is the Redis key whose slot a profile key lives on."""

    def __init__(
        self,
        client: Any,
        channel: str,
        *,
        redis_key: Callable[[str], str],
        timeout: float,
        enabled: bool,
    ) -> None:
        super().__init__(client, channel, timeout=timeout, enabled=enabled)
        self.channels = channel_names(channel)
        self._redis_key = redis_key
        self._subscribed = False
        self._reported: dict[str, tuple[str, int] | None] | None = None  # channel -> primary
        self._checked = 0.0

    def channel_of(self, key: str) -> str:
        """The channel that carries ``key``'s invalidations."""
        return self.channels[key_slot(self._redis_key(key).encode()) // SPAN]

    async def _send(self, messages: dict[str, bytes]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for channel, message in messages.items():
                pipe.execute_command("SPUBLISH", channel, message)
            await pipe.execute()

    def _pubsub(self) -> Any:
        return self._client.pubsub()

    async def _subscribe(self, pubsub: Any) -> None:
        if self._subscribed:  # subscribing again: read the slot map first (a failover?)
            await reread_slots(self._client)
        await pubsub.ssubscribe(*self.channels)
        self._subscribed = True
        self._reported = await self._primaries()
        self._checked = time.monotonic()

    async def _next_message(self, pubsub: Any) -> dict[str, Any] | None:
        # Short polls: the cluster's pub/sub visits one node's connection after the other.
        message: dict[str, Any] | None = await pubsub.get_sharded_message(timeout=0.05)
        if time.monotonic() - self._checked > _CHECK_EVERY:
            self._checked = time.monotonic()
            primaries = await self._primaries()
            if self._reported is None:
                self._reported = primaries
            elif primaries is not None and primaries != self._reported:
                raise RedisConnectionError("invalidation channels moved to other nodes")
        if message is None:
            return None
        kind = message["type"]
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "sunsubscribe":  # the node gave the channel up (its slot moved)
            raise RedisConnectionError(f"unsubscribed from {message['channel']!r} by Redis")
        return message if kind == "smessage" else None

    async def _primaries(self) -> dict[str, tuple[str, int] | None] | None:
        """The primary of each channel's slot as a node of the cluster reports it now
        (``CLUSTER SLOTS``), or None without an answer. Compared between checks: a node that
        died or froze says nothing itself, and the slot map of a process that only reads is
        not refreshed by errors."""
        try:
            async with asyncio.timeout(self.timeout):  # not wait_for: see CallGuard.call
                slots = await self._client.cluster_slots(target_nodes=RedisCluster.RANDOM)
        except Exception:  # no answer now: ask again at the next check
            return None
        found: dict[str, tuple[str, int] | None] = {}
        for channel in self.channels:
            slot = key_slot(channel.encode())
            owners = [o for (a, b), o in slots.items() if a <= slot <= b]
            found[channel] = tuple(owners[0]["primary"][:2]) if owners else None
        return found
