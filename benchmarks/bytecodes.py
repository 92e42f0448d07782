"""Where a request's time goes: bytecodes executed per request, by function (deterministic).

    .venv/bin/python -m benchmarks.bytecodes personalized_nowrite [--requests 300 --top 30]
    .venv/bin/python -m benchmarks.bytecodes --decisions new|again [--visitors 300]

The first form sends requests to an app of :mod:`benchmarks.apps` in process, as
:mod:`benchmarks.instructions` does (returning visitors rotating, the profile store's write
batches left out, the folder checks off), and counts the bytecodes each function executes
(``sys.settrace`` with ``f_trace_opcodes``). The second decides the four slots of the demo's
content for :mod:`benchmarks.decision_bench`'s visitors: ``new`` (first decisions) or
``again`` (the same visitors and slots a second time). Counts are per request (per slot).

A bytecode is not an instruction (a call, an allocation or a dict lookup costs more than a
jump), and the gap is wide on the hot path: the context memo is 78 bytecodes and ~9,000
instructions, the profile view's fold ~330 and ~16,000. Use this to see which code runs, and
:mod:`benchmarks.steps` for what a step costs in instructions, :mod:`benchmarks.instructions`
to measure a change.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import tempfile
from collections.abc import Callable
from types import FrameType
from typing import Any

Key = tuple[str, str]


def _tracer(counts: collections.Counter[Key]) -> Callable[..., Any]:
    root = os.getcwd() + os.sep

    def trace(frame: FrameType, event: str, arg: object) -> Callable[..., Any]:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        code = frame.f_code
        path = code.co_filename
        if "site-packages" in path:
            path = path.split("site-packages" + os.sep, 1)[1]
        key = (path.removeprefix(root), code.co_name)

        def local(frame: FrameType, event: str, arg: object) -> Callable[..., Any]:
            if event == "opcode":
                counts[key] += 1
            return local

        return local

    return trace


async def _requests(app_name: str, requests: int, counts: collections.Counter[Key]) -> None:
    from benchmarks import apps
    from benchmarks.instructions import NEW_VISITORS, _scope, wait_for_listener

    app = getattr(apps, NEW_VISITORS.get(app_name, app_name))
    personalizer = getattr(app, "personalizer", None)
    service = personalizer.profiles if personalizer is not None else None
    if personalizer is not None:
        personalizer.profiles._flushing = True  # no write batches: the middleware's own work
        for library in (personalizer.segments, getattr(personalizer.decisions, "library", None)):
            if getattr(library, "_watch", None) is not None:
                library._watch.interval = float("inf")  # tracing is slow: no folder checks

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    cookies: list[str] = []

    async def keep_cookie(message: dict[str, Any]) -> None:
        for name, value in message.get("headers", []):
            if name == b"set-cookie":
                cookies.append(value.decode("latin-1").split(";", 1)[0])

    async def discard(message: dict[str, Any]) -> None:
        return None

    for _ in range(100 if service is not None else 1):
        await app(_scope(None), receive, keep_cookie)
    await wait_for_listener(service)  # (a Redis store: as benchmarks.instructions does)
    scopes = [_scope(c) for c in cookies] or [_scope(None)]
    if app_name in NEW_VISITORS:
        scopes = [_scope(None)]
    for scope in scopes:
        await app(dict(scope), receive, discard)
    sys.settrace(_tracer(counts))
    try:
        for i in range(requests):
            await app(dict(scopes[(i * 7919) % len(scopes)]), receive, discard)
    finally:
        sys.settrace(None)
    if service is not None:
        await app.aclose()


def _decisions(mode: str, visitors: int, counts: collections.Counter[Key]) -> int:
    from benchmarks.decision_bench import SLOTS, _engine, _visitors

    engine = _engine()
    people = list(_visitors(visitors, seed=200))
    for visitor in people:
        visitor.attributes  # noqa: B018 - built before counting, as the page would have
        if mode == "again":
            for slot in SLOTS:
                engine.decide_sync(visitor, slot)
    sys.settrace(_tracer(counts))
    try:
        for visitor in people:
            for slot in SLOTS:
                engine.decide_sync(visitor, slot)
    finally:
        sys.settrace(None)
    return len(people) * len(SLOTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("app", nargs="?", default="personalized_nowrite")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--decisions", choices=["new", "again"])
    parser.add_argument("--visitors", type=int, default=300)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    os.environ.setdefault("BENCH_DB", os.path.join(tempfile.mkdtemp(), "bench.sqlite3"))
    os.environ.setdefault("BENCH_PREFIX", f"pzbytecodes:{os.getpid()}:")
    counts: collections.Counter[Key] = collections.Counter()
    if args.decisions:
        n, what = _decisions(args.decisions, args.visitors, counts), "slot"
    else:
        from benchmarks.instructions import _clean_redis

        try:
            asyncio.run(_requests(args.app, args.requests, counts))
        finally:  # (a Redis app's profiles: nothing left behind)
            if "redis" in args.app:
                _clean_redis(os.environ["BENCH_PREFIX"])
        n, what = args.requests, "request"
    print(f"bytecodes per {what}: {sum(counts.values()) / n:,.0f}")
    for (path, name), count in counts.most_common(args.top):
        print(f"{count / n:9.1f}  {path}:{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
