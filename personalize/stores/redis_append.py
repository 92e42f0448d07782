"""Appending page views and events to profiles' change logs on Redis, in one script call per
profile (a Redis Cluster: each profile on its own slot) or per hundred profiles (one Redis).

>>> calls = append_calls([("h1", "l1", b"[1]", 0, "", 7), ("h2", "l2", b"[2]", 0, "1", 9)],
...                      grouped=True)
>>> [(key, command[0], command[2:7]) for key, command in calls]
[('h1', 'EVALSHA', (4, 'h1', 'l1', 'h2', 'l2'))]
>>> append_replies([[[1, 0, 7], -1]], grouped=True)
[[1, 0, 7], -1]
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

from personalize.stores.redis_calls import Call

__all__ = ["APPEND", "APPEND_MANY", "APPEND_SCRIPTS", "append_calls", "append_replies"]

# KEYS[1] profile hash, KEYS[2] its change log. ARGV: one log entry, ttl (s), "1" for a
# known profile's key, a random number to start the profile's write numbers at. Returns
# {the log's new length, the previous write number (0: none), this write's number}, or -1
# for a tombstone (a merged anonymous id), whose changes must go through the
# compare-and-set, which forwards them to the known profile, and for a known profile that
# does not exist (erased, or never logged in): the compare-and-set decides whether the
# changes may create it. Write numbers (field s) let other processes' near-caches fold the
# change in order; a profile created again (after erasure or expiry) starts at a new random
# number, so a stale copy never takes its writes for ones it already holds.
_APPEND_ONE = """
local function append(h, l, entry, ttl, known, first)
  if redis.call('HEXISTS', h, 'm') == 1 then return -1 end
  if known == '1' and redis.call('EXISTS', h) == 0 then return -1 end
  local n = redis.call('RPUSH', l, entry)
  local prev = redis.call('HGET', h, 's')
  local seq
  if prev then
    seq = redis.call('HINCRBY', h, 's', 1)
  else
    prev = 0
    seq = tonumber(first)
    redis.call('HSET', h, 's', first)
  end
  if tonumber(ttl) > 0 then
    redis.call('EXPIRE', h, ttl)
    redis.call('EXPIRE', l, ttl)
  end
  return {n, tonumber(prev), seq}
end
"""
APPEND = _APPEND_ONE + "return append(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4])\n"

# APPEND for many profiles in one call (one Redis, not a cluster: the keys are on many
# slots): KEYS hash, log, hash, log...; ARGV the four arguments of each in turn. Returns
# APPEND's reply of each. One reply to read instead of one per profile: redis-py's work per
# reply was most of a page view's write.
APPEND_MANY = (
    _APPEND_ONE
    + """
local out = {}
for i = 1, #KEYS / 2 do
  local a = 4 * i - 3
  out[i] = append(KEYS[2 * i - 1], KEYS[2 * i], ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
end
return out
"""
)
APPEND_SHA, APPEND_MANY_SHA = (hashlib.sha1(s.encode()).hexdigest() for s in (APPEND, APPEND_MANY))
APPEND_SCRIPTS = {APPEND_SHA: APPEND, APPEND_MANY_SHA: APPEND_MANY}  # by SHA1, for NOSCRIPT
APPEND_GROUP = 100  # profiles per APPEND_MANY call
_KEYS, _ARGS = itemgetter(0, 1), itemgetter(2, 3, 4, 5)  # of a row of append_calls


def append_calls(
    rows: Sequence[tuple[str, str, bytes, int, str, int]], *, grouped: bool
) -> list[Call]:
    """The calls that append a log entry to each profile of ``rows`` (hash key, log key,
    entry, ttl, "1" for a known profile, first write number): one APPEND per profile, or
    (``grouped``, one Redis) one APPEND_MANY per :data:`APPEND_GROUP` profiles; the replies
    go through :func:`append_replies`."""
    if not grouped:
        return [(h, ("EVALSHA", APPEND_SHA, 2, h, log, *args)) for h, log, *args in rows]
    calls: list[Call] = []
    for at in range(0, len(rows), APPEND_GROUP):
        group = rows[at : at + APPEND_GROUP]
        keys = list(chain.from_iterable(map(_KEYS, group)))  # (in C: one per page view)
        args = list(chain.from_iterable(map(_ARGS, group)))
        calls.append((keys[0], ("EVALSHA", APPEND_MANY_SHA, len(keys), *keys, *args)))
    return calls


def append_replies(replies: Sequence[Any], *, grouped: bool) -> list[Any]:
    """APPEND's reply for each profile of :func:`append_calls`, in order."""
    return [r for reply in replies for r in reply] if grouped else list(replies)
