"""Instructions per request, counted by valgrind: a deterministic companion to ``run``.

    .venv/bin/python -m benchmarks.instructions [--apps bare,personalized] [--no-write]

Throughput on a shared machine moves by 10-30 % from run to run, so a change worth 5 % cannot
be seen with wrk. This harness counts the CPU instructions the apps of :mod:`benchmarks.apps`
execute per request, in process (no HTTP server, no network), under
``valgrind --tool=callgrind``: the same code gives the same count to within about 1 %.

For each app it creates ``--visitors`` visitors, sends one request per visitor to warm every
cache (verified cookies, profiles), then sends ``--requests`` requests rotating across them,
writing page views every ``--batch`` requests as the write-behind buffer does under load
(the SQLite store's time-based compaction and expiry are switched off: under valgrind's slow
clock they would run fifty times as often as in production; its compaction after 16,000
changes, like the Redis store's fold of a profile's log past 64 entries, does not come up in
these short runs, so the store rows leave them out: rows ``sqlite_compaction`` and
``redis_log_folds`` measure them, see :mod:`benchmarks.compaction`; for the same reason the
content and segment folders are not checked for changes). It runs that
twice, with ``--requests`` and with ``--requests`` plus 1,000, and reports the difference
divided by 1,000, so start-up and set-up cancel out. Everything the process executes
counts, the SQLite writer thread included; the Redis server's own work does not (it is
another process).

Instruction counts are not time: they leave out cache misses, system calls and disk writes
(the SQLite store's write-ahead log costs about 7 KB of writes per page view), so this
complements the throughput figures and does not replace them.

Needs valgrind (``apt-get install valgrind``). Writes benchmarks/RESULTS.md between the
``instructions`` markers (other sections are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.benchkit import command_line, redis_ping, write_section

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START, END = "<!-- instructions:start -->", "<!-- instructions:end -->"
APPS = (
    "bare",
    "trivial",
    "minimal",
    "personalized_nowrite",
    "personalized",
    "personalized_same",
    "personalized_memory",
    "personalized_redis",
    "personalized_new",
    "realistic_bare",
    "personalized_realistic_sqlite",
)
# Measured when asked for (--apps): the realistic page's cost taken apart.
MORE_APPS = ("personalized_realistic_fixed",)
# Not apps: what each store's folding of its change log adds per page view, beside the app
# whose row leaves it out (benchmarks.compaction).
FOLDS = {"sqlite_compaction": "personalized", "redis_log_folds": "personalized_redis"}
# Scenarios that send every request without a cookie (a new visitor each time), on the app
# they name.
NEW_VISITORS = {"personalized_new": "personalized"}
MEANING = {
    "bare": "Starlette, one route, no middleware (the reference)",
    "trivial": "behind a pure ASGI middleware that only passes the request on",
    "minimal": "behind the least a personalizing middleware does (benchmarks.apps.Minimal: "
    "cookie and profile from dicts, private and Vary headers, the page view buffered): a floor",
    "personalized_nowrite": "behind PersonalizeMiddleware, a store that writes nothing: "
    "the middleware's own work",
    "personalized": "behind PersonalizeMiddleware + SQLiteStore",
    "personalized_same": "bare's own page behind PersonalizeMiddleware + SQLiteStore",
    "personalized_memory": "behind PersonalizeMiddleware + MemoryStore",
    "personalized_redis": "behind PersonalizeMiddleware + RedisStore (local Redis)",
    "personalized_new": "as personalized, but every request is a new visitor (no cookie: "
    "a new id, a signed Set-Cookie, a new profile written)",
    "realistic_bare": "the realistic page of benchmarks/realistic.py: a Jinja2 listing of 24 "
    "products, hero and banner fixed (the reference of the realistic rows)",
    "personalized_realistic_sqlite": "the same listing behind PersonalizeMiddleware + "
    "SQLiteStore, hero and banner decided from content/ and segments/",
    "personalized_realistic_fixed": "the same listing behind PersonalizeMiddleware + "
    "SQLiteStore, hero and banner fixed (no content): the middleware's and the store's share "
    "(the rest of personalized_realistic_sqlite's: the two decided slots)",
    "sqlite_compaction": "per page view, what SQLiteStore's compaction of its change log adds "
    "at its default cadence (16,000 page views of the returning visitors folded at once), "
    "which personalized's row leaves out; its column: times bare added, and in brackets "
    "personalized with it",
    "redis_log_folds": "per page view, what RedisStore's fold of a profile's change log into "
    "the profile adds (each profile's, once its log passes 64 entries), which "
    "personalized_redis's row leaves out; its column as sqlite_compaction's",
}
# What an app is compared with (the rest: bare).
REFERENCE = {
    "realistic_bare": "realistic_bare",
    "personalized_realistic_sqlite": "realistic_bare",
    "personalized_realistic_fixed": "realistic_bare",
}
EXTRA = 1000  # requests that make the difference between the two runs


Hook = Callable[[Any], Awaitable[None]]


async def wait_for_listener(service: Any) -> None:
    """Wait until a Redis store's invalidation listener is subscribed (nothing for others).

    A Redis store trusts its cached profiles for long only while its listener is subscribed,
    and drops them all when it subscribes (notices may have been missed): a count depended on
    whether that happened before or during the measured requests (135k-307k per request).
    A server has long subscribed in production."""
    bus = getattr(service.store, "_bus", None) if service is not None else None
    if bus is not None and bus.enabled:
        bus.ensure_listener()  # (started by the store's first call, which may not be yet)
        for _ in range(6000):  # (valgrind is slow)
            if bus.listening:
                return
            await asyncio.sleep(0.01)
        raise RuntimeError("the Redis store's invalidation listener never subscribed")


def _scope(cookie: str | None) -> dict[str, Any]:
    from benchmarks.run import ACCEPT_LANGUAGE, USER_AGENT

    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", USER_AGENT.encode()),
        (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        (b"accept-language", ACCEPT_LANGUAGE.encode()),
        (b"referer", b"http://127.0.0.1:8000/previous-page"),
    ]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _child(
    app_name: str,
    visitors: int,
    requests: int,
    batch: int,
    hooks: tuple[Hook, Hook] | None = None,
) -> None:
    """What runs under valgrind: set up, warm, then ``requests`` measured requests (``hooks``:
    awaited with the app's personalizer after the warm-up and after the requests)."""
    from benchmarks import apps

    new_visitors = app_name in NEW_VISITORS
    app = getattr(apps, NEW_VISITORS.get(app_name, app_name))
    personalizer = getattr(app, "personalizer", None)
    service = personalizer.profiles if personalizer is not None else None
    if service is None and app_name.startswith("personalized"):
        raise RuntimeError(f"{app_name}: no PersonalizeMiddleware with a personalizer found")
    if personalizer is not None:
        profiles = personalizer.profiles
        profiles._flushing = True  # this loop writes the batches itself, without timers
        if hasattr(profiles.store, "compact_interval"):
            profiles.store.compact_interval = float("inf")
        if hasattr(profiles.store, "expire_interval"):  # once a minute, as slow as compaction
            profiles.store.expire_interval = float("inf")
        # The content and segment folders are checked for changes once a second: under
        # valgrind, every few requests.
        for library in (personalizer.segments, getattr(personalizer.decisions, "library", None)):
            watch = getattr(library, "_watch", None)
            if watch is not None:
                watch.interval = float("inf")

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    cookies: list[str] = []

    async def keep_cookie(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            for name, value in message.get("headers", []):
                if name == b"set-cookie":
                    cookies.append(value.decode("latin-1").split(";", 1)[0])

    async def discard(message: dict[str, Any]) -> None:
        return None

    for _ in range(visitors if service is not None or app_name == "minimal" else 1):
        await app(_scope(None), receive, keep_cookie)
    await wait_for_listener(service)
    scopes = [_scope(c) for c in cookies] or [_scope(None)]
    if new_visitors:
        scopes = [_scope(None)]  # (the visitors above only warm the store and the caches)
    for scope in scopes:  # warm: every cookie verified once, every profile cached
        await app(dict(scope), receive, discard)
    if service is not None:
        await service.flush()
    if hooks is not None:
        await hooks[0](personalizer)
    for i in range(requests):
        await app(dict(scopes[(i * 7919) % len(scopes)]), receive, discard)
        if service is not None and i % batch == batch - 1:
            await service.flush()
    if hooks is not None:
        await hooks[1](personalizer)
    if service is not None:
        await app.aclose()


def _count(
    app: str,
    visitors: int,
    requests: int,
    batch: int,
    env: dict[str, str],
    child: Sequence[str] = ("benchmarks.instructions",),
) -> int:
    """Instructions valgrind counted for one child run (``child``: the module whose
    ``--child`` runs the requests, and options of its own after it)."""
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        *child,
        "--child",
        app,
        "--visitors",
        str(visitors),
        "--requests",
        str(requests),
        "--batch",
        str(batch),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600, check=False)
    found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        tail = done.stderr[-3000:]
        raise RuntimeError(f"{app}: valgrind run failed ({done.returncode}):\n{tail}")
    return int(found.group(1))


def measure(
    app: str,
    visitors: int,
    requests: int,
    batch: int,
    extra: int = EXTRA,
    child: Sequence[str] = ("benchmarks.instructions",),
) -> float:
    """Instructions per request of ``app``: the difference of two runs, per extra request
    (``child`` as for :func:`_count`)."""
    small, large = measure_pair(
        app, (visitors, requests, batch, child), (visitors, requests + extra, batch, child)
    )
    return (large - small) / extra


def measure_pair(
    app: str,
    small: tuple[int, int, int, Sequence[str]],
    large: tuple[int, int, int, Sequence[str]],
) -> tuple[int, int]:
    """The instructions of two child runs of ``app`` (visitors, requests, batch, child each,
    as for :func:`_count`), each from an empty database and Redis prefix."""
    env = dict(os.environ)
    workdir = tempfile.mkdtemp(prefix="personalize-instr-")
    env["BENCH_DB"] = os.path.join(workdir, "bench.sqlite3")
    env["BENCH_PREFIX"] = f"pzinstr:{os.getpid()}:{app}:{workdir[-8:]}:"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    env["BENCH_REDIS_TIMEOUT"] = "30"  # valgrind's slow clock must not time a batch out
    # String hashes are salted per process: dict and set layouts, and with them probe counts
    # and the order a set is walked in, would differ between the two runs.
    env["PYTHONHASHSEED"] = "0"
    try:
        first = _count(app, *small[:3], env, small[3])
        for leftover in Path(workdir).iterdir():  # the second run starts from nothing too
            leftover.unlink()
        _clean_redis(env["BENCH_PREFIX"])
        second = _count(app, *large[:3], env, large[3])
    finally:
        _clean_redis(env["BENCH_PREFIX"])
        shutil.rmtree(workdir, ignore_errors=True)
    return first, second


def _clean_redis(prefix: str) -> None:
    from benchmarks.benchkit import delete_prefix

    if redis_ping():
        delete_prefix(prefix)


def render(rows: list[tuple[str, float]], args: argparse.Namespace) -> str:
    counts = dict(rows)
    lines = [
        START,
        "## Instructions per request (in process, valgrind callgrind)",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}",
        f"- command: `{command_line('benchmarks.instructions')}`",
        f"- {args.visitors} returning visitors, the same headers as the throughput runs, page "
        f"views written every {args.batch} requests; per request = (instructions of a run with "
        f"{args.requests + args.extra} requests - one with {args.requests}) / {args.extra}",
        "- deterministic to about 1 %, but not time: cache misses, system calls and disk "
        "writes are not in it (see the throughput section for those)",
        *(
            [
                "- the stores' log folds: per page view = (a run of the app's requests whose "
                "store folds its log as by default - the same run never folding) / its page "
                "views (SQLite: 16,000, compacted at its end; Redis: 64 per visitor)"
            ]
            if FOLDS.keys() & counts.keys()
            else []
        ),
        "",
        "| app | instructions per request | times bare (realistic: times realistic_bare) "
        "| meaning |",
        "|---|---:|---:|---|",
    ]
    for app, count in rows:
        reference = counts.get(REFERENCE.get(app, "bare"))
        times = f"{count / reference:.2f}" if reference else "-"
        if app in FOLDS and reference:
            times = f"+{count / reference:.2f}"
            if FOLDS[app] in counts:
                times += f" ({(counts[FOLDS[app]] + count) / reference:.2f})"
        lines.append(f"| {app} | {count:,.0f} | {times} | {MEANING[app]} |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--apps", default=",".join((*APPS, *FOLDS)), help="comma-separated subset")
    parser.add_argument("--visitors", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batch", type=int, default=150, help="requests per write batch")
    parser.add_argument(
        "--extra", type=int, default=EXTRA, help="requests the second run adds (the divisor)"
    )
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(_child(args.child, args.visitors, args.requests, args.batch))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    unknown = [a for a in apps if a not in (*APPS, *MORE_APPS, *FOLDS)]
    if unknown:
        known = ", ".join((*APPS, *MORE_APPS, *FOLDS))
        parser.error(f"unknown apps: {', '.join(unknown)} (known: {known})")
    for needs_redis in ("personalized_redis", "redis_log_folds"):
        if needs_redis in apps and not redis_ping():
            print(f"note: Redis is not reachable; skipping {needs_redis}", file=sys.stderr)
            apps.remove(needs_redis)
    rows = []
    for app in apps:
        if app in FOLDS:
            from benchmarks import compaction  # (it runs this module's child)

            count = compaction.measure(app, args.visitors, args.batch)
        else:
            count = measure(app, args.visitors, args.requests, args.batch, args.extra)
        print(f"{app:24s} {count:12,.0f} instructions per request", flush=True)
        rows.append((app, count))
    section = render(rows, args)
    print(section)
    if not args.no_write:
        write_section(RESULTS, START, END, section)
        print(f"updated {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
