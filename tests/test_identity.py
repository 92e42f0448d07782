"""Identity stitching through the middleware, on every store: login, devices, logout, erase,
fixation and over-merge defences, and exact counts under concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from personalize import (
    IdentityError,
    MemoryStore,
    PersonalizeMiddleware,
    SQLiteStore,
    get_visitor,
    identify,
)
from personalize.stores.base import ProfileStore
from tests.apps import BROWSER, SECRET
from tests.conftest import REDIS_URL

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)


def render(request: Request) -> Response:
    v = get_visitor(request)
    p = v.profile
    return HTMLResponse(f"<p>{v.id}|{v.user_id}|{p.visits}|{p.page_views}|{len(p.devices)}</p>")


async def page(request: Request) -> Response:
    return render(request)


async def login(request: Request) -> Response:
    try:
        await identify(request, request.query_params["user"], {"plan": "gold"})
    except IdentityError as exc:
        return PlainTextResponse(str(exc), status_code=400)
    return render(request)


async def logout(request: Request) -> Response:
    get_visitor(request).logout()
    return render(request)


async def forget(request: Request) -> Response:
    removed = await get_visitor(request).forget()
    return PlainTextResponse(",".join(sorted(removed)))


TRACKED = {
    "ticket": {"ticket_id": "t-attacker", "status": "open"},
    "order": {"order_id": "o-attacker", "products": ["p1"], "value": 99.0},
    "preference": {"promotions": "never"},
    "wishlist": {"product": "p1"},
}


async def track(request: Request) -> Response:
    name = request.path_params["name"]
    await get_visitor(request).track(name, TRACKED[name])
    return PlainTextResponse("tracked")


def fields(r: httpx.Response) -> list[str]:
    return r.text.removeprefix("<p>").removesuffix("</p>").split("|")


StoreFactory = Callable[[], ProfileStore]


@pytest.fixture(params=["memory", "sqlite", "redis", "redis_cluster"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    if request.param == "memory":
        shared = MemoryStore()
        yield lambda: shared
    elif request.param == "sqlite":
        yield lambda: SQLiteStore(tmp_path / "p.sqlite3")
    elif request.param == "redis_cluster":  # anonymous and known profiles on other slots
        from personalize.stores.redis import RedisStore

        url = request.getfixturevalue("redis_cluster").url
        prefix = request.getfixturevalue("redis_cluster_prefix")
        # 2 s per call, not 0.5: on a loaded machine (CI) a first connect to a node can take
        # longer, and these tests are about identity, not about an outage.
        yield lambda: RedisStore(url, prefix=prefix, timeout=2.0)
    else:
        from personalize.stores.redis import RedisStore

        prefix = request.getfixturevalue("redis_prefix")
        yield lambda: RedisStore(REDIS_URL, prefix=prefix, timeout=2.0)


def make_app(store: ProfileStore, **options: Any) -> PersonalizeMiddleware:
    app = Starlette(
        routes=[
            Route("/", page),
            Route("/p/{n}", page),
            Route("/login", login),
            Route("/logout", logout),
            Route("/forget", forget),
            Route("/track/{name}", track, methods=["POST"]),
        ]
    )
    options.setdefault("flush_interval", 0)
    return PersonalizeMiddleware(app, secret_key=SECRET, store=store, **options)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class Browser:
    """An httpx client on the app in the current loop, with a browser's User-Agent."""

    def __init__(self, app: Any, ua: str = IPHONE) -> None:
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://shop.test",
            headers={"user-agent": ua},
        )

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path)

    async def aclose(self) -> None:
        await self.client.aclose()


