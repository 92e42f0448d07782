"""Which cookies still read a known profile after a logout or an erasure, on every store; and
that an erasure leaves nothing in the SQLite file or the Redis keyspace that names the user or
links a browser to them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from personalize import MemoryStore, PersonalizeMiddleware, SQLiteStore, get_visitor
from personalize.profiles.cookie import CookieState, VisitorCookie
from personalize.profiles.profile import Profile
from personalize.profiles.revocation import MAX_REVOKED, admits, revoke
from personalize.stores.base import ProfileStore
from tests.apps import SECRET
from tests.conftest import REDIS_URL

UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 "
    "Safari/537.36"
)


def render(request: Request) -> Response:
    v = get_visitor(request)
    return HTMLResponse(f"<p>{v.id}|{v.user_id}|{v.profile.page_views}</p>")


async def page(request: Request) -> Response:
    return render(request)


async def login(request: Request) -> Response:
    await get_visitor(request).identify("bob", {"plan": "gold"})
    return render(request)


async def logout(request: Request) -> Response:
    get_visitor(request).logout(everywhere="everywhere" in request.query_params)
    return RedirectResponse("/", status_code=303)  # not a page: the revocation still lands


async def forget(request: Request) -> Response:
    await get_visitor(request).forget()
    return render(request)


async def opt_out(request: Request) -> Response:
    await get_visitor(request).opt_out()
    return render(request)


async def shop(request: Request) -> Response:
    """A page with a decided, capped slot (a session pick, caps and, with the holdout on, an
    exposure in the impact log) and an order (an order key in the impact log)."""
    visitor = get_visitor(request)
    await visitor.decide("hero")
    await visitor.track("order", {"order_id": f"o-{visitor.id}", "products": ["p1"], "value": 9})
    return render(request)


# A holdout, a capped variant and a slot decided per session: per-visitor decision state.
CONTENT = """\
holdout: 0.2
slots:
  hero:
    variants:
      - {id: welcome, html: Welcome}
      - {id: picked, html: Picked for you, cap: {views: 5, rest_hours: 24}}
    rules:
      - when: {attribute: hour, operator: between, value: [0, 23]}
        variants: [picked]
    default: [welcome]
