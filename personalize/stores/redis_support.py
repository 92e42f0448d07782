"""What the Redis store runs on: its Lua scripts (appending: :mod:`.redis_append`), and
connection pools that pack with hiredis.

>>> "HGET" in CAS and "LRANGE" in READ
True
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Callable
from typing import Any

from personalize.exceptions import StoreError, StoreUnavailableError
from personalize.stores.redis_calls import rerouted

try:
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import (
        ClusterDownError,
        RedisClusterException,
        RedisError,
        SlotNotCoveredError,
    )
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("RedisStore needs the redis extra: pip install 'personalize[redis]'") from exc
hiredis: Any
try:
    import hiredis
except ImportError:  # pragma: no cover - hiredis comes with the redis extra
    hiredis = None

__all__ = [
    "CAS",
    "CLUSTER_SCHEME",
    "CONNECTION_ERRORS",
    "READ",
    "CallGuard",
    "client_turn",
    "cluster_call_limit",
    "cluster_nodes",
    "hiredis_packing",
    "make_cluster_client",
    "make_pool",
    "store_clients",
]


# KEYS[1] profile hash, KEYS[2] its change log. ARGV: expected version ("" = absent), new
# JSON ("" = delete both), ttl (s), how many log entries the new JSON folded in (a prefix of
# the log: entries appended since stay), "1" when the new profile is a tombstone, and what
# could not be read or folded ("" = nothing; kept in the hash as field q<version>, so it
# expires and is erased with the profile). A tombstone is only written over the whole log,
# so no change ever waits on one unforwarded.
CAS = """
local v = redis.call('HGET', KEYS[1], 'n')
if (v or '') ~= ARGV[1] then return -1 end
local folded = tonumber(ARGV[4])
if ARGV[5] == '1' and redis.call('LLEN', KEYS[2]) ~= folded then return -1 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 0
end
if folded > 0 then redis.call('LTRIM', KEYS[2], folded, -1) end
local n = tonumber(v or '0') + 1
redis.call('HSET', KEYS[1], 'd', ARGV[2], 'n', n)
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'q' .. n, ARGV[6]) end
if ARGV[5] == '1' then
  redis.call('HSET', KEYS[1], 'm', '1')
else
  redis.call('HDEL', KEYS[1], 'm')
