"""Profiles in Redis, for several workers and hosts (``pip install 'personalize[redis]'``).

Layout: per profile, a hash ``<prefix>{<key>}`` with fields ``d`` (the profile as JSON),
``n`` (a version), ``m`` (set on a tombstone, a merged anonymous id; ``xd``, ``xl`` its
data until the known profile absorbed it), and a list
``<prefix>{<key>}:log`` of changes not folded into ``d`` yet. The braces are a hash tag, so
everything about one profile lives on one Redis Cluster slot and every command touches one
slot only.

Page views and events are appended: one small Lua script per profile (refuse a tombstone,
``RPUSH`` the batch's changes with its id, refresh the TTL), all of a batch pipelined in one
round trip; no read, and no profile decoded or encoded. Reads fold the log in; a batch sent
twice (after a timeout) is folded once, by its id. When a log grows past ``log_limit``
entries, it is folded into ``d``.

A merge is two round trips, a Lua script per step (:mod:`~personalize.stores.redis_merge`).
Every other write (traits, erasure, folding a log) is optimistic: read the profile
and its log, apply the mutation in Python, then write with a Lua compare-and-set that only
succeeds if the version is unchanged, and trims exactly the log entries it folded (entries
appended meanwhile stay). A tombstone is only written over the whole log, and appends to a
tombstone are refused, so changes that reach a merged id always go through the
compare-and-set, which forwards them to the known profile. Keys that lost a race are read
and retried. Anonymous profiles (hash and log) expire after ``anonymous_ttl`` seconds
without a write; known profiles (``u:`` keys) never expire.

Reads avoid the network: the ``ProfileService`` keeps a near-cache; every write publishes a
:class:`~personalize.stores.notices.Notice` on ``<prefix>invalidate`` (appended changes,
numbered per profile in field ``s``, for other processes to fold in; else the keys, to drop).
While that listener is not connected, cached entries are trusted for one second only.

On a Redis Cluster (``redis+cluster://host:port[,host:port...]``, or a ``RedisCluster``
client) every command and script touches one profile's slot; a batch is pipelined to each
node in parallel, and :meth:`RedisStore.keys` scans every primary. Invalidations use sharded
pub/sub, one channel per range of slots (:mod:`~personalize.stores.redis_sharded`). Each write
batch waits (``WAIT``) until a replica of every node it wrote to has it, or fails, and the
write-behind buffer sends it again, applied once by its id (``wait_replicas``,
:mod:`~personalize.stores.redis_calls`): no page view the buffer counted as written is lost
when a primary dies and its replica takes over; buffered ones are written once the slot has
an owner again.

A stored profile that cannot be read, or changes that cannot be folded, are set aside in
the profile's hash (fields ``q<version>``, so they expire and are erased with it; logged; see
:meth:`RedisStore.quarantined`) and the rest is written: one bad profile never stops a write.

A Redis that is down or slow never blocks a page: every call has a timeout, and after a
failure the store answers :class:`~personalize.exceptions.StoreUnavailableError` at once for
``retry_after`` seconds, then tries again (redis-py reconnects by itself).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from personalize.exceptions import StoreError
from personalize.profiles.changes import Change, encode_change
from personalize.profiles.identity import is_anonymous_key, user_id_of
from personalize.profiles.profile import Profile
from personalize.stores.base import Mutation, ProfileStore
from personalize.stores.state import StateStore

try:
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import RedisCluster
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("RedisStore needs the redis extra: pip install 'personalize[redis]'") from exc

from personalize.stores import redis_append as appends
from personalize.stores import redis_merge
from personalize.stores.notices import Notice
from personalize.stores.redis_calls import Call, pipelined
from personalize.stores.redis_invalidation import InvalidationBus
from personalize.stores.redis_log import fold_log, log_set_aside, scan_keys, set_aside
from personalize.stores.redis_merge import RedisMerging
from personalize.stores.redis_sharded import ShardedInvalidationBus
from personalize.stores.redis_support import CAS, READ, CallGuard, store_clients

logger = logging.getLogger("personalize.redis")


class RedisStore(RedisMerging, ProfileStore):
    """A :class:`ProfileStore` on ``redis.asyncio``: a ``redis://`` URL or ``client`` for one
    Redis, a ``redis+cluster://host:port[,host:port...]`` URL or a ``RedisCluster`` client for a
    Redis Cluster.

    ``wait_replicas``: how many replicas must confirm a write (``WAIT``) before it counts as
    written; the default, None, waits for one on a cluster (where the slot has a replica) and
    for none on a single Redis.

    >>> store = RedisStore("redis://127.0.0.1:6379/0", prefix="doc:")
    >>> store.redis_key("v:abc")
    'doc:{v:abc}'
    """

    cache_ttl: float | None = 1.0

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: aioredis.Redis | RedisCluster | None = None,
        prefix: str = "pz:",
        anonymous_ttl: int = 90 * 24 * 3600,  # seconds; 0 keeps anonymous profiles forever
        timeout: float = 0.5,  # seconds, for every call
        retry_after: float = 1.0,  # seconds to fail fast after Redis was unreachable
        max_attempts: int = 60,  # optimistic retries of one key under contention
        max_connections: int = 64,
        invalidation: bool = True,
        log_limit: int = 64,  # log entries per profile before they are folded into it
        wait_replicas: int | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.anonymous_ttl = anonymous_ttl
        self.timeout = timeout
        self.retry_after = retry_after
        self.max_attempts = max_attempts
        if client is None:
            client, writes = store_clients(url, max_connections, timeout)
        else:
            writes = client
        self._client: Any = client
        self._writes: Any = writes
        self.cluster = isinstance(client, RedisCluster)
        self.wait_replicas = wait_replicas
        self._scripts = {_CAS_SHA: CAS, _READ_SHA: READ, **appends.APPEND_SCRIPTS}
        self._scripts.update(redis_merge.scripts())
        self._copies: list[str] = []  # tombstones whose copy of merged data can go
        self._guard = CallGuard(self, timeout=timeout, retry_after=retry_after, client=client)
        channel = f"{prefix}invalidate"
        if self.cluster:  # sharded pub/sub: PUBLISH would reach every node of the cluster
            self._bus: InvalidationBus = ShardedInvalidationBus(
                client, channel, redis_key=self.redis_key, timeout=timeout, enabled=invalidation
            )
        else:
            self._bus = InvalidationBus(client, channel, timeout=timeout, enabled=invalidation)
        self._write_lock = asyncio.Lock()
        self.log_limit = log_limit
        self._write_lock_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r})"

    @property
    def client(self) -> Any:
        """The ``redis.asyncio`` client (a ``RedisCluster`` on a cluster)."""
        return self._client

    async def _read(self, calls: Sequence[Call]) -> list[Any]:
        """Send ``calls`` in one round trip (per node), without waiting for replicas."""
        rows: list[Any] = await self._call(
            pipelined(self._writes, calls, scripts=self._scripts, wait=0)
        )
        return rows

    async def _write(self, calls: Sequence[Call]) -> list[Any]:
        """Send ``calls`` in one round trip (per node) and wait for the replicas (see
        :mod:`~personalize.stores.redis_calls`), bounded like every call."""
        wait = self.wait_replicas if self.wait_replicas is not None or self.cluster else 0
        wait_ms = max(1, round(self.timeout * 1000))
        copies, self._copies = self._copies, []  # along with the next write (redis_merge)
        extra = [(key, ("HDEL", key, "xd", "xl")) for key in copies]
        try:
            replies: list[Any] = await self._call(
                pipelined(self._writes, [*calls, *extra], scripts=self._scripts, wait=wait,
                          wait_ms=wait_ms)
            )  # fmt: skip
        except BaseException:
            self._copies = [*copies, *self._copies][-10_000:]
            raise
        return replies[: len(calls)]

    def redis_key(self, key: str) -> str:
        """The Redis key of a profile key (hash-tagged for Redis Cluster)."""
        return f"{self.prefix}{{{key}}}"

    def on_invalidate(self, callback: Callable[[list[str] | None], None]) -> None:
        """Call ``callback(keys)`` when another process changed ``keys`` (None: everything)."""
        self._bus.subscribe(lambda notice: callback(None if notice is None else notice.keys()))

    def on_notice(self, callback: Callable[[Notice | None], None]) -> None:
        """Call ``callback(notice)`` when another process changed profiles (None: anything)."""
        self._bus.subscribe(callback)

    @property
    def trusted_cache_ttl(self) -> float | None:
        """How long a cached profile may be used: long while invalidations arrive."""
        return 300.0 if self._bus.listening else 1.0

    @property
    def circuit_open(self) -> bool:
        """True while calls fail fast because Redis was unreachable moments ago."""
        return self._guard.circuit_open

    def _call(self, coro: Any) -> Any:
        """Await one Redis call or pipeline (see :class:`CallGuard`); (re)start listening for
        invalidations first."""
        cluster = self._client if self.cluster else None
        return self._guard.call(coro, on_start=self._bus.ensure_listener, cluster=cluster)

    def _ttl_for(self, key: str) -> int:
        return self.anonymous_ttl if is_anonymous_key(key) else 0

    # -- the interface --------------------------------------------------------------------

    def log_key(self, key: str) -> str:
        """The Redis key of a profile's change log (same hash slot as the profile)."""
        return f"{self.prefix}{{{key}}}:log"

    async def get(self, key: str) -> Profile | None:
        return (await self.get_at(key))[0]

    async def get_at(self, key: str) -> tuple[Profile | None, int]:
        """The stored profile and the number of the last write it holds (0: none; see
        :class:`~personalize.stores.notices.Appended`)."""
        # Atomic: a compaction between the two reads would hide folded entries.
        hash_key = self.redis_key(key)
        if self.cluster:  # a script routed by the store's own slot map (see redis_calls)
            read = ("EVALSHA", _READ_SHA, 2, hash_key, self.log_key(key))
            ((raw, seq, entries),) = await self._read([(hash_key, read)])
        else:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hmget(hash_key, "d", "s")
                pipe.lrange(self.log_key(key), 0, -1)
                (raw, seq), entries = await self._call(pipe.execute())
        # What cannot be read is left out here and set aside by the next write.
        return self._fold_log(key, raw, entries, []), int(seq or 0)

    def _fold_log(
        self, key: str, raw: bytes | None, entries: list[bytes], quarantine: list[bytes]
    ) -> Profile | None:
        return fold_log(key, raw, entries, quarantine, session_timeout=self.session_timeout)

    async def quarantined(self, key: str) -> list[dict[str, Any]]:
        """What was set aside for ``key`` because it could not be read or folded (see
        :func:`~personalize.profiles.changes.quarantine_record`), oldest first."""
        return set_aside(await self._call(self._client.hgetall(self.redis_key(key))))

    async def update_many(self, mutations: Mapping[str, Mutation]) -> dict[str, Profile | None]:
        return await self._update_in_turn(mutations, only_folds=False)

    async def _update_in_turn(
        self, mutations: Mapping[str, Mutation], *, only_folds: bool
    ) -> dict[str, Profile | None]:
        # Writers in this process take turns (no point racing each other; the write-behind
        # buffer sends one batch at a time anyway); the compare-and-set settles races with
        # other processes. One lock, not one per key: a batch holds up to thousands of keys,
        # and taking a lock per key cost more than the batch's own Python work.
        loop = asyncio.get_running_loop()
        if self._write_lock_loop is not loop:  # an asyncio.Lock belongs to one event loop
            self._write_lock, self._write_lock_loop = asyncio.Lock(), loop
        async with self._write_lock:
            return await self._update_many(mutations, only_folds=only_folds)

    async def _update_many(
        self, mutations: Mapping[str, Mutation], *, only_folds: bool
    ) -> dict[str, Profile | None]:
        result: dict[str, Profile | None] = {}
        todo = dict(mutations)
        for attempt in range(self.max_attempts):
            if not todo:
                break
            if attempt:
                # Lost races: back off with jitter so contenders spread out.
                await asyncio.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.05)))
            keys = list(todo)
            # Not a transaction (the keys live on many slots): a compaction between a key's
            # two reads changes its version, so the compare-and-set below fails and retries.
            reads: list[Call] = []
            for key in keys:
                hash_key = self.redis_key(key)
                reads += [(hash_key, ("HMGET", hash_key, "d", "n")),
                          (hash_key, ("LRANGE", self.log_key(key), 0, -1))]  # fmt: skip
            rows = await self._read(reads)
            planned: list[tuple[str, Profile | None, list[bytes]]] = []
            calls: list[Call] = []
            for index, key in enumerate(keys):
                (raw, version), entries = rows[2 * index], rows[2 * index + 1]
                quarantine: list[bytes] = []
                new = todo[key](self._fold_log(key, raw, entries, quarantine))
                data = b"" if new is None else new.to_json()
                tombstone = "1" if new is not None and new.merged_into is not None else ""
                hash_key = self.redis_key(key)
                bad = b"[" + b",".join(quarantine) + b"]" if quarantine else b""
                calls.append((hash_key, ("EVALSHA", _CAS_SHA, 2, hash_key, self.log_key(key),
                    "" if version is None else version, data, self._ttl_for(key), len(entries),
                    tombstone, bad)))  # fmt: skip
                planned.append((key, new, quarantine))
            outcomes = await self._write(calls)
            changed = []
            for (key, new, quarantine), outcome in zip(planned, outcomes, strict=True):
                if outcome == -1:
                    continue  # lost a race with another writer: read again and retry
                log_set_aside(key, quarantine)
                result[key] = new
                if quarantine or not only_folds:
                    changed.append(key)
                del todo[key]
            if changed:
                await self._bus.publish(changed)
        if todo:
            raise StoreError(f"{self!r}: gave up on {len(todo)} keys after constant contention")
        return result

    async def apply_changes(
        self, changes: Mapping[str, Sequence[Change]], *, batch_id: str | None = None
    ) -> dict[str, Profile]:
        """Append each profile's changes to its log in one pipelined round trip: no read,
        no profile decoded or encoded on the page-view path. A log longer than
        ``log_limit`` entries is then folded into its profile (compare-and-set). Changes for
        a tombstone take the compare-and-set path at once, which forwards them.

        Returns the profiles it folded (the others are known only as their changes).
        """
        return (await self.apply_changes_at(changes, batch_id=batch_id))[0]

    async def apply_changes_at(
        self, changes: Mapping[str, Sequence[Change]], *, batch_id: str | None = None
    ) -> tuple[dict[str, Profile], dict[str, tuple[int, int]]]:
        """:meth:`apply_changes`, and (previous, this) write numbers of each profile whose
        changes were appended (see :class:`~personalize.stores.notices.Appended`)."""
        items = {key: batch for key, batch in changes.items() if batch}
        if not items:
            return {}, {}
        head, keys, p = b"[" + orjson.dumps(batch_id), list(items), self.prefix
        entries = [b",".join([head, *map(encode_change, items[key])]) + b"]" for key in keys]
        rows = [  # (keys as redis_key and log_key; the last: where write numbers start)
            (f"{p}{{{k}}}", f"{p}{{{k}}}:log", e, self._ttl_for(k),
             "1" if user_id_of(k) is not None else "", random.getrandbits(48) or 1)
            for k, e in zip(keys, entries, strict=True)
        ]  # fmt: skip
        grouped = not self.cluster  # (one call for many profiles, on one Redis)
        calls = appends.append_calls(rows, grouped=grouped)
        replies = appends.append_replies(await self._write(calls), grouped=grouped)
        refused: dict[str, Sequence[Change]] = {}
        long, appended = [], []
        for key, entry, reply in zip(keys, entries, replies, strict=True):
            if reply == -1:
                refused[key] = items[key]
            else:
                appended.append((key, reply[1], reply[2], entry))
                if reply[0] > self.log_limit:
                    long.append(key)
        if appended:
            await self._bus.publish([], appended)
        written = await super().apply_changes(refused, batch_id=batch_id) if refused else {}
        if long:
            try:
                folded = await self._update_in_turn(
                    dict.fromkeys(long, _unchanged), only_folds=True
                )
            except StoreError as exc:  # the changes are stored; folding waits for the next
                logger.warning("personalize: could not fold %d change logs: %s", len(long), exc)
            else:
                written.update((k, p) for k, p in folded.items() if p is not None)
        return written, {key: (prev, seq) for key, prev, seq, _ in appended}

    async def delete(self, key: str) -> bool:
        hash_key = self.redis_key(key)  # an erasure must survive a failover too
        (removed,) = await self._write([(hash_key, ("DEL", hash_key, self.log_key(key)))])
        await self._bus.publish([key])
        return bool(removed)

    async def keys(self) -> list[str]:
        """Every profile key under this prefix (SCAN, every primary of a cluster; for
        maintenance and tests)."""
        if not self.cluster:
            return await scan_keys(self._client, self.prefix, call=self._call)
        scan = scan_keys(self._client, self.prefix)  # scan_iter: every primary, in turn
        return list(await self._guard.call(scan, extra=5.0, cluster=self._client))

    def state_store(self) -> StateStore:
        """Decision state on the same Redis, through this store's client, under its prefix."""
        from personalize.stores.state_redis import RedisStateStore

        return RedisStateStore(
            self.url,
            client=self._client,
            prefix=self.prefix,
            timeout=self.timeout,
            retry_after=self.retry_after,
        )

    async def close(self) -> None:
        await self._bus.close()
        for client in dict.fromkeys([self._client, self._writes]):  # (one on a cluster)
            await (client.aclose() if self.cluster else client.aclose(close_connection_pool=True))


_CAS_SHA, _READ_SHA = (hashlib.sha1(s.encode()).hexdigest() for s in (CAS, READ))


def _unchanged(profile: Profile | None) -> Profile | None:
    return profile