"""


def make_app(store: ProfileStore, content: Path | None = None) -> PersonalizeMiddleware:
    routes = [
        Route("/", page),
        Route("/login", login),
        Route("/logout", logout, methods=["POST"]),
        Route("/forget", forget),
        Route("/shop", shop),
        Route("/opt-out", opt_out),
    ]
    return PersonalizeMiddleware(
        Starlette(routes=routes), secret_key=SECRET, store=store, flush_interval=0, content=content
    )


StoreFactory = Callable[[], ProfileStore]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    if request.param == "memory":
        yield MemoryStore
    elif request.param == "sqlite":
        yield lambda: SQLiteStore(tmp_path / "p.sqlite3")
    else:
        from personalize.stores.redis import RedisStore

        prefix = request.getfixturevalue("redis_prefix")
        yield lambda: RedisStore(REDIS_URL, prefix=prefix)


class Browser:
    def __init__(self, app: Any, cookie: str | None = None) -> None:
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://shop.test",
            headers={"user-agent": UA},
        )
        if cookie is not None:
            self.client.cookies.set("pz_visitor", cookie, domain="shop.test")

    async def get(self, path: str) -> list[str]:
        r = await self.client.get(path)
        assert r.status_code == 200, r.text
        return r.text.removeprefix("<p>").removesuffix("</p>").split("|")

    async def post(self, path: str) -> None:
        r = await self.client.post(path)
        assert r.status_code == 303

    @property
    def cookie(self) -> str:
        return str(self.client.cookies["pz_visitor"])

    def state(self) -> CookieState:
        state = VisitorCookie(SECRET).load(self.cookie).state
        assert state is not None
        return state

    async def aclose(self) -> None:
        await self.client.aclose()


def test_a_logout_revokes_that_browsers_login_cookie_and_every_copy_of_it(
    make_store: StoreFactory,
) -> None:
    async def scenario() -> None:
        store = make_store()
        pz = make_app(store)
        shared, phone = Browser(pz), Browser(pz)
        await shared.get("/")
        assert (await shared.get("/login"))[1] == "bob"
        await phone.get("/login")
        copy = Browser(pz, shared.cookie)  # someone copied the cookie of the shared computer
        assert (await copy.get("/"))[1] == "bob"
        await shared.post("/logout")
        assert (await shared.get("/"))[1] == "None"
        after = await copy.get("/")
        assert after[1] == "None" and after[2] == "1"  # a new anonymous visitor
        assert copy.state().user_id is None  # and its cookie says so
        assert (await phone.get("/"))[1] == "bob"  # the user's other devices stay logged in
        await asyncio.gather(*(b.aclose() for b in (shared, phone, copy)))
        await pz.aclose()

    asyncio.run(scenario())


def test_a_logout_everywhere_revokes_every_login_cookie_of_the_user(
    make_store: StoreFactory,
) -> None:
    async def scenario() -> None:
        store = make_store()
        pz = make_app(store)
        laptop, phone = Browser(pz), Browser(pz)
        await laptop.get("/login")
        await phone.get("/login")
        await laptop.post("/logout?everywhere=1")
        assert (await phone.get("/"))[1] == "None"
        # A new login gets a cookie of the new epoch, which reads the profile again.
        again = await phone.get("/login")
        known = await store.get("u:bob")
        assert known is not None and again[1] == "bob"
        assert phone.state().epoch == known.cookie_epoch != laptop.state().epoch
        assert (await phone.get("/"))[1] == "bob"
        await laptop.aclose()
        await phone.aclose()
        await pz.aclose()

    asyncio.run(scenario())


def test_an_old_cookie_after_erasure_is_a_new_visitor_and_recreates_nothing(
    make_store: StoreFactory,
) -> None:
    async def scenario() -> None:
        store = make_store()
        pz = make_app(store)
        first, other = Browser(pz), Browser(pz)
        await first.get("/login")  # the browser's first request is the login
        await other.get("/")
        await other.get("/login")
        copy = Browser(pz, first.cookie)
        await first.get("/forget")
        for b in (copy, other):
            seen = await b.get("/")
            assert seen[1] == "None" and seen[2] == "1"
            await b.get("/")
        await pz.personalizer.profiles.flush()
        keys = await store.keys()
        assert "u:bob" not in keys
        for key in keys:  # only the fresh anonymous visitors' own profiles
            profile = await store.get(key)
            assert profile is not None and profile.merged_into is None
            assert profile.page_views == 2 and not profile.aliases
        await asyncio.gather(*(b.aclose() for b in (first, other, copy)))
        await pz.aclose()

    asyncio.run(scenario())


async def erase_everything_about_bob(
    store: ProfileStore, content: Path, erase: str = "/forget"
) -> set[str]:
    """Three browsers (one whose first request is the login) shopping before and after their
    login, a copied cookie, erasure, and the old cookies coming back; returns every id that
    linked a browser to bob."""
    pz = make_app(store, content)
    first, second, third = Browser(pz), Browser(pz), Browser(pz)
    ids: set[str] = set()
    first_anonymous = (await first.get("/login"))[0]  # the login cookie's device id
    ids.add(first_anonymous)
    await first.get("/shop")
    ids.add((await second.get("/shop"))[0])  # caps, a pick and impact as an anonymous id
    await second.get("/")
    ids.add((await second.get("/login"))[0])
    await second.get("/shop")
    ids.add((await third.get("/"))[0])
    ids.add((await third.get("/login"))[0])
    await third.get("/")
    copy = Browser(pz, first.cookie)
    personalizer = pz.personalizer
    await personalizer.profiles.flush()
    await personalizer.state.flush()
    await personalizer.impact.flush()
    state = personalizer.state.store
    assert await state.keys("caps:u:bob") and await state.keys("pick:u:bob|")
    assert await state.keys("pz:impact:{u:bob}:o:")  # the scan below would find them
    await first.get(erase)
    for b in (second, third, copy):
        assert (await b.get("/shop"))[1] == "None"
    await personalizer.profiles.flush()
    await asyncio.gather(*(b.aclose() for b in (first, second, third, copy)))
    await pz.aclose()
    return ids


@pytest.fixture
def content(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("content")
    (folder / "hero.yaml").write_text(CONTENT, encoding="utf-8")
    return folder


@pytest.mark.parametrize("erase", ["/forget", "/opt-out"])
def test_erasure_leaves_no_link_in_the_sqlite_file(
    tmp_path: Path, content: Path, erase: str
) -> None:
    store = SQLiteStore(tmp_path / "p.sqlite3")
    ids = asyncio.run(erase_everything_about_bob(store, content, erase))
    assert len(ids) == 5
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir())
    assert b"u:bob" not in raw and b"gold" not in raw
    # The new visitors' own decision state: picks, and caps unless each of the three was
    # in the holdout (20 %: the default shows, uncapped), with their impact records.
    assert b"pick:" in raw and (b"caps:" in raw or b"pz:impact:" in raw)
    for visitor_id in ids:
        assert visitor_id.encode() not in raw, visitor_id


def test_erasure_leaves_no_link_in_the_redis_keyspace(redis_prefix: str, content: Path) -> None:
    import redis

    from personalize.stores.redis import RedisStore

    store = RedisStore(REDIS_URL, prefix=redis_prefix)
    ids = asyncio.run(erase_everything_about_bob(store, content))
    sync = redis.Redis.from_url(REDIS_URL)
    keys = list(sync.scan_iter(match=f"{redis_prefix}*"))
    everything = b"".join(keys) + b"".join(sync.dump(k) or b"" for k in keys)
    sync.close()
    # The new visitors' own (caps unless each was held out: see above).
    assert b"pick:" in everything and (b"caps:" in everything or b"pz:impact:" in everything)
    assert b"u:bob" not in everything and b"gold" not in everything
    for visitor_id in ids:
        assert visitor_id.encode() not in everything, visitor_id


def test_erasure_leaves_no_decision_state_in_memory(content: Path) -> None:
    from personalize.stores.state_memory import MemoryStateStore

    class Kept(MemoryStore):
        state = MemoryStateStore()

        def state_store(self) -> MemoryStateStore:
            return self.state  # still readable after the site closes it

    async def scenario() -> None:
        store = Kept()
        ids = await erase_everything_about_bob(store, content)
        keys = [k for p in ("caps:", "pick:", "pz:impact:") for k in await store.state.keys(p)]
        # The new visitors' own (caps unless each was held out: see above).
        assert any(k.startswith(("caps:", "pz:impact:")) for k in keys)
        for name in ("u:bob", *ids):
            assert not [k for k in keys if name in k], name

    asyncio.run(scenario())


def test_past_the_alias_cap_a_login_leaves_no_tombstone_that_names_the_user() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        for n in range(3):
            await store.merge(f"v:a{n}", "u:bob", user_id="bob", max_aliases=2)
        known = await store.get("u:bob")
        assert known is not None and known.aliases == ["a0", "a1"]
        assert await store.get("v:a2") is None
        assert sorted(await store.erase("u:bob")) == ["u:bob", "v:a0", "v:a1"]
        assert await store.keys() == []

    asyncio.run(scenario())


def test_revoked_device_ids_stay_few() -> None:
    profile = Profile(key="u:bob")
    signed = profile.cookie_epoch
    for n in range(MAX_REVOKED):
        revoke(profile, f"d{n}")
    assert profile.cookie_epoch == signed and len(profile.revoked) == MAX_REVOKED
    revoke(profile, "one-more")  # a new epoch instead of a longer list
    assert profile.cookie_epoch != signed and profile.revoked == []
    assert not admits(profile, "d0", signed) and not admits(profile, "other", signed)
    assert admits(profile, "other", profile.cookie_epoch)


def test_a_cookie_from_before_an_erasure_stays_out_when_the_user_comes_back(
    make_store: StoreFactory,
) -> None:
    """Erased, then logged in again (or sent an order): the profile is a new one, and a
    cookie copied before the erasure does not read it."""

    async def scenario() -> None:
        store = make_store()
        pz = make_app(store)
        shared = Browser(pz)
        await shared.get("/login")
        copy = Browser(pz, shared.cookie)
        await shared.get("/forget")
        again = Browser(pz)
        assert (await again.get("/login"))[1] == "bob"  # bob is back, on another browser
        assert (await again.get("/"))[1] == "bob"
        assert (await copy.get("/"))[1] == "None"
        await asyncio.gather(*(b.aclose() for b in (shared, copy, again)))
        await pz.aclose()

    asyncio.run(scenario())


def test_a_cookie_with_a_forged_epoch_is_not_ours() -> None:
    jar = VisitorCookie(SECRET)
    for epoch in (-1, 2**31, "1", 1.5, True):
        value = jar._current.dumps({"v": "d1", "u": "bob", "e": epoch})
        assert jar.load(value).state is None, epoch
    value = jar.dump(CookieState("d1", user_id="bob", epoch=3))
    assert jar.load(value).state == CookieState("d1", user_id="bob", epoch=3)


def test_an_erasure_that_fails_midway_can_be_retried_and_leaves_nothing(content: Path) -> None:
    from personalize.exceptions import StoreUnavailableError
    from personalize.stores.state_memory import MemoryStateStore

    class FailsOnce(MemoryStateStore):
        fails = 1

        async def delete(self, keys: Any) -> int:
            if self.fails:
                self.fails -= 1
                raise StoreUnavailableError("state store away")
            return await super().delete(keys)

    state = FailsOnce()

    class Kept(MemoryStore):
        def state_store(self) -> MemoryStateStore:
            return state

    async def scenario() -> None:
        pz = make_app(Kept(), content)
        browser = Browser(pz)
        anonymous = (await browser.get("/shop"))[0]
        await browser.get("/login")
        await browser.get("/shop")
        personalizer = pz.personalizer
        await personalizer.state.flush()
        await personalizer.impact.flush()
        with pytest.raises(StoreUnavailableError):
            await personalizer.erase("u:bob")
        assert await personalizer.profiles.read("u:bob") is not None  # nothing half-erased
        assert await personalizer.erase("u:bob")
        keys = [k for p in ("caps:", "pick:", "pz:impact:{") for k in await state.keys(p)]
        assert not [k for k in keys if "u:bob" in k or anonymous in k], keys
        await browser.aclose()
        await pz.aclose()

    asyncio.run(scenario())