end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
return n
"""

# KEYS[1] profile hash, KEYS[2] its change log: the stored profile, its write number and
# the log, atomically.
READ = """
local r = redis.call('HMGET', KEYS[1], 'd', 's')
return {r[1], r[2], redis.call('LRANGE', KEYS[2], 0, -1)}
"""


def hiredis_packing(connection_class: type[Any]) -> type[Any]:
    """``connection_class`` packing commands with hiredis (C) instead of Python.

    redis-py's asyncio connections always pack commands in Python, even with hiredis
    installed (its blocking connections use hiredis); for a pipelined write of a few hundred
    commands that is most of the client's work. Arguments hiredis does not take
    (``bytearray``, or the ``None`` and ``bool`` redis-py rejects) and multi-word command
    names go through redis-py's own packer, so errors stay redis-py's.

    >>> from redis.asyncio.connection import Connection
    >>> hiredis_packing(Connection)().pack_command("SET", "k", 1.5)
    [b'*3\\r\\n$3\\r\\nSET\\r\\n$1\\r\\nk\\r\\n$3\\r\\n1.5\\r\\n']
    """
    if hiredis is None:  # pragma: no cover - hiredis comes with the redis extra
        return connection_class
    pack = hiredis.pack_command

    class Packed(connection_class):  # type: ignore[misc]
        def pack_command(self, *args: Any) -> list[bytes]:
            first = args[0]
            if isinstance(first, str) and " " not in first:
                try:
                    return [pack(args)]
                except TypeError:
                    pass
            result: list[bytes] = super().pack_command(*args)
            return result

    Packed.__name__ = Packed.__qualname__ = f"Hiredis{connection_class.__name__}"
    return Packed


def make_pool(
    url: str, max_connections: int, timeout: float, *, socket_timeout: float | None
) -> aioredis.BlockingConnectionPool:
    # A blocking pool: under a burst, callers queue for a connection (up to the timeout)
    # instead of failing with "Too many connections".
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout * 4,
        socket_timeout=socket_timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )
    kwargs = pool.connection_kwargs
    if kwargs.get("encoding", "utf-8").lower().replace("-", "") == "utf8" and (
        kwargs.get("encoding_errors", "strict") == "strict"
    ):  # what hiredis encodes text with
        pool.connection_class = hiredis_packing(pool.connection_class)
    return pool


CLUSTER_SCHEME = "redis+cluster://"


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """The startup nodes of a ``redis+cluster://host:port[,host:port...][/]`` URL (any one
    node is enough; more survive that one being down).

    >>> cluster_nodes("redis+cluster://10.0.0.1:7000,10.0.0.2:7001/")
    [('10.0.0.1', 7000), ('10.0.0.2', 7001)]
    >>> cluster_nodes("redis+cluster://node")
    Traceback (most recent call last):
    ...
    ValueError: a Redis Cluster URL is redis+cluster://host:port[,host:port...], not 'redis+cluster://node'
    """
    nodes: list[tuple[str, int]] = []
    if url.startswith(CLUSTER_SCHEME):
        for part in url[len(CLUSTER_SCHEME) :].rstrip("/").split(","):
            host, _, port = part.strip().rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                nodes = []
                break
            nodes.append((host.strip("[]"), int(port)))
    if not nodes:
        raise ValueError(
            f"a Redis Cluster URL is {CLUSTER_SCHEME}host:port[,host:port...], not {url!r}"
        )
    return nodes


def make_cluster_client(
    url: str, max_connections: int, timeout: float, *, retries: int | None = None
) -> RedisCluster:
    """A ``redis.asyncio.cluster.RedisCluster`` on the nodes of a ``redis+cluster://`` URL;
    ``max_connections`` per node (redis-py's cluster has no blocking pool: a store's calls
    wait for their turn in its :class:`CallGuard` instead). ``retries``: how often redis-py
    itself sends a command or pipeline again after a cluster error (None: its default)."""
    options: dict[str, Any] = {}
    if retries is not None:
        options["retry"] = Retry(NoBackoff(), retries)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster_nodes(url)],
        max_connections=max_connections,
        socket_timeout=None,  # every call is bounded by CallGuard
        socket_connect_timeout=timeout,
        health_check_interval=30,
        **options,
    )


def store_clients(url: str, max_connections: int, timeout: float) -> tuple[Any, Any]:
    """The clients of a :class:`~personalize.stores.redis.RedisStore` made from ``url``: one
    for reads and single calls, one for batched writes.

    On a cluster, one ``RedisCluster`` for both, without retries inside redis-py: a pipeline
    it sends again after a lost connection would run its ``WAIT``s on other connections
    (see :mod:`~personalize.stores.redis_calls`); the write-behind buffer sends a failed
    batch again instead. On one Redis, batched writes get connections of their own without a
    per-read socket timeout: redis-py arms a timer for every reply, 80 of them for a batch of
    80 page views. Their calls are bounded as a whole instead (``CallGuard``), and a call cut
    short drops its connection. The write-behind buffer sends one batch at a time, so a few
    connections do.
    """
    if url.startswith(CLUSTER_SCHEME):
        client = make_cluster_client(url, max_connections, timeout, retries=0)
        return client, client
    reads = aioredis.Redis(
        connection_pool=make_pool(url, max_connections, timeout, socket_timeout=timeout)
    )
    return reads, aioredis.Redis(connection_pool=make_pool(url, 4, timeout, socket_timeout=None))


# A cluster without an owner for a slot (a primary died, no replica took over yet) is
# unavailable for now, like a server that does not answer.
CONNECTION_ERRORS = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    asyncio.TimeoutError,
    ClusterDownError,
    SlotNotCoveredError,
)


class CallGuard:
    """Bounds every Redis call of a store and fails fast while Redis is unreachable.

    A call that times out or cannot connect raises
    :class:`~personalize.exceptions.StoreUnavailableError` and opens the circuit: for
    ``retry_after`` seconds every call raises at once, then one tries again (redis-py
    reconnects by itself). Other Redis errors raise :class:`~personalize.exceptions.StoreError`.

    On a Redis Cluster ``client``, calls take a turn (:func:`client_turn`) and wait for it
    within their bound: redis-py's cluster client fails a call that finds all of a node's
    connections in use instead of waiting for one, so a burst of 200 pages read at once
    opened the circuit for every page of the next second.
    """

    def __init__(
        self,
        owner: object,
        *,
        timeout: float,
        retry_after: float,
        client: Any = None,
    ) -> None:
        self._owner = owner
        self.timeout = timeout
        self.retry_after = retry_after
        self._down_until = 0.0
        self._client = client
        self.limit = cluster_call_limit(client)

    @property
    def circuit_open(self) -> bool:
        """True while calls fail fast (Redis was unreachable moments ago)."""
        return time.monotonic() < self._down_until

    def check(self) -> None:
        """Raise StoreUnavailableError while the circuit is open."""
        if self.circuit_open:
            raise StoreUnavailableError(f"{self._owner!r} is unreachable; retrying shortly")

    async def call(
        self,
        coro: Any,
        *,
        on_start: Callable[[], None] | None = None,
        extra: float = 0.0,
        cluster: RedisCluster | None = None,
    ) -> Any:
        """Await one Redis call or pipeline, bounded by four times the timeout plus
        ``extra`` seconds (for a call that moves megabytes). With the ``cluster`` client
        the call runs on, a call that lost its node has it start afresh (see
        :func:`~personalize.stores.redis_calls.rerouted`)."""
        try:
            self.check()
        except StoreUnavailableError:
            coro.close()  # never started: close it so it is not reported as never awaited
            raise
        if on_start is not None:
            on_start()
        call = coro if cluster is None else rerouted(cluster, coro)
        try:
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for swallows a cancellation
            # that comes as the call completes (the caller's task goes on as if not
            # cancelled: a shutdown that cancels it waits for ever).
            async with asyncio.timeout(self.timeout * 4 + extra):
                if self.limit is None:
                    return await call
                async with client_turn(self._client):
                    return await call
        except CONNECTION_ERRORS as exc:
            self._down_until = time.monotonic() + self.retry_after
            raise StoreUnavailableError(f"{self._owner!r}: {type(exc).__name__}: {exc}") from exc
        except (RedisError, RedisClusterException) as exc:
            raise StoreError(f"{self._owner!r}: {exc}") from exc
        finally:  # a call that never started (cancelled while waiting its turn): closed,
            for started in (call, coro):  # so that it is not reported as never awaited
                close = getattr(started, "close", None)  # (a coroutine; done: a no-op)
                if close is not None:
                    close()


RESERVED = 4  # connections per node kept for sharded pub/sub and slot map reads


def cluster_call_limit(client: Any) -> int | None:
    """How many calls may use ``client`` at once: a Redis Cluster client's connections per
    node less :data:`RESERVED`; None (no limit needed) for one Redis, whose pool waits for a
    free connection by itself."""
    if not isinstance(client, RedisCluster):
        return None
    per_node = client.nodes_manager.connection_kwargs.get("max_connections", 100)
    return max(1, int(per_node) - RESERVED)


_turns: weakref.WeakKeyDictionary[Any, tuple[asyncio.AbstractEventLoop, asyncio.Semaphore]]
_turns = weakref.WeakKeyDictionary()


def client_turn(client: Any) -> contextlib.AbstractAsyncContextManager[Any]:
    """A turn to use ``client`` (``async with``): one of :func:`cluster_call_limit` on a
    Redis Cluster client, shared by every store and invalidation bus on it; nothing to wait
    for on one Redis."""
    limit = cluster_call_limit(client)
    if limit is None:
        return contextlib.nullcontext()
    loop = asyncio.get_running_loop()
    found = _turns.get(client)
    if found is None or found[0] is not loop:  # a semaphore belongs to one event loop
        found = _turns[client] = (loop, asyncio.Semaphore(limit))
    return found[1]
