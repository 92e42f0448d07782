"""``personalize report``: the impact of personalization, as the editor UI's impact page shows it.

Reads the impact log from the state store a site writes to (the SQLite file, by default
``personalize.sqlite3`` as :class:`~personalize.Personalizer` uses; or ``--redis URL``) and
prints the latest figures of every scope as a table, or every scope and day with ``--csv`` or
``--json``.

>>> import asyncio, contextlib, io, os, tempfile
>>> from personalize.services.impact import Exposure
>>> from personalize.stores.state_sqlite import SQLiteStateStore
>>> path = os.path.join(tempfile.mkdtemp(), "site.sqlite3")
>>> async def a_visit() -> None:
...     store = SQLiteStateStore(path)
...     log = ImpactLog(store)
...     log.exposed(Exposure("v:1", "hero", "a", "holdout", "holdout", "uk", time.time()))
...     await log.aclose()
...     await store.close()
>>> asyncio.run(a_visit())
>>> out = io.StringIO()
>>> with contextlib.redirect_stdout(out):
...     code = run(parser().parse_args(["report", "--sqlite", path, "--csv"]))
>>> code, out.getvalue().splitlines()[1].split(",")[2:8]  # one holdout visitor, so far
(0, ['0', '0', '0', '1', '0', '0'])
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson

from personalize.impact.report import Report, load_report
from personalize.services.impact import ImpactLog
from personalize.stores.state import StateStore
from personalize.util.cli_types import whole_number

__all__ = ["add_command", "parser", "run"]


def add_command(commands: Any) -> None:
    """Add ``report`` to an ``add_subparsers()`` object."""
    report = commands.add_parser(
        "report",
        help="print the uplift of personalized over holdout visitors",
        description="Print the uplift of conversion rate and value per visitor, personalized "
        "over holdout, per site, slot and segment, with 95 %% always-valid intervals: the "
        "latest day as a table, or every day with --csv or --json. Exit status 2 when the "
        "store cannot be read.",
    )
    where = report.add_mutually_exclusive_group()
    where.add_argument(
        "--sqlite",
        metavar="FILE",
        default="personalize.sqlite3",
        help="the site's SQLite store (default: %(default)s)",
    )
    where.add_argument("--redis", metavar="URL", help="the site's Redis, e.g. redis://host:6379/0")
    report.add_argument(
        "--prefix", default="pz:", help="the Redis key prefix of the site (default: %(default)s)"
    )
    report.add_argument(
        "--days",
        type=whole_number(1, 400),
        default=90,
        help="days up to today to read (default: %(default)s)",
    )
    kind = report.add_mutually_exclusive_group()
    kind.add_argument("--json", action="store_true", help="every scope and day as JSON")
    kind.add_argument("--csv", action="store_true", help="every scope and day as CSV")


def parser() -> argparse.ArgumentParser:
    """A parser with the ``report`` subcommand alone (for tests and doctests)."""
    top = argparse.ArgumentParser(prog="personalize")
    add_command(top.add_subparsers(dest="command"))
    return top


def _store(args: argparse.Namespace) -> StateStore:
    if args.redis:
        from personalize.stores.state_redis import RedisStateStore

        return RedisStateStore(args.redis, prefix=args.prefix, timeout=5.0)
    from personalize.stores.state_sqlite import SQLiteStateStore

    return SQLiteStateStore(args.sqlite)


async def _load(args: argparse.Namespace) -> Report:
    store = _store(args)
    try:
        return await load_report(ImpactLog(store), time.time(), days=args.days)
    finally:
        await store.close()


def run(args: argparse.Namespace) -> int:
    """Print the report; 2 when the store cannot be read."""
    if not args.redis and args.sqlite != ":memory:":
        from pathlib import Path

        if not Path(args.sqlite).is_file():
            print(f"personalize report: no such file {args.sqlite}", file=sys.stderr)
            return 2
    try:
        report = asyncio.run(_load(args))
    except Exception as exc:
        print(f"personalize report: cannot read the store ({exc})", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(orjson.dumps(report.to_dict()).decode() + "\n")
    elif args.csv:
        sys.stdout.write(report.to_csv())
    elif not report.scopes:
        print("No holdout measurements yet (set a holdout: see docs/impact.md).")
    else:
        print(report.table())
    return 0
