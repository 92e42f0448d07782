"""Actions that must write while the store is unreachable (login, erasure, opt-out, the /me
buttons) answer 503 with Retry-After: a page for browsers, JSON for API clients; never a 500.

Redis is made unreachable through the TCP proxy of tests/test_redis_outage.py; SQLite fails
as it does when another process holds the write lock past the store's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx2 as httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from personalize import (
    PersonalizeMiddleware,
    SQLiteStore,
    StoreUnavailableError,
    get_visitor,
    identify,
)
from personalize.stores.base import ProfileStore
from tests.apps import SECRET
from tests.conftest import REDIS_URL
from tests.pages_app import csrf_token
from tests.test_redis_outage import UA, Proxy

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
JSON = {"accept": "application/json"}


async def page(request: Request) -> Response:
    visitor = get_visitor(request)
    return HTMLResponse(f"<p>{visitor.id}|{visitor.profile.page_views}</p>")


async def login(request: Request) -> Response:
    await identify(request, "ann", traits={"plan": "pro"})  # nothing caught: the middleware
    return HTMLResponse("<p>logged in</p>")


async def forget(request: Request) -> Response:
    await get_visitor(request).forget()
    return JSONResponse({"erased": True})


async def opt_out(request: Request) -> Response:
    await get_visitor(request).opt_out()
    return JSONResponse({"opted_out": True})


async def login_as_the_readme_shows(request: Request) -> Response:
    try:
        await identify(request, "ann")
    except StoreUnavailableError:  # the profile store is down: nothing changed, try again
        return HTMLResponse("<p>Please try again</p>", 503, {"retry-after": "5"})
    return HTMLResponse("<p>logged in</p>")


def site(store: ProfileStore) -> Starlette:
    app = Starlette(
        routes=[
            Route("/", page),
            Route("/login", login),
            Route("/forget", forget),
            Route("/opt-out", opt_out),
            Route("/readme-login", login_as_the_readme_shows),
        ]
    )
    # As the README mounts it: inside Starlette's error handling, which would answer 500.
    app.add_middleware(PersonalizeMiddleware, secret_key=SECRET, store=store, flush_interval=0)
    return app


Outage = Callable[[], contextlib.AbstractAsyncContextManager[None]]


@contextlib.asynccontextmanager
async def redis_store(prefix: str) -> AsyncIterator[tuple[ProfileStore, Outage]]:
    from personalize.stores.redis import RedisStore

    target = urlparse(REDIS_URL)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    db = target.path.lstrip("/") or "0"
    url = f"redis://127.0.0.1:{proxy.listen_port}/{db}"
    store = RedisStore(url, prefix=prefix, timeout=0.2, retry_after=0.2)

    @contextlib.asynccontextmanager
    async def outage() -> AsyncIterator[None]:
        await proxy.cut()
        yield
        await proxy.restore()

    yield store, outage
    await proxy.cut()


@contextlib.asynccontextmanager
async def sqlite_store(path: Path) -> AsyncIterator[tuple[ProfileStore, Outage]]:
    store = SQLiteStore(path, timeout=0.2)

    @contextlib.asynccontextmanager
    async def outage() -> AsyncIterator[None]:
        # Another process holding the write lock longer than the store waits for it.
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
        holder.close()

    yield store, outage


@pytest.mark.parametrize("backend", ["redis", "sqlite"])
def test_writes_during_an_outage_answer_503_with_retry_after(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async def scenario() -> None:
        if backend == "redis":
            context = redis_store(request.getfixturevalue("redis_prefix"))
        else:
            context = sqlite_store(tmp_path / "p.sqlite3")
        async with context as (store, outage):
            app = site(store)
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://shop.test",
                headers={"user-agent": UA},
            )
            assert (await client.get("/")).status_code == 200
            token = csrf_token((await client.get("/_personalize/me", headers=HTML)).text)
            me_form: dict[str, Any] = {"data": {"csrf_token": token, "confirm": "yes"}}
            async with outage():
                for method, path, extra in [
                    ("GET", "/login", {}),
                    ("GET", "/forget", {}),
                    ("GET", "/opt-out", {}),
                    ("POST", "/_personalize/me/erase", me_form),
                    ("POST", "/_personalize/me/opt-out", me_form),
                ]:
                    for accept, kind in ((HTML, "text/html"), (JSON, "application/json")):
                        r = await client.request(method, path, headers=accept, **extra)
                        assert r.status_code == 503, (path, r.status_code, r.text[:200])
                        assert r.headers["retry-after"] == "5"
                        assert r.headers["content-type"].startswith(kind)
                        assert "no-store" in r.headers["cache-control"]
                r = await client.get("/readme-login")
                assert (r.status_code, r.headers["retry-after"]) == (503, "5")
                assert (await client.get("/")).status_code == 200  # pages go on
            # Once the store is back, the same actions work.
            for _ in range(50):
                r = await client.get("/login")
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert r.status_code == 200 and r.text == "<p>logged in</p>"
            profile = await store.get("u:ann")
            assert profile is not None and profile.traits["plan"] == "pro"
            await client.aclose()
            await store.close()

    asyncio.run(scenario())
