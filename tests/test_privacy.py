"""The visitor's rights as behaviour: consent modes, GPC, opt-out, erasure, and no stored IP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from personalize import MemoryStore, PersonalizeMiddleware, SQLiteStore, get_visitor
from personalize.profiles.cookie import VisitorCookie
from personalize.stores.base import ProfileStore
from tests.apps import SECRET
from tests.conftest import REDIS_URL, shared_data_path

UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


async def page(request: Request) -> Response:
    v = get_visitor(request)
    return HTMLResponse(
        f"<p>{v.id}|{v.mode}|{v.context.device.type}|{v.profile.page_views}|{v.user_id}</p>"
    )


async def opt_out(request: Request) -> Response:
    await get_visitor(request).opt_out()
    return await page(request)


async def opt_in(request: Request) -> Response:
    get_visitor(request).opt_in()
    return await page(request)


async def login(request: Request) -> Response:
    await get_visitor(request).identify("ann")
    return await page(request)


async def forget(request: Request) -> Response:
    await get_visitor(request).forget()
    return await page(request)


def app(store: ProfileStore, **options: Any) -> PersonalizeMiddleware:
    routes = [
        Route("/", page),
        Route("/opt-out", opt_out),
        Route("/opt-in", opt_in),
        Route("/login", login),
        Route("/forget", forget),
    ]
    options.setdefault("flush_interval", 0)
    return PersonalizeMiddleware(
        Starlette(routes=routes), secret_key=SECRET, store=store, **options
    )


def fields(r: httpx.Response) -> list[str]:
    return r.text.removeprefix("<p>").removesuffix("</p>").split("|")


def client(pz: PersonalizeMiddleware, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=pz, client=("203.0.113.77", 4242)),
        base_url="http://shop.test",
        headers={"user-agent": UA, **headers},
    )


def cookie_state(r: httpx.Response) -> Any:
    value = r.cookies.get("pz_visitor")
    return None if value is None else VisitorCookie(SECRET).load(value).state


def test_global_privacy_control_means_context_only_for_good() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        pz = app(store)
        async with client(pz, **{"sec-gpc": "1"}) as c:
            r = await c.get("/")
            # Still personalized from the request; nothing known, nothing remembered.
            assert fields(r)[:4] == ["None", "context", "mobile", "0"]
            state = cookie_state(r)
            assert state is not None and state.opted_out and state.visitor_id == ""
            del c.headers["sec-gpc"]  # the marker cookie keeps them opted out
            r = await c.get("/")
            assert fields(r)[:2] == ["None", "context"]
            assert "set-cookie" not in r.headers
            assert fields(await c.get("/login"))[4] == "None"  # login works, nothing stitched
        assert await store.keys() == []

    asyncio.run(scenario())


def test_opt_out_erases_and_sticks_and_opt_in_starts_afresh() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        pz = app(store)
        async with client(pz) as c:
            for _ in range(3):
                await c.get("/")
            assert len(await store.keys()) == 1
            r = await c.get("/opt-out")
            assert fields(r)[:2] == ["None", "context"] and cookie_state(r).opted_out
            assert await store.keys() == []
            for _ in range(2):
                assert fields(await c.get("/"))[:2] == ["None", "context"]
            assert await store.keys() == []
            r = await c.get("/opt-in")
            visitor_id = fields(r)[0]
            assert fields(r)[1] == "full" and cookie_state(r).consent
            await c.get("/")
            assert await store.keys() == [f"v:{visitor_id}"]

    asyncio.run(scenario())


def test_consent_required_persists_nothing_until_consent() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        pz = app(store, consent="required")
        async with client(pz) as c:
            r = await c.get("/")
            assert fields(r)[:3] == ["None", "context", "mobile"]
            assert "set-cookie" not in r.headers  # no cookie at all before consent
            await c.get("/login")
            assert await store.keys() == []
            r = await c.get("/opt-in")  # the consent banner's "accept"
            assert cookie_state(r).consent and fields(r)[1] == "full"
            r = await c.get("/")
            assert fields(r)[1:4] == ["full", "mobile", "2"]  # the consent page view counted
            assert len(await store.keys()) == 1
            r = await c.get("/forget")  # erasure keeps the consent, with a fresh id
            assert cookie_state(r).consent and await store.keys() == []

    asyncio.run(scenario())


def test_consent_option_is_validated() -> None:
    from personalize import ConfigurationError

    with pytest.raises(ConfigurationError, match="consent"):
        app(MemoryStore(), consent="maybe")  # type: ignore[arg-type]


STORES = ["memory", "sqlite", "redis"]


@pytest.mark.parametrize("kind", STORES)
def test_no_ip_address_is_stored_anywhere(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Browse, log in, send events from known IPs (also through a trusted proxy, with geo),
    then scan every byte every store holds for those addresses."""
    ips = ["81.2.69.142", "2.125.160.216", "203.0.113.77", "127.0.0.1"]
    geo_db = shared_data_path("maxmind-test-db", "test-data", "GeoIP2-City-Test.mmdb")

    async def scenario() -> bytes:
        store: ProfileStore
        if kind == "memory":
            store = MemoryStore()
        elif kind == "sqlite":
            store = SQLiteStore(tmp_path / "p.sqlite3")
        else:
            from personalize.stores.redis import RedisStore

            store = RedisStore(REDIS_URL, prefix=request.getfixturevalue("redis_prefix"))
        pz = app(store, geoip_db=geo_db, trusted_proxies=["203.0.113.0/24"])
        async with client(pz, **{"x-forwarded-for": "81.2.69.142"}) as c:
            r = await c.get("/")
            assert fields(r)[1] == "full"
            await c.get("/?utm_source=news&utm_medium=email")
            await c.get("/login")
            c.headers["x-forwarded-for"] = "2.125.160.216, 203.0.113.9"
            await c.get("/")
        await pz.personalizer.profiles.flush()
        dump = b""
        for key in await store.keys():
            profile = await store.get(key)
            assert profile is not None
            dump += profile.to_json()
        if kind == "memory":
            dump += b"".join(store._data.values())  # type: ignore[attr-defined]
        await pz.aclose()
        if kind == "sqlite":
            for f in tmp_path.iterdir():
                dump += f.read_bytes()
        assert b"GB" in dump  # geo was used...
        return dump

    dump = asyncio.run(scenario())
    for ip in ips:
        assert ip.encode() not in dump, f"{ip} was stored"


