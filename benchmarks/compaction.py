"""What each store's folding of its change log adds per page view, in instructions (valgrind
callgrind).

    .venv/bin/python -m benchmarks.instructions --apps personalized,sqlite_compaction

Both stores append page views to a change log and fold the log into the profiles later: the
SQLite store compacts its log after every :data:`COMPACT_AFTER` changes a process appended
(or every 30 s), the Redis store folds a profile's own log once it passes
:data:`LOG_LIMIT` entries. :mod:`benchmarks.instructions`' runs append a few page views per
visitor, so neither comes up there and the store rows leave them out, though a server does
this work all the time (SQLite's compaction is about 6 % of the hello page's throughput on a
fast day: benchmarks/RESULTS.md). This measures it alone, as rows of the instruction table:

- ``sqlite_compaction``: ``personalized``'s requests (``--visitors`` visitors created and
  warmed, their page views compacted) with the store's own compaction held back, then
  :data:`COMPACT_AFTER` returning page views (sixteen per visitor with 1,000) written in
  batches as the near cache writes them; one run stops there, the other then compacts;
- ``redis_log_folds``: ``personalized_redis``'s requests, :data:`LOG_LIMIT` page views per
  visitor, so that each profile's log passes the limit once and is folded; the other run
  never folds (an unreachable limit).

The difference of the two runs, divided by the page views, is what folding costs per page
view, on top of the store's row.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
from typing import Any

from benchmarks.instructions import FOLDS, _child, measure_pair
from personalize import SQLiteStore
from personalize.stores.redis import RedisStore

__all__ = ["COMPACT_AFTER", "LOG_LIMIT", "measure", "page_views"]

# The stores' defaults: the changes a process appends before SQLite compacts its log, and
# the entries of a profile's log on Redis before it is folded.
COMPACT_AFTER: int = inspect.signature(SQLiteStore).parameters["compact_after"].default
LOG_LIMIT: int = inspect.signature(RedisStore).parameters["log_limit"].default
_MODULE = "benchmarks.compaction"
_NEVER = 2**62


def page_views(row: str, visitors: int) -> int:
    """The measured page views of ``row`` (its store's default cadence)."""
    return COMPACT_AFTER if row == "sqlite_compaction" else LOG_LIMIT * visitors


def measure(row: str, visitors: int, batch: int) -> float:
    """Instructions the log folds of ``row``'s store add per page view (two valgrind runs).
    On Redis a write batch holds each visitor once at most (``batch`` up to ``visitors``),
    so that each page view is a log entry of its own, as on a site with many visitors."""
    count = page_views(row, visitors)
    if row == "redis_log_folds":
        batch = min(batch, visitors)
    without, folded = measure_pair(
        row, (visitors, count, batch, (_MODULE,)), (visitors, count, batch, (_MODULE, "--fold"))
    )
    return (folded - without) / count


async def _compact_all(store: Any) -> int:
    """Compact until the log is empty; returns the profiles rewritten."""
    rewritten = 0
    while (done := await store.compact()) > 0:
        rewritten += done
    return rewritten


async def run(row: str, visitors: int, count: int, batch: int, *, fold: bool) -> None:
    """The child run of ``row``: its app's requests, ``count`` of them measured, the store
    folding its log as by default when ``fold`` (SQLite: compacting once, at the end, the
    set-up's page views compacted before the measured ones), never otherwise."""
    sqlite = row == "sqlite_compaction"

    async def before(personalizer: Any) -> None:
        store = personalizer.profiles.store
        if sqlite:
            store.compact_after = _NEVER  # only this run compacts
            await _compact_all(store)  # (the set-up's page views: not measured)
        elif not fold:
            store.log_limit = _NEVER

    async def after(personalizer: Any) -> None:
        await personalizer.profiles.flush()
        if sqlite and fold:
            await _compact_all(personalizer.profiles.store)

    await _child(FOLDS[row], visitors, count, batch, hooks=(before, after))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--child", required=True, choices=sorted(FOLDS))
    parser.add_argument("--visitors", type=int, default=1000)
    parser.add_argument("--requests", type=int, help="page views (default: the row's own)")
    parser.add_argument("--batch", type=int, default=150)
    parser.add_argument("--fold", action="store_true", help="fold as the store does")
    args = parser.parse_args(argv)
    count = args.requests or page_views(args.child, args.visitors)
    asyncio.run(run(args.child, args.visitors, count, args.batch, fold=args.fold))
    return 0


if __name__ == "__main__":
    sys.exit(main())
