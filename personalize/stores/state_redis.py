"""Decision state in Redis, for several workers and hosts (``pip install 'personalize[redis]'``).

Layout, every key hash-tagged by the state key so that it lives on one Redis Cluster slot:

- ``<prefix>c:{<key>}`` a hash of counters; its field ``~b`` lists the ids of the last
  batches added (a batch sent again after a timeout is added once);
- ``<prefix>k:{<key>}`` a string value, with its TTL;
- ``<prefix>b:{<name>}`` a hash of a blob's versions: field ``v`` the newest, ``1``, ``2``...
  the data.

A batch of increments is one pipelined round trip: one small Lua script per key adds every
field atomically, refreshes the TTL and returns the key's counters.

Every write also adds an entry to the change feed, a stream (see
:mod:`~personalize.stores.state_redis_feed`), so that workers keep using their copies of keys
no other worker changed.

On a Redis Cluster (``redis+cluster://host:port,...`` or a ``redis.asyncio.cluster.RedisCluster``
client) every command and every script touches one key, so a batch is split by node and
each part pipelined to its node; :meth:`~RedisStateStore.keys` scans every primary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from personalize.stores.state import (
    Increments,
    StateStore,
    check_blob,
    check_increments,
    check_key,
    check_keys,
    check_ttl,
    check_values,
)

try:
    import redis.asyncio as aioredis
    from redis.asyncio.cluster import RedisCluster
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "RedisStateStore needs the redis extra: pip install 'personalize[redis]'"
    ) from exc

from personalize.stores.redis_support import (
    CLUSTER_SCHEME,
    CallGuard,
    make_cluster_client,
    make_pool,
)
from personalize.stores.state_feed import MAX_ENTRIES, Changes, writer_of
from personalize.stores.state_redis_feed import feed_entry, read_stream, stream_id
from personalize.stores.state_redis_support import counters_of, eval_each, glob_escape, ordered

__all__ = ["RedisStateStore"]

BATCHES_KEPT = 16  # batch ids remembered per counter hash
WRITERS_KEPT = 64  # writers of ordered batch ids (<writer>#<n>) remembered per counter hash

# KEYS[1] the counters hash. ARGV: batch id ("" none), ttl in ms (0: leave it), how many
# batch ids to remember, the writer of an ordered id ("" none) and its n, how many writers
# to remember, then field, amount pairs. Returns the hash (flat field, value list).
INCREMENT = """
if ARGV[4] ~= '' then
  local field = '~w:' .. ARGV[4]
  local last = redis.call('HGET', KEYS[1], field)
  if last and tonumber(last) >= tonumber(ARGV[5]) then
    return redis.call('HGETALL', KEYS[1])
  end
  if not last then
    local writers = {ARGV[4]}
    for w in string.gmatch(redis.call('HGET', KEYS[1], '~ws') or '', '%S+') do
      if #writers < tonumber(ARGV[6]) then
        writers[#writers + 1] = w
      else
        redis.call('HDEL', KEYS[1], '~w:' .. w)
      end
    end
    redis.call('HSET', KEYS[1], '~ws', table.concat(writers, ' '))
  end
  redis.call('HSET', KEYS[1], field, ARGV[5])
elseif ARGV[1] ~= '' then
  local seen = redis.call('HGET', KEYS[1], '~b') or ''
  if string.find(' ' .. seen .. ' ', ' ' .. ARGV[1] .. ' ', 1, true) then
    return redis.call('HGETALL', KEYS[1])
  end
  local ids = {ARGV[1]}
  for id in string.gmatch(seen, '%S+') do
    if #ids >= tonumber(ARGV[3]) then break end
    ids[#ids + 1] = id
  end
  redis.call('HSET', KEYS[1], '~b', table.concat(ids, ' '))
end
for i = 7, #ARGV, 2 do
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1])
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return redis.call('HGETALL', KEYS[1])
"""

# KEYS[1] the blob hash. ARGV: data, versions to keep. Returns the new version.
PUT_BLOB = """
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], tostring(v), ARGV[1])
for old = v - tonumber(ARGV[2]), 1, -1 do
  if redis.call('HDEL', KEYS[1], tostring(old)) == 0 then break end
