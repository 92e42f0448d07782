"""ASGI apps for the throughput harness, one per module attribute.

    uvicorn benchmarks.apps:bare                 # Starlette, one route, HTMLResponse("hello")
    uvicorn benchmarks.apps:trivial              # the same behind a pass-through ASGI middleware
    uvicorn benchmarks.apps:minimal              # ... behind the least a personalizer does
    uvicorn benchmarks.apps:personalized         # behind PersonalizeMiddleware + SQLiteStore
    uvicorn benchmarks.apps:personalized_same    # ... + SQLiteStore, bare's own page unchanged
    uvicorn benchmarks.apps:personalized_memory  # behind PersonalizeMiddleware + MemoryStore
    uvicorn benchmarks.apps:personalized_redis   # behind PersonalizeMiddleware + RedisStore
    uvicorn benchmarks.apps:personalized_nowrite # ... + a store that writes nothing
    uvicorn benchmarks.apps:realistic_bare       # a 24-product listing (benchmarks.realistic)
    uvicorn benchmarks.apps:personalized_realistic_sqlite  # ... hero and banner decided, SQLite
    uvicorn benchmarks.apps:personalized_realistic_redis   # ... the same on Redis
    uvicorn benchmarks.apps:personalized_realistic_fixed   # ... SQLite, hero and banner fixed

The apps are built lazily on first attribute access (module ``__getattr__``), so a server that
imports ``bare`` never opens an SQLite file. ``personalized`` stores profiles in the file named
by the ``BENCH_DB`` environment variable (default: a fresh temporary directory); the harness
always sets it. ``BENCH_SECRET`` overrides the (benchmark-only) cookie secret.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_SECRET = "benchmark-only-secret-0123456789abcdef"
APP_NAMES = (
    "bare",
    "trivial",
    "minimal",
    "personalized",
    "personalized_same",
    "personalized_memory",
    "personalized_redis",
    "personalized_nowrite",
    "realistic_bare",
    "personalized_realistic_sqlite",
    "personalized_realistic_redis",
    "personalized_realistic_fixed",
)


async def hello(request: Request) -> HTMLResponse:
    return HTMLResponse("hello")


def make_bare() -> Starlette:
    """The reference: one route returning a tiny HTML page."""
    return Starlette(routes=[Route("/", hello)])


class PassThrough:
    """The cheapest possible pure-ASGI middleware: the cost of one extra layer, nothing more."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def make_trivial() -> ASGIApp:
    return PassThrough(make_bare())


class Minimal:
    """The least any personalizing middleware does, and nothing more: the visitor from the
    cookie (a dict lookup by the header's bytes; a new visitor gets an id and a Set-Cookie),
    their profile from a dict, a visitor object in the scope, ``Cache-Control: private`` and
    ``Vary: Cookie`` on the response, and the page view appended to a buffer. No signature,
    no context, no profile view, no store. A floor to read PersonalizeMiddleware's figures
    against (``benchmarks.instructions``), not a middleware to use."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.ids: dict[bytes, str] = {}
        self.profiles: dict[str, dict[str, Any]] = {}
        self.buffer: list[tuple[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = dict(scope["headers"])
        cookie = raw.get(b"cookie")
        visitor_id = self.ids.get(cookie) if cookie is not None else None
        new = visitor_id is None
        if visitor_id is None:
            visitor_id = f"v{len(self.profiles)}"
            self.ids[f"pz_visitor={visitor_id}".encode()] = visitor_id
        profile = self.profiles.get(visitor_id)
        if profile is None:
            profile = self.profiles[visitor_id] = {"visits": 0}
        profile["visits"] += 1
        state = scope.get("state")
        if state is None:
            scope["state"] = state = {}
        state["visitor"] = (visitor_id, profile, raw.get(b"user-agent"))

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), *_PRIVATE]
                if new:
                    headers.append((b"set-cookie", f"pz_visitor={visitor_id}; Path=/".encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_wrapper)
        self.buffer.append((visitor_id, scope["path"]))
        if len(self.buffer) >= 1000:
            self.buffer.clear()


_PRIVATE = ((b"cache-control", b"private"), (b"vary", b"Cookie"))


def make_minimal() -> ASGIApp:
    return Minimal(make_bare())


def _make_personalized(store_factory: Callable[[], Any], *, reads_visitor: bool = True) -> ASGIApp:
    """The page behind PersonalizeMiddleware: by default one that reads the visitor's
    profile and device (so the profile view is built); ``reads_visitor=False`` keeps the
    bare app's own page, which reads nothing of the visitor."""
    # Imported here, not per request: the bare app's server never imports personalize.
    from personalize import PersonalizeMiddleware, get_visitor

    async def personalized_hello(request: Request) -> HTMLResponse:
        visitor = get_visitor(request)
        visits = visitor.profile.visits
        device = visitor.context.device.type
        return HTMLResponse(f"hello {device} #{visits}")

    holder: list[PersonalizeMiddleware] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for middleware in holder:  # write pending page views, close the store
            await middleware.aclose()

    page = personalized_hello if reads_visitor else hello
    inner = Starlette(routes=[Route("/", page)], lifespan=lifespan)
    middleware = PersonalizeMiddleware(
        inner,
        secret_key=os.environ.get("BENCH_SECRET", DEFAULT_SECRET),
        store=store_factory(),
    )
    holder.append(middleware)
    return middleware