def test_erasure_leaves_no_trace_in_sqlite_or_redis(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """After forget(), neither the keys nor the ids appear anywhere in the SQLite file, its
    WAL, or Redis."""
    from personalize.stores.redis import RedisStore

    prefix = request.getfixturevalue("redis_prefix")

    async def run(store: ProfileStore) -> set[str]:
        pz = app(store)
        ids: set[str] = set()
        async with client(pz) as c, client(pz) as other:
            ids.add(fields(await c.get("/"))[0])
            ids.add(fields(await other.get("/"))[0])
            await other.get("/login")  # a second device merged into ann
            await c.get("/")
            ids.add(fields(await c.get("/login"))[0])
            await c.get("/")
            await c.get("/forget")
        await pz.personalizer.profiles.flush()
        await pz.aclose()
        return ids

    sqlite_ids = asyncio.run(run(SQLiteStore(tmp_path / "p.sqlite3")))
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir())
    for visitor_id in sqlite_ids:
        assert visitor_id.encode() not in raw
    assert b"u:ann" not in raw

    import redis

    redis_ids = asyncio.run(run(RedisStore(REDIS_URL, prefix=prefix)))
    sync = redis.Redis.from_url(REDIS_URL)
    keys = list(sync.scan_iter(match=f"{prefix}*"))
    values = b"".join(sync.dump(k) or b"" for k in keys)
    sync.close()
    for visitor_id in redis_ids:
        assert visitor_id.encode() not in b"".join(keys) + values
    assert not any(b"u:ann" in k for k in keys)
