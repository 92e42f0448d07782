"""Pipelined writes that work alike on one Redis and on a Redis Cluster, and wait for replicas.

:func:`pipelined` sends a batch of commands, each routed by one key, in one round trip (per
node, in parallel, on a cluster) and returns their replies:

- scripts run by ``EVALSHA`` (redis-py's cluster pipelines refuse ``Script`` objects); a node
  that lost a script (``NOSCRIPT``: the call did not run) gets it again by ``EVAL``;
- on a cluster, a command refused with ``MOVED``/``ASK``/``TRYAGAIN`` (not run) is sent again
  once the client has re-read the slot map (a failover, a resharding);
- with ``wait`` > 0, each node's commands are followed, on the same connection, by
  ``WAIT <replicas> <ms>``: the batch only counts as written once the node's replicas have it,
  so the replica a failover promotes holds every write that was acknowledged. A node that does
  not confirm in time raises :class:`NotReplicated`, an unavailable store for its callers:
  the write-behind buffer sends the batch again (same batch id, so applied once). With
  ``wait`` None, a node the slot map lists without a replica is asked (``ROLE``) whether one
  is attached: one that attached since the map was read (a failed primary back, as the
  replica of the node that replaced it) gets the same answer, as its writes were not waited
  for, and the map is read again so that the next batch waits for it.

A reply that is a lost connection means the outcome is unknown: the error is raised (after
asking the cluster client to re-read the slot map), never papered over by sending again here.

>>> import asyncio
>>> class Echo:  # a stand-in client: a pipeline that answers each command with its key
...     def pipeline(self, transaction=False):
...         return self
...     async def __aenter__(self):
...         self.sent = []
...         return self
...     async def __aexit__(self, *exc):
...         return None
...     def execute_command(self, *args, **options):
...         self.sent.append(args)
...     async def execute(self, raise_on_error=True):
...         return [args[1] for args in self.sent]
>>> asyncio.run(pipelined(Echo(), [("a", ("GET", "a")), ("b", ("GET", "b"))], scripts={}))
['a', 'b']
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

try:
    from redis.asyncio.cluster import RedisCluster
    from redis.crc import key_slot
    from redis.exceptions import (
        AskError,
        ClusterDownError,
        MovedError,
        NoScriptError,
        SlotNotCoveredError,
        TryAgainError,
    )
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("RedisStore needs the redis extra: pip install 'personalize[redis]'") from exc

__all__ = ["Call", "NotReplicated", "pipelined", "replicas_of", "reread_slots", "rerouted"]

#: One command and the key that routes it: ``(key, ("EVALSHA", sha, 2, key, log, ...))``.
Call = tuple[str, tuple[Any, ...]]

_NOT_RUN = (MovedError, AskError, TryAgainError, ClusterDownError)  # refused, nothing done
_LOST = (RedisConnectionError, RedisTimeoutError, OSError)  # outcome unknown
_REROUTES = 5  # times a refused command is sent again after the slot map was re-read


class NotReplicated(RedisConnectionError):
    """A node did not confirm that its replicas have the batch's writes in time (``WAIT``);
    the writes may be lost if that node fails now, so the batch counts as not written."""


def replicas_of(client: Any, key: str) -> int:
    """How many replicas serve ``key``'s slot, as the cluster client last saw the slot map
    (``CLUSTER SLOTS`` leaves out failed replicas); 0 for a single Redis."""
    if not isinstance(client, RedisCluster):
        return 0
    nodes = getattr(client.nodes_manager, "slots_cache", {}).get(key_slot(key.encode()), ())
    return max(0, len(nodes) - 1)


async def pipelined(
    client: Any,
    calls: Sequence[Call],
    *,
    scripts: Mapping[str, str],
    wait: int | None = 0,
    wait_ms: int = 500,
) -> list[Any]:
    """The replies of ``calls`` (see the module's text). ``scripts`` maps the SHA1 of each
    script used by ``EVALSHA`` to its text. ``wait``: replicas each written node must confirm
    (``None``: one where the slot map lists a replica; 0: do not wait)."""
    replies: list[Any] = [None] * len(calls)
    todo = list(range(len(calls)))
    commands = [command for _, command in calls]
    for attempt in range(_REROUTES + 1):
        rows = await _send(client, [(calls[i][0], commands[i]) for i in todo], wait, wait_ms)
        again = []
        for index, row in zip(todo, rows, strict=True):
            if isinstance(row, NoScriptError):  # not run: send the script's text instead
                sha = commands[index][1]
                commands[index] = ("EVAL", scripts[sha], *commands[index][2:])
                again.append(index)
            elif isinstance(row, _NOT_RUN) and attempt < _REROUTES:
                again.append(index)
            else:
                replies[index] = row
        if any(isinstance(row, _NOT_RUN) for row in rows):
            await reread_slots(client)
            await asyncio.sleep(0.05 * attempt)
        todo = again
        if not todo:
            break
    for row in replies:
        if isinstance(row, Exception):
            raise row
    return replies


async def _send(client: Any, calls: Sequence[Call], wait: int | None, wait_ms: int) -> list[Any]:
    """One round trip: the replies of ``calls`` (errors as values), each written node's
    ``WAIT`` checked."""
    cluster = isinstance(client, RedisCluster)
    waits: dict[str, tuple[Any, int]] = {}  # node name -> (node, replicas to wait for)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for key, command in calls:
                if not cluster:
                    pipe.execute_command(*command)
                    continue
                node = client.get_node_from_key(key)
                pipe.execute_command(*command, target_nodes=node)
                wanted = min(1, replicas_of(client, key)) if wait is None else wait
                if (wanted or wait is None) and node.name not in waits:
                    waits[node.name] = (node, wanted)
            if not cluster and wait:
                waits[""] = (None, wait)
            for node, wanted in waits.values():
                if node is None:
                    pipe.execute_command("WAIT", wanted, wait_ms)
                elif wanted:
                    pipe.execute_command("WAIT", wanted, wait_ms, target_nodes=node)
                else:  # no replica in the slot map: has one attached since?
                    pipe.execute_command("ROLE", target_nodes=node)
            if cluster:
                rows = list(await pipe.execute(raise_on_error=False, allow_redirections=False))
            else:
                rows = list(await pipe.execute(raise_on_error=False))
    except _LOST:
        await reread_slots(client)
        raise
    if any(isinstance(row, _LOST) for row in rows):
        await reread_slots(client)
        raise next(row for row in rows if isinstance(row, _LOST))
    for (node, wanted), acked in zip(waits.values(), rows[len(calls) :], strict=True):
        if node is not None and not wanted:
            if _replicas_attached(acked):
                await reread_slots(client)
                raise NotReplicated(
                    f"{node.name} has a replica the slot map did not list: the writes were "
                    "not waited for"
                )
            continue
        if isinstance(acked, Exception) or int(acked) < wanted:
            # A replica that failed leaves the slot map once it is read again: the next
            # batch does not wait for it.
            await reread_slots(client)
            where = "Redis" if node is None else node.name
            raise NotReplicated(
                f"{where} confirmed the writes on {acked} of {wanted} replicas within {wait_ms} ms"
            )
    return rows[: len(calls)]


def _replicas_attached(role: Any) -> bool:
    """Whether a ``ROLE`` reply is a primary's that lists replicas (a reply that is an error:
    no; the batch's own replies say whether the node took the writes).

    >>> _replicas_attached([b"master", 3129, [[b"127.0.0.1", b"7004", b"3129"]]])
    True
    >>> _replicas_attached([b"master", 3129, []])
    False
    """
    return (
        isinstance(role, list)
        and len(role) > 2
        and role[0] in (b"master", "master")
        and bool(role[2])
    )


async def rerouted(client: Any, call: Awaitable[Any]) -> Any:
    """Await ``call``; if it lost its node (a connection error, ``CLUSTERDOWN``), have the
    cluster ``client`` read the slot map again before raising: a process that only reads
    would otherwise keep asking the node that died."""
    try:
        return await call
    except (*_LOST, ClusterDownError, SlotNotCoveredError):
        await reread_slots(client)
        raise


async def reread_slots(client: Any) -> None:
    """Have a cluster client read the slot map again before its next command (a failover or
    resharding moved slots); nothing for a single Redis.

    Only the map is read again (``CLUSTER SLOTS``; calls that wait meanwhile share one
    reading): the client's nodes keep their connections, marked to reconnect when next used,
    and nodes that left the map drop theirs. Not ``aclose()``: it closes every connection at
    once, the ones other calls are using too, and each of those calls, failing, closed them
    all again: after a failover the store kept failing for seconds once the new primary
    served."""
    if isinstance(client, RedisCluster):
        with contextlib.suppress(Exception):  # an unreachable cluster: the next call says so
            await client.nodes_manager.initialize()