def bench_db_path() -> str:
    path = os.environ.get("BENCH_DB")
    if not path:
        path = os.path.join(tempfile.mkdtemp(prefix="personalize-bench-"), "bench.sqlite3")
    return path


def make_personalized() -> ASGIApp:
    from personalize import SQLiteStore

    return _make_personalized(lambda: SQLiteStore(bench_db_path()))


def make_personalized_same() -> ASGIApp:
    """The bare app's page, unchanged, behind PersonalizeMiddleware + SQLiteStore: what the
    middleware costs a page that does not read the visitor (it still reads the cookie and
    the profile, builds the context and records the page view)."""
    from personalize import SQLiteStore

    return _make_personalized(lambda: SQLiteStore(bench_db_path()), reads_visitor=False)


def make_personalized_memory() -> ASGIApp:
    from personalize import MemoryStore

    return _make_personalized(MemoryStore)


def make_personalized_redis() -> ASGIApp:
    """Behind PersonalizeMiddleware + RedisStore (``REDIS_URL``, keys under ``BENCH_PREFIX``)."""
    from personalize.stores.redis import RedisStore

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = os.environ.get("BENCH_PREFIX", "pzbench:")
    # Under valgrind everything runs ~50 times slower: benchmarks.instructions lengthens the
    # store's timeout (BENCH_REDIS_TIMEOUT, seconds) so a batch is not cut short.
    timeout = float(os.environ.get("BENCH_REDIS_TIMEOUT", "0.5"))
    return _make_personalized(lambda: RedisStore(url, prefix=prefix, timeout=timeout))


def make_personalized_nowrite() -> ASGIApp:
    """Behind PersonalizeMiddleware with a store that keeps nothing: the middleware's own
    work per request (context, cookie, profile view, headers), without any store's writes.
    For measurement only (``benchmarks.instructions``)."""
    from personalize import MemoryStore
    from personalize.profiles.changes import Change

    class NoWriteStore(MemoryStore):
        async def apply_changes(
            self, changes: Mapping[str, Sequence[Change]], *, batch_id: str | None = None
        ) -> dict[str, Any]:
            return {}

    return _make_personalized(NoWriteStore)


def make_realistic_bare() -> ASGIApp:
    from benchmarks.realistic import make_bare

    return make_bare()


def make_personalized_realistic_sqlite() -> ASGIApp:
    from benchmarks.realistic import make_personalized
    from personalize import SQLiteStore

    return make_personalized(SQLiteStore(bench_db_path()))


def make_personalized_realistic_redis() -> ASGIApp:
    from benchmarks.realistic import make_personalized
    from personalize.stores.redis import RedisStore

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = os.environ.get("BENCH_PREFIX", "pzbench:") + "realistic:"
    return make_personalized(RedisStore(url, prefix=prefix))


def make_personalized_realistic_fixed() -> ASGIApp:
    """The realistic listing behind the middleware + SQLite, its hero and banner fixed (no
    content): the middleware's and the store's share of the realistic page's cost; the rest
    of ``personalized_realistic_sqlite``'s is the two decided slots'."""
    from benchmarks.realistic import make_personalized
    from personalize import SQLiteStore

    return make_personalized(SQLiteStore(bench_db_path()), slots=False)


_FACTORIES: dict[str, Callable[[], ASGIApp]] = {
    "personalized_realistic_fixed": make_personalized_realistic_fixed,
    "realistic_bare": make_realistic_bare,
    "personalized_realistic_sqlite": make_personalized_realistic_sqlite,
    "personalized_realistic_redis": make_personalized_realistic_redis,
    "personalized_same": make_personalized_same,
    "personalized_nowrite": make_personalized_nowrite,
    "personalized_redis": make_personalized_redis,
    "bare": make_bare,
    "trivial": make_trivial,
    "minimal": make_minimal,
    "personalized": make_personalized,
    "personalized_memory": make_personalized_memory,
}
_BUILT: dict[str, ASGIApp] = {}


def __getattr__(name: str) -> ASGIApp:
    factory = _FACTORIES.get(name)
    if factory is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _BUILT:
        _BUILT[name] = factory()
    return _BUILT[name]
