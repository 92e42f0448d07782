"""Benchmark-only apps for the outage drill and the scale-out figures (never for production).

    uvicorn benchmarks.drill_app:app           # PersonalizeMiddleware + RedisStore
    uvicorn benchmarks.drill_app:learning_app  # the same with StreamLearning (needs a learner)

``/`` is the personalized hello page of :mod:`benchmarks.apps` (same body), plus a header
``x-bench-page-views`` with ``visitor.profile.page_views``: every visitor the drill loads
already has a stored page view, so a value of 1 means the stored profile could not be read
(default content was served).

``/_bench/state`` is answered *outside* the middleware (no page view, no cookie) with the
state of this worker's profile service as JSON: ``pid``, ``pending`` (changes accepted but
not written yet), ``stats`` (written, failed, dropped, cache hits/misses), and, best effort
from private attributes of :class:`RedisStore`, whether its circuit breaker is open and its
invalidation listener connected; with learning, the learning runtime's status.

Environment: ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``), ``BENCH_PREFIX`` (profile
key prefix), ``BENCH_SECRET`` (cookie secret), ``BENCH_LEARN_STREAM`` and
``BENCH_LEARN_PREFIX`` (stream and snapshot prefix of the learning app, so a benchmark never
touches the default ``personalize:learn`` stream), ``BENCH_LOG_LEVEL`` (e.g. ``DEBUG``: the
``personalize`` loggers write to stderr at that level, each line with its time and pid, to
follow a worker through a drill; and SIGUSR1 writes every thread's and task's stack there).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from benchmarks.apps import DEFAULT_SECRET

STATE_PATH = "/_bench/state"
PAGE_VIEWS_HEADER = "x-bench-page-views"


async def drill_hello(request: Request) -> HTMLResponse:
    from personalize import get_visitor

    visitor = get_visitor(request)
    profile = visitor.profile
    device = visitor.context.device.type
    return HTMLResponse(
        f"hello {device} #{profile.visits}",
        headers={PAGE_VIEWS_HEADER: str(profile.page_views)},
    )


class StateEndpoint:
    """Answers ``/_bench/state`` before the personalization middleware; the rest passes."""

    def __init__(self, app: ASGIApp, middleware: Any) -> None:
        self.app = app
        self.pz = middleware

    def state(self) -> dict[str, Any]:
        profiles = self.pz.personalizer.profiles
        store = profiles.store
        state: dict[str, Any] = {
            "pid": os.getpid(),
            "time": time.time(),
            "pending": profiles.pending,
            "stats": dict(profiles.stats),
            "circuit_open": bool(getattr(store, "circuit_open", False)),
            "listening": bool(getattr(getattr(store, "_bus", None), "listening", False)),
        }
        if self.pz.personalizer.learning is not None:
            state["learning"] = self.pz.personalizer.learning.status()
        return state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == STATE_PATH:
            body = orjson.dumps(self.state())
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"cache-control", b"no-store"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def _make(learning_factory: Callable[[], Any] | None) -> ASGIApp:
    from personalize import PersonalizeMiddleware
    from personalize.stores.redis import RedisStore

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = os.environ.get("BENCH_PREFIX", "pzdrill:")
    level = os.environ.get("BENCH_LOG_LEVEL")
    if level:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s %(message)s"))
        logger = logging.getLogger("personalize")
        logger.addHandler(handler)
        logger.setLevel(level.upper())
    holder: list[PersonalizeMiddleware] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if level:
            _dump_stacks_on_sigusr1()
        yield
        for middleware in holder:  # write pending page views, close the store
            await middleware.aclose()

    inner = Starlette(routes=[Route("/", drill_hello)], lifespan=lifespan)
    middleware = PersonalizeMiddleware(
        inner,
        secret_key=os.environ.get("BENCH_SECRET", DEFAULT_SECRET),
        store=RedisStore(url, prefix=prefix),
        learning=learning_factory() if learning_factory is not None else None,
    )
    holder.append(middleware)
    return StateEndpoint(middleware, middleware)


def _dump_stacks_on_sigusr1() -> None:
    """SIGUSR1 writes every thread's and every asyncio task's stack to stderr: where a worker
    that does not stop is stuck."""
    loop = asyncio.get_running_loop()

    def tasks(signum: int, frame: Any) -> None:
        for task in asyncio.all_tasks(loop):
            print(f"--- {task!r}", file=sys.stderr, flush=True)
            task.print_stack(file=sys.stderr)

    signal.signal(signal.SIGUSR1, tasks)  # the tasks, once the loop runs Python again
    faulthandler.register(signal.SIGUSR1, all_threads=True, chain=True)  # the threads, now


def make_app() -> ASGIApp:
    return _make(None)


def make_learning_app() -> ASGIApp:
    from personalize.learning.runtime import StreamLearning

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    stream = os.environ.get("BENCH_LEARN_STREAM", "pzbench:learn")
    prefix = os.environ.get("BENCH_LEARN_PREFIX", "pzbench:models")
    return _make(lambda: StreamLearning(url, stream=stream, prefix=prefix))


_FACTORIES: dict[str, Callable[[], ASGIApp]] = {"app": make_app, "learning_app": make_learning_app}
_BUILT: dict[str, ASGIApp] = {}


def __getattr__(name: str) -> ASGIApp:
    factory = _FACTORIES.get(name)
    if factory is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _BUILT:
        _BUILT[name] = factory()
    return _BUILT[name]
