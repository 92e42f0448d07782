"""An identity merge on Redis in two round trips: a Lua script per step.

The steps and their rules are those of :meth:`~personalize.stores.base.ProfileStore.merge`
(the known profile exists before any tombstone names it; the anonymous profile becomes a
tombstone; the known profile absorbs its data unless it lists the anonymous id already):

1. :data:`ENSURE` (the known profile's slot) creates the known profile if it does not exist,
   with the JSON the caller drew, cookie epoch included: the first writer wins, and every
   merge reads back the stored profile, so all logins of a user carry the same epoch.
   It returns the profile, its version and its change log.
   :data:`TOMBSTONE` (the anonymous profile's slot) turns the anonymous profile into its
   final tombstone at once: ``d`` the forwarding address (with the ids of the batches it
   had applied), ``m`` set (appends are refused and forwarded from now on), the change log
   moved into the hash as ``xl`` and the old profile as ``xd``, so the data survives a crash
   before step 2 (a merge run again absorbs it then). It returns that data. On an existing
   tombstone it changes nothing and returns what it holds.
2. The known profile absorbs the data in Python and is written by the store's
   compare-and-set (:data:`~personalize.stores.redis_support.CAS`, with the version read in
   step 1); another writer in between makes it fall back to the store's optimistic update.

On a single Redis, step 1 is one script, :data:`BEGIN`, over the four keys (the known
profile first): two round trips in all. On a Redis Cluster the two profiles live on
different slots, so step 1 runs ``ENSURE`` then ``TOMBSTONE`` (the tombstone may only name a
profile that exists): three. The copy of the absorbed data (``xd``, ``xl``) is dropped by
the store's next write (see :meth:`RedisMerging.forget_copy`), never before the absorb succeeded;
left over after a crash it is harmless: it expires and is erased with the tombstone.

>>> "HEXISTS" in TOMBSTONE and "first writer wins" in ENSURE
True
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from personalize.profiles import identity
from personalize.profiles.changes import MAX_BATCH_IDS, read_stored
from personalize.profiles.merge import MAX_ALIASES
from personalize.profiles.profile import Profile
from personalize.stores.base import Mutation, absorb_anonymous
from personalize.stores.redis_calls import Call
from personalize.stores.redis_invalidation import InvalidationBus
from personalize.stores.redis_log import log_set_aside
from personalize.stores.redis_support import CAS

__all__ = ["BEGIN", "ENSURE", "TOMBSTONE", "RedisMerging", "scripts"]

_ENSURE_BODY = """
local function ensure(h, l, fresh)
  -- first writer wins: a profile that exists is never replaced
  if redis.call('HEXISTS', h, 'd') == 0 then
    redis.call('DEL', l)  -- a log without its profile (erased meanwhile): nothing to keep
    local n = tonumber(redis.call('HGET', h, 'n') or '0') + 1
    redis.call('HSET', h, 'd', fresh, 'n', n)
    redis.call('PERSIST', h)
  end
  local r = redis.call('HMGET', h, 'd', 'n')
  return {r[1], r[2], redis.call('LRANGE', l, 0, -1)}