def test_login_merges_and_the_same_response_adapts(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        pz = make_app(store)
        b = Browser(pz)
        anon_id = fields(await b.get("/"))[0]
        await b.get("/p/1")
        await b.get("/p/2")
        r = await b.get("/login?user=ann")
        visitor_id, user, visits, views, devices = fields(r)
        assert (user, visits, views, devices) == ("ann", "1", "4", "1")
        assert visitor_id != anon_id  # the cookie is rotated at login
        assert "set-cookie" in r.headers and r.headers["cache-control"].startswith("private")
        after = fields(await b.get("/"))
        assert after[1:4] == ["ann", "1", "5"]
        known = await store.get("u:ann")
        assert known is not None and known.aliases == [anon_id]
        assert known.traits == {"plan": "gold"}
        tomb = await store.get(f"v:{anon_id}")
        assert tomb is not None and tomb.merged_into == "u:ann" and tomb.page_views == 0
        await b.aclose()
        await pz.aclose()

    run(scenario())


def test_two_devices_converge_on_one_known_profile(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        pz = make_app(store)
        phone, desktop = Browser(pz, IPHONE), Browser(pz, DESKTOP)
        for _ in range(2):
            await phone.get("/")
        for _ in range(3):
            await desktop.get("/")
        await phone.get("/login?user=ann")
        r = await desktop.get("/login?user=ann")
        assert fields(r)[1:] == ["ann", "2", "7", "2"]
        known = await store.get("u:ann")
        assert known is not None
        assert sorted(d["type"] for d in known.devices.values()) == ["desktop", "mobile"]
        # Merging the same anonymous id again adds nothing (idempotent).
        again, absorbed = await store.merge(
            f"v:{known.aliases[0]}", "u:ann", user_id="ann", now=pz.personalizer.now()
        )
        assert not absorbed and again.page_views == 7
        await phone.aclose()
        await desktop.aclose()
        await pz.aclose()

    run(scenario())


def test_logout_gives_a_fresh_unlinked_visitor(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        pz = make_app(make_store())
        b = Browser(pz)
        await b.get("/")
        await b.get("/login?user=ann")
        logged_out = fields(await b.get("/logout"))
        assert logged_out[1:4] == ["None", "1", "1"]
        nxt = fields(await b.get("/"))
        assert nxt[0] == logged_out[0] and nxt[1:4] == ["None", "1", "2"]
        await b.aclose()
        await pz.aclose()

    run(scenario())


def test_forget_erases_profile_and_aliases_everywhere(make_store: StoreFactory) -> None:
    async def scenario() -> None:
        store = make_store()
        pz = make_app(store)
        phone, desktop = Browser(pz, IPHONE), Browser(pz, DESKTOP)
        for b in (phone, desktop):
            await b.get("/")
            await b.get("/login?user=ann")
        removed = (await phone.get("/forget")).text.split(",")
        assert "u:ann" in removed and len(removed) == 3
        assert await store.keys() == []
        # The other device's login cookie is revoked: a new anonymous visitor, with a new
        # cookie, and nothing of ann is recreated.
        r = await desktop.get("/")
        assert fields(r)[1:4] == ["None", "1", "1"] and "set-cookie" in r.headers
        await pz.personalizer.profiles.flush()
        assert await store.keys() == [f"v:{fields(r)[0]}"]
        await phone.aclose()
        await desktop.aclose()
        await pz.aclose()

    run(scenario())


def test_fixation_attack_leaks_nothing(make_store: StoreFactory) -> None:
    """An attacker plants their own valid anonymous cookie in the victim's browser; the victim
    logs in; the attacker's browser must still see nothing of the victim."""
    clock_now = [1_800_000_000.0]

    async def scenario() -> None:
        import time

        clock_now[0] = time.time()
        pz = make_app(make_store(), clock=lambda: clock_now[0])
        attacker = Browser(pz, DESKTOP)
        attacker_id = fields(await attacker.get("/"))[0]
        planted = attacker.client.cookies["pz_visitor"]

        victim = Browser(pz, IPHONE)
        victim.client.cookies.set("pz_visitor", planted, domain="shop.test")
        assert fields(await victim.get("/"))[0] == attacker_id  # the plant worked
        for _ in range(5):
            await victim.get("/")
        assert fields(await victim.get("/login?user=victim"))[1] == "victim"

        seen = fields(await attacker.get("/"))
        assert seen[1] == "None"
        assert seen[3] == "1"  # only this very page view: nothing of the victim's history
        clock_now[0] += 3600  # after the grace period the old id is simply replaced
        r = await attacker.get("/")
        assert fields(r)[0] != attacker_id and fields(r)[1:4] == ["None", "1", "1"]
        assert "set-cookie" in r.headers
        await attacker.aclose()
        await victim.aclose()
        await pz.aclose()

    run(scenario())


def test_fixation_attack_writes_nothing_into_the_known_profile(make_store: StoreFactory) -> None:
    """The attacker's planted cookie, merged at the victim's login, sends a support ticket,
    an order, a preference and a custom event within the forwarding window: none of them
    reaches the victim's profile (page views in flight still do)."""

    async def scenario() -> None:
        store = make_store()
        pz = make_app(store)
        attacker = Browser(pz, DESKTOP)
        await attacker.get("/")
        planted = attacker.client.cookies["pz_visitor"]
        victim = Browser(pz, IPHONE)
        victim.client.cookies.set("pz_visitor", planted, domain="shop.test")
        await victim.get("/")
        assert fields(await victim.get("/login?user=victim"))[1] == "victim"
        for name in TRACKED:
            r = await attacker.client.post(f"/track/{name}")
            assert r.status_code == 200
        await attacker.get("/p/in-flight")  # a page view with the old cookie: forwarded
        await pz.personalizer.profiles.flush()
        known = await store.get("u:victim")
        assert known is not None
        assert known.facts == {} and known.events == [] and known.stated == {}
        assert known.page_views == 4  # the attacker's first view, the victim's two, in flight
        await attacker.aclose()
        await victim.aclose()
        await pz.aclose()

    run(scenario())


@pytest.mark.parametrize(
    "junk", ["", "null", "undefined", "0", "-1", "anonymous", "guest", "NULL", " none ", "x" * 300]
)
def test_junk_user_ids_are_refused(junk: str) -> None:
    store = MemoryStore()
    client = TestClient(make_app(store), headers=BROWSER)
    client.headers["user-agent"] = IPHONE
    client.get("/")
    r = client.get("/login", params={"user": junk})
    assert r.status_code == 400
    assert not [k for k in asyncio.run(store.keys()) if k.startswith("u:")]


def test_configurable_junk_ids_and_alias_cap() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        pz = make_app(store, junk_user_ids={"admin"}, max_aliases=2)
        browsers = [Browser(pz) for _ in range(3)]
        for b in browsers:
            await b.get("/")
        assert (await browsers[0].get("/login?user=admin")).status_code == 400
        for b in browsers:
            await b.get("/login?user=kiosk")
        known = await store.get("u:kiosk")
        assert known is not None and len(known.aliases) == 2
        assert known.page_views == 2 + 2 + 1  # two merged histories (2 each) + third login view
        for b in browsers:
            await b.aclose()

    run(scenario())


def test_never_merges_two_known_profiles() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        pz = make_app(store)
        b = Browser(pz)
        await b.get("/")
        await b.get("/login?user=ann")
        await b.get("/")
        r = fields(await b.get("/login?user=bob"))
        assert r[1:4] == ["bob", "1", "1"]
        ann, bob = await store.get("u:ann"), await store.get("u:bob")
        assert ann is not None and ann.page_views == 3
        assert bob is not None and bob.aliases == []
        await b.aclose()

    run(scenario())


def test_identify_without_middleware_or_for_bots_is_clear() -> None:
    client = TestClient(make_app(MemoryStore()), headers=BROWSER)
    r = client.get("/login?user=ann", headers={"user-agent": "Googlebot/2.1"})
    assert r.status_code == 400 and "cannot be identified" in r.text


def test_two_hundred_concurrent_requests_with_login_in_the_middle(
    make_store: StoreFactory,
) -> None:
    async def scenario() -> None:
        store = make_store()
        pz = make_app(store, flush_interval=0.002)
        phone, desktop = Browser(pz, IPHONE), Browser(pz, DESKTOP)
        await asyncio.gather(phone.get("/"), desktop.get("/"))

        async def burst(b: Browser, n: int) -> None:
            await asyncio.gather(*(b.get(f"/p/{i}") for i in range(n)))

        # Logins race with page views that still carry the anonymous cookies.
        await asyncio.gather(
            burst(phone, 49),
            burst(desktop, 49),
            phone.get("/login?user=u1"),
            desktop.get("/login?user=u1"),
        )
        await asyncio.gather(burst(phone, 50), burst(desktop, 48))
        await pz.personalizer.profiles.flush()
        known = await store.get("u:u1")
        assert known is not None
        assert known.page_views == 200
        assert len(known.aliases) == 2 and len(known.devices) == 2
        await phone.aclose()
        await desktop.aclose()
        await pz.aclose()

    run(scenario())