end
return v
"""

# KEYS[1] the blob hash. ARGV: a version, or "" for the newest. Returns {version, data}.
GET_BLOB = """
local v = ARGV[1]
if v == '' then v = redis.call('HGET', KEYS[1], 'v') end
if not v then return nil end
local data = redis.call('HGET', KEYS[1], v)
if not data then return nil end
return {tonumber(v), data}
"""


class RedisStateStore(StateStore):
    """A :class:`StateStore` on ``redis.asyncio``; give a ``url`` or a ``client`` to share
    (the profile store's: the state store never closes a client it was given). A
    ``redis+cluster://host:port[,host:port...]`` URL, or a ``RedisCluster`` client, puts the
    state on a Redis Cluster.

    >>> store = RedisStateStore("redis://127.0.0.1:6379/0", prefix="doc:")
    >>> store.counter_key("hero/a|*")
    'doc:c:{hero/a|*}'
    """

    has_feed = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: aioredis.Redis | RedisCluster | None = None,
        prefix: str = "pz:",
        timeout: float = 0.5,  # seconds, for every call
        retry_after: float = 1.0,  # seconds to fail fast after Redis was unreachable
        max_connections: int = 16,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self._owns_client = client is None
        if client is None and url.startswith(CLUSTER_SCHEME):
            client = make_cluster_client(url, max_connections, timeout)
        elif client is None:
            pool = make_pool(url, max_connections, timeout, socket_timeout=None)
            client = aioredis.Redis(connection_pool=pool)
        self._client: aioredis.Redis | RedisCluster = client
        self._guard = CallGuard(self, timeout=timeout, retry_after=retry_after, client=client)

    def __repr__(self) -> str:
        return f"RedisStateStore({self.url!r}, prefix={self.prefix!r})"

    def counter_key(self, key: str) -> str:
        """The Redis key of ``key``'s counters."""
        return f"{self.prefix}c:{{{key}}}"

    def value_key(self, key: str) -> str:
        """The Redis key of ``key``'s value."""
        return f"{self.prefix}k:{{{key}}}"

    @property
    def feed_key(self) -> str:
        """The Redis key of the change feed (a stream)."""
        return f"{self.prefix}f:{{~feed}}"

    async def changes(self, after: int | None) -> Changes:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.xinfo_stream(self.feed_key)
            if after is not None:
                pipe.xrange(self.feed_key, min=f"({stream_id(after)}", count=MAX_ENTRIES + 1)
            rows = await self._guard.call(pipe.execute(raise_on_error=False))
        return read_stream(rows[0], rows[1] if after is not None else None, after)

    def blob_key(self, name: str) -> str:
        """The Redis key of blob ``name``'s versions."""
        return f"{self.prefix}b:{{{name}}}"

    async def increment(
        self, changes: Increments, *, ttl: float | None = None, batch_id: str | None = None
    ) -> dict[str, dict[str, float]]:
        checked = check_increments(changes)
        ttl = check_ttl(ttl)
        if not checked:
            return {}
        if batch_id is not None and (not batch_id or " " in batch_id):
            raise ValueError("a batch id is a non-empty string without spaces")
        ttl_ms = 0 if ttl is None else max(1, round(ttl * 1000))
        writer, n = ordered(batch_id)
        listed = "" if writer or batch_id is None else batch_id
        keys = list(checked)
        calls = []
        for key in keys:
            args: list[Any] = [listed, ttl_ms, BATCHES_KEPT, writer, n, WRITERS_KEPT]
            for field, amount in checked[key].items():
                args += (field, repr(amount))
            calls.append((self.counter_key(key), args))
        entry = feed_entry(self.feed_key, writer_of(batch_id), keys)
        rows = await self._guard.call(eval_each(self._client, INCREMENT, calls, entry))
        return {key: counters_of(row) for key, row in zip(keys, rows, strict=True)}

    async def counters(self, keys: Sequence[str]) -> dict[str, dict[str, float]]:
        for key in keys:
            check_key(key)
        unique = list(dict.fromkeys(keys))
        if not unique:
            return {}
        async with self._client.pipeline(transaction=False) as pipe:
            for key in unique:
                pipe.hgetall(self.counter_key(key))
            rows = await self._guard.call(pipe.execute())
        found = {key: counters_of(row) for key, row in zip(unique, rows, strict=True)}
        return {key: fields for key, fields in found.items() if fields}

    async def values(self, keys: Sequence[str]) -> dict[str, bytes]:
        for key in keys:
            check_key(key)
        unique = list(dict.fromkeys(keys))
        if not unique:
            return {}
        async with self._client.pipeline(transaction=False) as pipe:
            for key in unique:
                pipe.get(self.value_key(key))
            rows = await self._guard.call(pipe.execute())
        return {key: bytes(v) for key, v in zip(unique, rows, strict=True) if v is not None}

    async def read(
        self, counters: Sequence[str], values: Sequence[str]
    ) -> tuple[dict[str, dict[str, float]], dict[str, bytes]]:
        check_keys(counters, values)
        by_counter, by_value = list(dict.fromkeys(counters)), list(dict.fromkeys(values))
        if not (by_counter and by_value):  # (one kind: one pipeline anyway)
            return await self.counters(by_counter), await self.values(by_value)
        async with self._client.pipeline(transaction=False) as pipe:  # one round trip
            for key in by_counter:
                pipe.hgetall(self.counter_key(key))
            for key in by_value:
                pipe.get(self.value_key(key))
            rows = await self._guard.call(pipe.execute())
        fields = (counters_of(row) for row in rows[: len(by_counter)])
        found = {key: f for key, f in zip(by_counter, fields, strict=True) if f}
        got = zip(by_value, rows[len(by_counter) :], strict=True)
        return found, {key: bytes(v) for key, v in got if v is not None}

    async def put_values(
        self,
        items: Mapping[str, bytes],
        *,
        ttl: float | None,
        only_if_absent: bool = False,
        writer: str = "",
    ) -> dict[str, bytes]:
        check_values(items)
        ttl = check_ttl(ttl)
        if not items:
            return {}
        px = None if ttl is None else max(1, round(ttl * 1000))
        keys = list(items)
        async with self._client.pipeline(transaction=False) as pipe:
            for key in keys:
                # SET NX GET answers the value that was there (and stays), or nil: ours.
                pipe.set(
                    self.value_key(key), items[key], px=px, nx=only_if_absent, get=only_if_absent
                )
            pipe.execute_command(*feed_entry(self.feed_key, writer, keys) or ("PING",))
            rows = (await self._guard.call(pipe.execute()))[:-1]
        result = {}
        for key, row in zip(keys, rows, strict=True):
            result[key] = bytes(row) if only_if_absent and row is not None else items[key]
        return result

    async def delete(self, keys: Sequence[str]) -> int:
        for key in keys:
            check_key(key)
        unique = list(dict.fromkeys(keys))
        if not unique:
            return 0
        async with self._client.pipeline(transaction=False) as pipe:
            for key in unique:
                pipe.delete(self.counter_key(key))
                pipe.delete(self.value_key(key))
            pipe.execute_command(*feed_entry(self.feed_key, "", unique) or ("PING",))
            rows = (await self._guard.call(pipe.execute()))[:-1]
        return sum(1 for i in range(0, len(rows), 2) if rows[i] or rows[i + 1])

    async def keys(self, prefix: str) -> list[str]:
        check_key(prefix, "prefix")
        pattern = glob_escape(prefix) + "*}"
        found: dict[str, None] = {}

        async def scan() -> None:
            # scan_iter visits every primary of a Redis Cluster, cursor by cursor.
            for kind in (self.counter_key(""), self.value_key("")):
                start = len(kind) - 1  # the key after "{"
                match = glob_escape(kind[:-1]) + pattern
                async for raw in self._client.scan_iter(match=match, count=500):
                    found[raw.decode("utf-8", "replace")[start:-1]] = None

        await self._guard.call(scan(), extra=5.0)
        return [k for k in found if k.startswith(prefix)]

    async def put_blob(self, name: str, data: bytes, *, keep: int = 3) -> int:
        check_blob(name, data, keep)
        # Large snapshots take longer than one call's bound: the guard's timeout is for
        # small calls, so a blob gets one second per 10 MB on top.
        rows = await self._guard.call(
            eval_each(self._client, PUT_BLOB, [(self.blob_key(name), [data, keep])]),
            extra=len(data) / 10_000_000,
        )
        return int(rows[0])

    async def get_blob(self, name: str, version: int | None = None) -> tuple[int, bytes] | None:
        check_key(name, "blob name")
        wanted = "" if version is None else str(int(version))
        rows = await self._guard.call(
            eval_each(self._client, GET_BLOB, [(self.blob_key(name), [wanted])]), extra=1.0
        )
        row = rows[0]
        if row is None:
            return None
        return int(row[0]), bytes(row[1])

    async def close(self) -> None:
        if not self._owns_client:
            return
        if isinstance(self._client, RedisCluster):
            await self._client.aclose()
        else:
            await self._client.aclose(close_connection_pool=True)