end
"""

_TOMBSTONE_BODY = """
local function tombstone(h, l, head, tail, ttl, keep)
  if redis.call('HEXISTS', h, 'm') == 1 then
    local r = redis.call('HMGET', h, 'd', 'xd', 'xl', 'n')
    return {0, r[1] or false, r[2] or false, r[3] or false, r[4]}
  end
  local old = redis.call('HGET', h, 'd')
  local log = redis.call('LRANGE', l, 0, -1)
  -- the batch ids the profile had applied, as the store's fold keeps them
  local ids = {}
  if old then
    local ok, data = pcall(cjson.decode, old)
    if ok and type(data) == 'table' and type(data.batches) == 'table' then
      for _, id in ipairs(data.batches) do ids[#ids + 1] = tostring(id) end
    end
  end
  for _, entry in ipairs(log) do
    local ok, data = pcall(cjson.decode, entry)
    local id = ok and type(data) == 'table' and data[1]
    if type(id) == 'string' then
      local seen = false
      for _, known in ipairs(ids) do if known == id then seen = true break end end
      if not seen then
        ids[#ids + 1] = id
        while #ids > keep do table.remove(ids, 1) end
      end
    end
  end
  local batches = '[]'
  if #ids > 0 then batches = cjson.encode(ids) end
  local n = tonumber(redis.call('HGET', h, 'n') or '0') + 1
  local d = head .. batches .. tail
  redis.call('HSET', h, 'd', d, 'n', n, 'm', '1', 'xl', table.concat(log, '\\n'))
  if old then redis.call('HSET', h, 'xd', old) else redis.call('HDEL', h, 'xd') end
  redis.call('DEL', l)
  if ttl > 0 then redis.call('EXPIRE', h, ttl) else redis.call('PERSIST', h) end
  return {1, d, old or false, table.concat(log, '\\n'), n}
end
"""

# KEYS: the known profile's hash and log. ARGV: the JSON of a new known profile.
# Returns {JSON, version, log entries}.
ENSURE = _ENSURE_BODY + "return ensure(KEYS[1], KEYS[2], ARGV[1])\n"

# KEYS: the anonymous profile's hash and log. ARGV: the tombstone's JSON before and after its
# batch ids, TTL (s), batch ids kept. Returns {1 new / 0 already one, tombstone JSON, old
# JSON, old log entries (newline-separated), version}.
TOMBSTONE = (
    _TOMBSTONE_BODY
    + "return tombstone(KEYS[1], KEYS[2], ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]))\n"
)

# KEYS: known hash, known log, anonymous hash, anonymous log (one Redis only: other slots).
# ARGV: those of ENSURE then TOMBSTONE. Returns {ENSURE's reply, TOMBSTONE's reply}.
BEGIN = (
    _ENSURE_BODY
    + _TOMBSTONE_BODY
    + "local known = ensure(KEYS[1], KEYS[2], ARGV[1])\n"
    + "return {known, tombstone(KEYS[3], KEYS[4], ARGV[2], ARGV[3], tonumber(ARGV[4]),"
    + " tonumber(ARGV[5]))}\n"
)


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


ENSURE_SHA, TOMBSTONE_SHA, BEGIN_SHA, CAS_SHA = map(_sha, (ENSURE, TOMBSTONE, BEGIN, CAS))


def scripts() -> dict[str, str]:
    """The merge's scripts by SHA1 (for ``NOSCRIPT``: sent again with their text)."""
    return {ENSURE_SHA: ENSURE, TOMBSTONE_SHA: TOMBSTONE, BEGIN_SHA: BEGIN}


class RedisMerging:
    """The merge of :class:`~personalize.stores.redis.RedisStore` (a mixin: what it uses of
    the store is declared for the type checker only)."""

    if TYPE_CHECKING:
        cluster: bool
        _bus: InvalidationBus
        _copies: list[str]

        def redis_key(self, key: str) -> str: ...
        def log_key(self, key: str) -> str: ...
        def _ttl_for(self, key: str) -> int: ...
        async def _write(self, calls: Sequence[Call]) -> list[Any]: ...
        def _fold_log(
            self, key: str, raw: bytes | None, entries: list[bytes], quarantine: list[bytes]
        ) -> Profile | None: ...
        async def update(self, key: str, mutation: Mutation) -> Profile | None: ...

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
        """:meth:`~personalize.stores.base.ProfileStore.merge` in two round trips, a Lua
        script per step (three on a cluster; see :mod:`~personalize.stores.redis_merge`)."""
        now = time.time() if now is None else now
        anonymous_id = identity.visitor_id_of(anonymous_key) or anonymous_key
        fresh = Profile(key=known_key, user_id=user_id).to_json()
        tombstone = Profile(
            key=anonymous_key, merged_into=known_key, merged_at=now, merged_device=device_id
        ).to_json()
        cut = tombstone.index(b',"batches":[],') + len(b',"batches":')
        head, tail = tombstone[:cut], tombstone[cut + 2 :]
        kh, kl = self.redis_key(known_key), self.log_key(known_key)
        ah, al = self.redis_key(anonymous_key), self.log_key(anonymous_key)
        ttl = self._ttl_for(anonymous_key)
        if self.cluster:  # in this order: a tombstone only ever names a profile that exists
            (known_row,) = await self._write([(kh, ("EVALSHA", ENSURE_SHA, 2, kh, kl, fresh))])
            tombstone_args = (head, tail, ttl, MAX_BATCH_IDS)
            (gone_row,) = await self._write(
                [(ah, ("EVALSHA", TOMBSTONE_SHA, 2, ah, al, *tombstone_args))]
            )
        else:
            args = (fresh, head, tail, ttl, MAX_BATCH_IDS)
            ((known_row, gone_row),) = await self._write(
                [(kh, ("EVALSHA", BEGIN_SHA, 4, kh, kl, ah, al, *args))]
            )
        quarantine: list[bytes] = []
        source = _source(self._fold_log, anonymous_key, gone_row, quarantine)
        raw, version, entries = known_row
        known_quarantine: list[bytes] = []
        known = self._fold_log(known_key, raw, list(entries), known_quarantine)
        absorbed = [False]

        def absorb(profile: Profile | None) -> Profile:
            profile, absorbed[0] = absorb_anonymous(
                profile, source, known_key=known_key, user_id=user_id, anonymous_id=anonymous_id,
                device_id=device_id, traits=traits, now=now, max_aliases=max_aliases,
            )  # fmt: skip
            return profile

        # The copy is read: in step 2's round trip, the absorb and what could not be read.
        new = absorb(known)
        bad = b"[" + b",".join(known_quarantine) + b"]" if known_quarantine else b""
        cas = (new.to_json(), self._ttl_for(known_key), len(entries), "", bad)
        calls: list[Call] = [(kh, ("EVALSHA", CAS_SHA, 2, kh, kl, version or "", *cas))]
        if quarantine:
            field = f"q{int(gone_row[4])}"
            calls.append((ah, ("HSET", ah, field, b"[" + b",".join(quarantine) + b"]")))
        published = self._published_with(calls, [known_key, anonymous_key])
        outcome = (await self._write(calls))[0]
        quarantined = {anonymous_key: quarantine, known_key: known_quarantine}
        if outcome == -1:  # another writer changed the known profile since step 1: read again
            result = await self.update(known_key, absorb)  # (its write logs what it set aside)
            assert result is not None
            new, quarantined[known_key] = result, []
        await self._changed([known_key, anonymous_key], quarantined, published=published)
        if anonymous_id not in new.aliases:  # over the alias cap: no tombstone erasure cannot find
            await self.update(anonymous_key, _drop_if_merged_into(known_key))
        elif gone_row[2] is not None or gone_row[3]:
            self.forget_copy(anonymous_key)
        return new, absorbed[0]

    def forget_copy(self, anonymous_key: str) -> None:
        """Drop, with the next write, the copy of the data a merge absorbed that the
        anonymous profile's tombstone keeps until then."""
        self._copies = [*self._copies[-9_999:], self.redis_key(anonymous_key)]

    def _published_with(self, calls: list[Call], keys: list[str]) -> bool:
        """Add the invalidation of ``keys`` to a write's ``calls``, after its writes (one
        Redis runs a pipeline in order); not on a cluster, where the nodes run theirs apart."""
        if self.cluster or not self._bus.enabled:
            return False
        calls += [(c, ("PUBLISH", c, m)) for c, m in self._bus.messages(keys).items()]
        return True

    async def _changed(
        self, keys: list[str], quarantined: Mapping[str, list[bytes]], *, published: bool
    ) -> None:
        """Log what was set aside for ``keys`` and tell the other processes they changed."""
        for key, records in quarantined.items():
            log_set_aside(key, records)
        if not published:
            await self._bus.publish(keys)


def _source(
    fold: Callable[[str, bytes | None, list[bytes], list[bytes]], Profile | None],
    key: str,
    row: Sequence[Any],
    quarantine: list[bytes],
) -> Profile | None:
    """The anonymous profile as it was when it became a tombstone (what the known profile
    absorbs), from TOMBSTONE's reply; for a tombstone already absorbed, the tombstone."""
    new, stored, old, log = row[0], row[1], row[2], row[3]
    entries = [entry for entry in (log or b"").split(b"\n") if entry]
    if new == 1 or old is not None or entries:
        target = None if new == 1 else _target(key, stored)
        profile = fold(key, old, entries, quarantine)
        if profile is not None and new != 1:
            profile.merged_into = target  # a copy kept from an earlier run
        return profile
    return read_stored(key, stored, [])


def _target(key: str, stored: bytes | None) -> str | None:
    profile = read_stored(key, stored, [])
    return None if profile is None else profile.merged_into


def _drop_if_merged_into(known_key: str) -> Callable[[Profile | None], Profile | None]:
    def drop(profile: Profile | None) -> Profile | None:
        return None if profile is not None and profile.merged_into == known_key else profile

    return drop
