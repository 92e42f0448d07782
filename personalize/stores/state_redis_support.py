"""Helpers of the Redis state store: scripts run per key in one pipeline, reply parsing."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

__all__ = ["counters_of", "eval_each", "glob_escape", "ordered", "pipelined"]


async def eval_each(
    client: Redis | RedisCluster,
    script: str,
    calls: Sequence[tuple[str, list[Any]]],
    after: tuple[Any, ...] | None = None,
) -> list[Any]:
    """Run ``script`` once per ``(key, args)`` (one key each: on a cluster, each call goes to
    its key's node), pipelined: one round trip (per node) when Redis has the script cached,
    and one more with the script's text for the calls whose node had not (``NOSCRIPT``: not
    run, so running it again adds nothing twice). ``after``: a command sent after them in
    the first round trip (the change feed's entry); its error is raised too."""
    sha = hashlib.sha1(script.encode()).hexdigest()
    commands: list[Sequence[Any]] = [("EVALSHA", sha, 1, key, *args) for key, args in calls]
    rows = await pipelined(client, [*commands, after] if after else commands)
    if after:
        if isinstance(rows[-1], Exception):
            raise rows[-1]
        rows = rows[:-1]
    missing = [i for i, row in enumerate(rows) if isinstance(row, NoScriptError)]
    if missing:
        again = [("EVAL", script, 1, calls[i][0], *calls[i][1]) for i in missing]
        if after:  # the feed's entry again, after the calls that ran only now
            again.append(after)
        replies = await pipelined(client, again)
        if after and isinstance(replies.pop(), Exception):
            raise RuntimeError("the change feed's entry could not be added")
        for i, row in zip(missing, replies, strict=True):
            rows[i] = row
    for row in rows:
        if isinstance(row, Exception):
            raise row
    return rows


async def pipelined(client: Redis | RedisCluster, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """The replies of ``commands``, pipelined, errors as values (not raised)."""
    async with client.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))


def glob_escape(text: str) -> str:
    """``text`` as a literal in a SCAN ``MATCH`` pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def ordered(batch_id: str | None) -> tuple[str, int]:
    """The writer and place of an ordered batch id ``<writer>#<n>``; ("", 0) for another.

    >>> ordered("a1b2-60#17"), ordered("b1"), ordered("#3"), ordered("w#x")
    (('a1b2-60', 17), ('', 0), ('', 0), ('', 0))
    """
    writer, mark, n = (batch_id or "").rpartition("#")
    if mark and writer and n.isascii() and n.isdigit() and int(n) < 2**53:  # exact in Lua
        return writer, int(n)
    return "", 0


def counters_of(row: Any) -> dict[str, float]:
    """The counters of a hash, from HGETALL (a dict) or a script (a flat list)."""
    pairs = row.items() if isinstance(row, dict) else zip(row[::2], row[1::2], strict=True)
    out = {}
    for field, value in pairs:
        name = field.decode() if isinstance(field, bytes) else str(field)
        if not name.startswith("~"):
            out[name] = float(value)
    return out
