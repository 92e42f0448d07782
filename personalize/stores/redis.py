"""Profiles in Redis, for several workers and hosts (``pip install 'personalize[redis]'``).

Layout: one hash per profile, ``<prefix>{<key>}`` with fields ``d`` (the profile as JSON) and
``n`` (a version). The braces are a hash tag, so everything about one profile lives on one
Redis Cluster slot and every command touches one slot only.

Writes are optimistic: read the versions of a batch in one pipelined round trip, apply the
mutations in Python, then write every key in a second round trip with a small Lua
compare-and-set that only succeeds if the version is unchanged; the keys that lost a race
are read and retried. A key this process wrote last needs no read: its write is tried
against the version and data it wrote (if anyone wrote since, the compare-and-set fails
and the key is read and retried). Anonymous profiles expire after ``anonymous_ttl``
seconds without a write; known profiles (``u:`` keys) never expire.

Reads avoid the network: the :class:`~personalize.service.ProfileService` keeps a near-cache,
and every write publishes the changed keys on ``<prefix>invalidate``; each process listens
and drops those keys from its cache. While that listener is not connected, cached entries
are trusted for one second only.

A Redis that is down or slow never blocks a page: every call has a timeout, and after a
failure the store answers :class:`~personalize.exceptions.StoreUnavailableError` at once for
``retry_after`` seconds, then tries again (redis-py reconnects by itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from personalize.exceptions import StoreError, StoreUnavailableError
from personalize.profile import Profile
from personalize.stores.base import Mutation, ProfileStore

try:
    import redis.asyncio as aioredis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("RedisStore needs the redis extra: pip install 'personalize[redis]'") from exc

logger = logging.getLogger("personalize.redis")

# KEYS[1] profile hash; ARGV: expected version ("" = absent), new JSON ("" = delete), ttl (s).
_CAS = """
local v = redis.call('HGET', KEYS[1], 'n')
if (v or '') ~= ARGV[1] then return -1 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  return 0
end
local n = tonumber(v or '0') + 1
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'n', n)
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
return n
"""

_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)


class RedisStore(ProfileStore):
    """A :class:`ProfileStore` on ``redis.asyncio``.

    >>> store = RedisStore("redis://127.0.0.1:6379/0", prefix="doc:")
    >>> store.redis_key("v:abc")
    'doc:{v:abc}'
    """

    cache_ttl: float | None = 1.0

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: aioredis.Redis | None = None,
        prefix: str = "pz:",
        anonymous_ttl: int = 90 * 24 * 3600,  # seconds; 0 keeps anonymous profiles forever
        timeout: float = 0.5,  # seconds, for every call
        retry_after: float = 1.0,  # seconds to fail fast after Redis was unreachable
        max_attempts: int = 60,  # optimistic retries of one key under contention
        max_connections: int = 64,
        invalidation: bool = True,
        written_cache_size: int = 10_000,  # profiles whose last write is remembered
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.anonymous_ttl = anonymous_ttl
        self.timeout = timeout
        self.retry_after = retry_after
        self.max_attempts = max_attempts
        if client is None:
            # A blocking pool: under a burst, callers queue for a connection (up to the
            # timeout) instead of failing with "Too many connections".
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=timeout * 4,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                health_check_interval=30,
            )
            client = aioredis.Redis(connection_pool=pool)
        self._client = client
        self._cas = self._client.register_script(_CAS)
        self._down_until = 0.0
        self._instance = secrets.token_hex(6)
        self._channel = f"{prefix}invalidate"
        self._invalidation = invalidation
        self._listener: asyncio.Task[None] | None = None
        self._listening = False
        self._on_invalidate: list[Callable[[list[str] | None], None]] = []
        self._write_lock = asyncio.Lock()
        # key -> (version, JSON) as this process last wrote it: the next write of the key
        # tries that version without reading it back (bounded, least recently written out).
        self._written: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._written_size = written_cache_size
        self._write_lock_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r})"

    @property
    def client(self) -> aioredis.Redis:
        return self._client

    def redis_key(self, key: str) -> str:
        """The Redis key of a profile key (hash-tagged for Redis Cluster)."""
        return f"{self.prefix}{{{key}}}"

    def on_invalidate(self, callback: Callable[[list[str] | None], None]) -> None:
        """Call ``callback(keys)`` when another process changed ``keys`` (None: everything)."""
        self._on_invalidate.append(callback)

    @property
    def trusted_cache_ttl(self) -> float | None:
        """How long a cached profile may be used: long while invalidations arrive."""
        return 300.0 if self._listening else 1.0

    # -- plumbing -------------------------------------------------------------------------

    def _check_circuit(self) -> None:
        if time.monotonic() < self._down_until:
            raise StoreUnavailableError(f"{self!r} is unreachable; retrying shortly")

    async def _call(self, coro: Any) -> Any:
        try:
            self._check_circuit()
        except StoreUnavailableError:
            coro.close()  # never started: close it so it is not reported as never awaited
            raise
        self._ensure_listener()
        try:
            return await asyncio.wait_for(coro, self.timeout * 4)
        except _CONNECTION_ERRORS as exc:
            self._down_until = time.monotonic() + self.retry_after
            raise StoreUnavailableError(f"{self!r}: {type(exc).__name__}: {exc}") from exc
        except RedisError as exc:
            raise StoreError(f"{self!r}: {exc}") from exc

    def _ttl_for(self, key: str) -> int:
        return self.anonymous_ttl if key.startswith("v:") else 0

    # -- the interface --------------------------------------------------------------------

    async def get(self, key: str) -> Profile | None:
        raw = await self._call(self._client.hget(self.redis_key(key), "d"))
        return None if raw is None else Profile.from_json(raw)

    async def update_many(self, mutations: Mapping[str, Mutation]) -> dict[str, Profile | None]:
        # Writers in this process take turns (no point racing each other; the write-behind
        # buffer sends one batch at a time anyway); the compare-and-set settles races with
        # other processes. One lock, not one per key: a batch holds up to thousands of keys,
        # and taking a lock per key cost more than the batch's own Python work.
        loop = asyncio.get_running_loop()
        if self._write_lock_loop is not loop:  # an asyncio.Lock belongs to one event loop
            self._write_lock, self._write_lock_loop = asyncio.Lock(), loop
        async with self._write_lock:
            return await self._update_many(mutations)

    async def _update_many(self, mutations: Mapping[str, Mutation]) -> dict[str, Profile | None]:
        result: dict[str, Profile | None] = {}
        todo = dict(mutations)
        for attempt in range(self.max_attempts):
            if not todo:
                break
            if attempt:
                # Lost races: back off with jitter so contenders spread out.
                await asyncio.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.05)))
            # What this process wrote last is tried as is, without reading it back; the
            # compare-and-set fails if anyone wrote since, and that key is read and retried.
            current = self._written
            stored = {} if attempt else {k: current[k] for k in todo if k in current}
            unknown = [k for k in todo if k not in stored]
            if unknown:
                async with self._client.pipeline(transaction=False) as pipe:
                    for key in unknown:
                        pipe.hmget(self.redis_key(key), "d", "n")
                    rows = await self._call(pipe.execute())
                for key, (raw, version) in zip(unknown, rows, strict=True):
                    stored[key] = ("" if version is None else version.decode(), raw)
            planned: list[tuple[str, Profile | None, bytes]] = []
            async with self._client.pipeline(transaction=False) as pipe:
                # What awaiting the Script on the pipeline does, once per batch instead of
                # once per key: the pipeline loads the script first if Redis lost it.
                pipe.scripts.add(self._cas)  # type: ignore[arg-type]  # (redis-py does the same)
                for key, mutate in todo.items():
                    expected, raw = stored[key]
                    new = mutate(None if raw is None else Profile.from_json(raw))
                    data = b"" if new is None else new.to_json()
                    pipe.evalsha(
                        self._cas.sha, 1, self.redis_key(key), expected, data, self._ttl_for(key)
                    )
                    planned.append((key, new, data))
                outcomes = await self._call(pipe.execute())
            changed = []
            for (key, new, data), outcome in zip(planned, outcomes, strict=True):
                if outcome == -1:
                    current.pop(key, None)
                    continue  # lost a race with another writer: read again and retry
                if data:
                    current[key] = (str(outcome), data)
                    current.move_to_end(key)
                    if len(current) > self._written_size:
                        current.popitem(last=False)
                else:
                    current.pop(key, None)
                result[key] = new
                changed.append(key)
                del todo[key]
            if changed:
                await self._publish(changed)
        if todo:
            raise StoreError(f"{self!r}: gave up on {len(todo)} keys after constant contention")
        return result

    async def delete(self, key: str) -> bool:
        self._written.pop(key, None)
        removed = await self._call(self._client.delete(self.redis_key(key)))
        await self._publish([key])
        return bool(removed)

    async def keys(self) -> list[str]:
        """Every profile key under this prefix (SCAN; for maintenance and tests)."""
        found = []
        async for raw in self._client.scan_iter(match=f"{self.prefix}{{*}}", count=500):
            text = raw.decode()
            found.append(text[len(self.prefix) + 1 : -1])
        return found

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        await self._client.aclose(close_connection_pool=True)

    # -- near-cache invalidation ----------------------------------------------------------

    async def _publish(self, keys: list[str]) -> None:
        if not self._invalidation:
            return
        message = self._instance + "\n" + "\n".join(keys)
        try:
            await asyncio.wait_for(self._client.publish(self._channel, message), self.timeout)
        except Exception as exc:  # the write itself succeeded; caches expire on their own
            logger.warning("personalize: could not publish invalidation: %s", exc)

    def _ensure_listener(self) -> None:
        if not self._invalidation or not self._on_invalidate:
            return
        if self._listener is not None and not self._listener.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._listener = loop.create_task(self._listen(), name="personalize-redis-invalidation")

    def _notify(self, keys: list[str] | None) -> None:
        if keys is None:
            self._written.clear()
        else:
            for key in keys:  # written elsewhere: our last version is stale
                self._written.pop(key, None)
        for callback in self._on_invalidate:
            callback(keys)

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self._listening = True
                self._notify(None)  # invalidations may have been missed while disconnected
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    sender, _, body = message["data"].decode().partition("\n")
                    if sender != self._instance:
                        self._notify(body.split("\n"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._listening:
                    logger.warning("personalize: invalidation listener lost Redis: %s", exc)
            finally:
                self._listening = False
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call]
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
