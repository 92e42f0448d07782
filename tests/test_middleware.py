"""The middleware through a tiny Starlette app and TestClient, as a user would mount it."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2 as httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.responses import PlainTextResponse
from starlette.testclient import TestClient

from personalize import MemoryStore, MiddlewareMissingError, PersonalizeMiddleware, get_visitor
from personalize.exceptions import StoreUnavailableError
from personalize.profiles.cookie import CookieState, VisitorCookie
from tests.apps import BROWSER, SECRET, make_app

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
COOKIE = "pz_visitor"


def fields(response: httpx.Response) -> list[str]:
    return response.text.removeprefix("<p>").removesuffix("</p>").split("|")


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_new_visitor_gets_a_signed_cookie_with_safe_attributes() -> None:
    client = TestClient(make_app(), headers=BROWSER)
    r = client.get("/")
    assert r.status_code == 200
    header = r.headers["set-cookie"]
    assert header.startswith(f"{COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/", f"Max-Age={365 * 24 * 3600}"):
        assert attribute in header
    assert "Secure" not in header
    value = r.cookies[COOKIE]
    state = VisitorCookie(SECRET).load(value).state
    assert state is not None and state.visitor_id == fields(r)[0]


def test_secure_on_https_and_configurable_name_and_max_age() -> None:
    client = TestClient(
        make_app(cookie_name="vid", cookie_max_age=3600),
        base_url="https://testserver",
        headers=BROWSER,
    )
    header = client.get("/").headers["set-cookie"]
    assert header.startswith("vid=") and "; Secure" in header and "Max-Age=3600" in header


def test_returning_visitor_keeps_id_and_gets_no_new_cookie() -> None:
    client = TestClient(make_app(), headers=BROWSER)
    first = client.get("/")
    second = client.get("/")
    assert "set-cookie" not in second.headers
    assert fields(first)[0] == fields(second)[0]
    assert fields(second)[3:] == ["1", "2"]  # one visit, two page views (this one included)


@pytest.mark.parametrize(
    "cookie",
    [
        "garbage",
        "",
        "a.b.c",
        "x" * 4000,
        '"quoted"',
        "%00%ff",
        "eyJ2IjoiYWJjIn0.aGVsbG8.c2lnbmF0dXJl",
    ],
)
def test_garbage_or_tampered_cookie_means_new_visitor(cookie: str) -> None:
    client = TestClient(make_app(), headers=BROWSER)
    client.cookies.set(COOKIE, cookie)
    r = client.get("/")
    assert r.status_code == 200
    assert "set-cookie" in r.headers
    assert fields(r)[3:] == ["1", "1"]


def test_tampered_user_binding_is_rejected() -> None:
    client = TestClient(make_app(), headers=BROWSER)
    client.get("/")
    value = client.cookies[COOKIE]
    forged = VisitorCookie("attacker-secret-0123456789abcdefgh").dump(
        CookieState(visitor_id="victim", user_id="admin")
    )
    client.cookies.set(COOKIE, forged)
    r = client.get("/")
    assert fields(r)[0] not in {"victim", value}
    assert "set-cookie" in r.headers


def test_key_rotation_reissues_with_the_new_key_and_keeps_the_visitor() -> None:
    old = "the-old-secret-key-0123456789abcdef"
    old_client = TestClient(make_app(secret_key=old), headers=BROWSER)
    visitor_id = fields(old_client.get("/"))[0]
    cookie = old_client.cookies[COOKIE]

    store = MemoryStore()
    rotated = TestClient(make_app(store=store, secret_key=[SECRET, old]), headers=BROWSER)
    rotated.cookies.set(COOKIE, cookie)
    r = rotated.get("/")
    assert fields(r)[0] == visitor_id
    assert "set-cookie" in r.headers
    new_cookie = r.cookies[COOKIE]
    assert VisitorCookie(SECRET).load(new_cookie).state == CookieState(visitor_id)
    # With the new cookie there is nothing more to rotate.
    rotated.cookies.clear()
    rotated.cookies.set(COOKIE, new_cookie)
    assert "set-cookie" not in rotated.get("/").headers


def test_expired_cookie_means_new_visitor() -> None:
    import time

    clock = Clock(time.time())  # itsdangerous stamps cookies with the real time
    client = TestClient(make_app(clock=clock, cookie_max_age=3600), headers=BROWSER)
    first = fields(client.get("/"))[0]
    assert fields(client.get("/"))[0] == first
    clock.now = time.time() + 3601
    assert fields(client.get("/"))[0] != first


def test_personalized_responses_are_private_and_vary_on_cookie() -> None:
    client = TestClient(make_app(), headers=BROWSER)
    client.get("/")
    r = client.get("/cached")
    assert r.headers["cache-control"] == "private, max-age=60"
    assert "Cookie" in r.headers["vary"]
    # A page that does not read the visitor is left alone (no cookie to set either).
    r = client.get("/plain")
    assert r.headers["cache-control"] == "public, max-age=60"
    assert "vary" not in r.headers
    # A response that sets the cookie is never shared, personalized or not.
    r = TestClient(make_app(), headers=BROWSER).get("/plain")
    assert "set-cookie" in r.headers
    assert r.headers["cache-control"] == "private, max-age=60"


def test_excluded_paths_and_non_http_scopes_pass_through() -> None:
    client = TestClient(make_app(), headers=BROWSER)
    r = client.get("/static/x.css")
    assert "set-cookie" not in r.headers
    assert r.status_code == 500 and "PersonalizeMiddleware must be installed" in r.text
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_text() == "hello"
    with TestClient(make_app(), headers=BROWSER) as lifespan_client:  # lifespan passes through too
        assert lifespan_client.get("/").status_code == 200


def test_without_exclusions_every_path_is_personalized_and_patterns_are_honoured() -> None:
    none = TestClient(make_app(exclude=[]), headers=BROWSER)
    r = none.get("/static/x.css")  # no pattern: the static path is a page like any other
    assert "set-cookie" in r.headers and r.headers["cache-control"].startswith("private")
    assert r.text == "visitor present"
    own = TestClient(make_app(exclude=["/health", "/static/x.c?s"]), headers=BROWSER)
    r = own.get("/static/x.css")
    assert "set-cookie" not in r.headers and "PersonalizeMiddleware must be installed" in r.text
    assert "set-cookie" in own.get("/").headers  # (the other paths are pages as before)


def test_get_visitor_without_the_middleware_says_what_to_do() -> None:
    from starlette.requests import Request

    request = Request({"type": "http", "method": "GET", "path": "/", "headers": []})
    with pytest.raises(MiddlewareMissingError, match="PersonalizeMiddleware must be installed"):
        get_visitor(request)


def test_profile_counts_only_successful_html_get_page_views() -> None:
    store = MemoryStore()
    client = TestClient(make_app(store=store), headers=BROWSER)
    client.get("/")
    client.get("/shoes/red")
    client.get("/api")  # JSON, not a page view
    client.post("/api")  # not a GET
    client.get("/missing")  # 404
    r = client.get("/shoes/blue")
    assert fields(r)[3:] == ["1", "3"]
    key = f"v:{fields(r)[0]}"
    stored = asyncio.run(store.get(key))
    assert stored is not None and stored.page_views == 3


def test_sessions_and_affinities_through_requests() -> None:
    clock = Clock()
    store = MemoryStore()
    client = TestClient(
        make_app(store=store, clock=clock, categories={"/shoes/*": "shoes"}), headers=BROWSER
    )
    client.get("/", headers={"referer": "https://www.google.com/"})
    clock.now += 60
    client.get("/shoes/a", headers={"referer": "http://testserver/"})
    clock.now += 31 * 60
    r = client.get("/shoes/b?utm_source=news&utm_medium=email&utm_campaign=may")
    key = f"v:{fields(r)[0]}"
    p = asyncio.run(store.get(key))
    assert p is not None
    assert (p.visits, p.page_views, p.affinities) == (2, 3, {"shoes": 2.0})
    assert [(s.channel, s.landing_page, s.page_views) for s in p.sessions] == [
        ("organic_search", "/", 2),
        ("email", "/shoes/b", 1),
    ]
    assert p.sessions[1].campaign == "may"


def test_bots_get_no_cookie_and_no_profile() -> None:
    store = MemoryStore()
    client = TestClient(make_app(store=store), headers=BROWSER)
    r = client.get("/", headers={"user-agent": GOOGLEBOT})
    assert r.status_code == 200
    assert "set-cookie" not in r.headers
    assert fields(r)[:2] == ["None", "bot"]
    assert len(store) == 0


@pytest.mark.parametrize(
    "user_agent",
    [None, "", "x", "Mozilla/5.0", "PostmanRuntime/7.36.0", "Dalvik/2.1.0 (Linux; U; Android 13)",
     "python-requests/2.31.0", "curl/8.5.0", "Lynx/2.9.0dev.12 libwww-FM/2.14"],
)  # fmt: skip
def test_requests_without_a_browser_user_agent_get_the_page_context_only(
    user_agent: str | None,
) -> None:
    """The report: 833 requests without a User-Agent, or with one like "x", got 833 cookies
    and 833 stored profiles. Not a plausible browser: the page, from the request alone."""
    store = MemoryStore()
    client = TestClient(make_app(store=store))
    if user_agent is None:
        del client.headers["user-agent"]
    else:
        client.headers["user-agent"] = user_agent
    for path in ("/", "/shoes/a", "/api"):
        r = client.get(path)
        assert r.status_code == 200
        assert "set-cookie" not in r.headers
    assert fields(client.get("/"))[0] == "None"
    assert len(store) == 0
    r = client.get("/", headers=BROWSER)
    assert "set-cookie" in r.headers and fields(r)[0] != "None"  # the same site, a browser


def test_concurrent_requests_of_one_visitor_lose_no_page_view() -> None:
    store = MemoryStore()
    app = make_app(store=store, flush_interval=0.001)

    async def scenario() -> str:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", headers={"user-agent": IPHONE}
        ) as c:
            first = await c.get("/")
            await asyncio.gather(*(c.get("/") for _ in range(199)))
            return fields(first)[0]

    visitor_id = asyncio.run(scenario())
    p = asyncio.run(store.get(f"v:{visitor_id}"))
    assert p is not None and p.page_views == 200 and p.visits == 1


def _raw_request(
    app: Any,
    headers: list[tuple[bytes, bytes]],
    query: bytes = b"",
    path: str = "/",
    client: tuple[str, int] = ("127.0.0.1", 5000),
) -> int:
    """Send one request with arbitrary header bytes (beyond what an HTTP client allows)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": client,
        "server": ("testserver", 80),
    }
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    asyncio.run(app(scope, receive, send))
    return int(messages[0]["status"])


BAD_HEADER_VALUES = [
    b"\xff\xfe\x00garbage",
    b"\xc3\x28\xa0\xa1",
    "héllo wörld ☃".encode(),
    b"x" * 8192,
    b"",
    b'()<>@,;:\\"/[]?={} \t',
]


@pytest.mark.parametrize("value", BAD_HEADER_VALUES)
@pytest.mark.parametrize(
    "name",
    [
        b"user-agent",
        b"referer",
        b"cookie",
        b"x-forwarded-for",
        b"forwarded",
        b"accept-language",
        b"sec-gpc",
        b"dnt",
        b"host",
    ],
)
def test_absurd_header_values_give_a_normal_page(name: bytes, value: bytes) -> None:
    app = make_app(trusted_proxies=["127.0.0.1"])
    assert _raw_request(app, [(name, value)]) == 200


@pytest.mark.parametrize(
    "query",
    [
        b"\xff\xfe",
        b"utm_source=%ff%fe&utm_medium=%",
        b"gclid=" + b"x" * 8192,
        b"a=\x00&&&==&",
        b"utm_source=" + "é".encode() + b"&utm_campaign=\xe9t\xe9",
    ],
)
def test_non_utf8_and_huge_query_strings_give_a_normal_page(query: bytes) -> None:
    assert _raw_request(make_app(), [], query=query) == 200


@pytest.mark.parametrize("client", [("not-an-ip", 1), ("999.1.1.1", 1), ("::1", 1), ("", 0)])
def test_invalid_client_addresses_give_a_normal_page(client: tuple[str, int]) -> None:
    app = make_app(trusted_proxies=["127.0.0.1", "::1"])
    headers = [(b"x-forwarded-for", b"999.999.1.1, nonsense, 1.2.3.4:99")]
    assert _raw_request(app, headers, client=client) == 200


def test_many_large_headers_at_once() -> None:
    headers = [(b"x-filler-%d" % i, b"y" * 8192) for i in range(20)]
    headers += [(b"cookie", b"pz_visitor=" + b"z" * 8000), (b"user-agent", b"\xff" * 8192)]
    assert _raw_request(make_app(), headers) == 200


def test_a_broken_store_never_costs_the_visitor_their_page() -> None:
    class BrokenStore(MemoryStore):
        async def get(self, key: str) -> Any:
            raise ConnectionError("down")

        async def update_many(self, mutations: Any) -> Any:
            raise ConnectionError("down")

    app = make_app(store=BrokenStore())
    client = TestClient(app, headers=BROWSER)
    assert client.get("/").status_code == 200
    assert client.get("/").status_code == 200  # returning visitor: load fails too


def test_middleware_validates_options() -> None:
    from personalize import ConfigurationError

    with pytest.raises(ConfigurationError):
        PersonalizeMiddleware(make_app(), secret_key="short")
    with pytest.raises(ConfigurationError):
        PersonalizeMiddleware(
            make_app(), secret_key=SECRET, store=MemoryStore(), site_time_zone="Mars/Olympus"
        )
    with pytest.raises(ConfigurationError):
        PersonalizeMiddleware(
            make_app(), secret_key=SECRET, store=MemoryStore(), trusted_proxies=["not-a-network"]
        )


@given(
    st.lists(st.text(alphabet=' \t\xa0;="pz_visitorab', max_size=24), min_size=0, max_size=5).map(
        ";".join
    )
)
def test_the_visitor_cookie_is_found_as_a_full_parse_finds_it(header: str) -> None:
    """The fast search for the visitor cookie agrees with splitting every cookie."""

    def by_splitting(text: str) -> str | None:
        for part in text.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name == "pz_visitor":
                return value.strip().strip('"')
        return None

    middleware = PersonalizeMiddleware(
        PlainTextResponse("x"), secret_key=SECRET, store=MemoryStore()
    )
    for text in (header, "pz_visitor=v1; " + header, header + "; pz_visitor=v2"):
        assert middleware.personalizer.cookies.find(text) == (by_splitting(text) if text else None)


def test_the_lifespan_shutdown_writes_what_is_buffered_and_closes_the_store() -> None:
    closed: list[bool] = []

    class FlakyStore(MemoryStore):
        """Refuses the first write (it stays buffered, to be retried) and records closing."""

        failures = 1

        async def update_many(self, mutations: Any) -> Any:
            if self.failures:
                self.failures -= 1
                raise StoreUnavailableError("briefly down")
            return await super().update_many(mutations)

        async def close(self) -> None:
            closed.append(True)

    store = FlakyStore()
    with TestClient(make_app(store), headers=BROWSER) as client:
        r = client.get("/", headers={"user-agent": IPHONE})
        visitor = r.text.split("|")[0].removeprefix("<p>")
        assert asyncio.run(store.get(f"v:{visitor}")) is None  # still buffered
    assert closed == [True]
    stored = asyncio.run(store.get(f"v:{visitor}"))
    assert stored is not None and stored.page_views == 1


def test_responses_alike_get_the_same_headers_and_only_their_own_cookie() -> None:
    """What the middleware makes of an app's headers is remembered by those headers: a
    returning visitor's identical response gets no one else's Set-Cookie, and a response
    that was not personalized keeps its own Cache-Control."""
    client = TestClient(make_app(), headers=BROWSER)
    first = client.get("/cached")  # a new visitor: Set-Cookie
    assert "set-cookie" in first.headers
    again = client.get("/cached")  # the same headers from the app, the cookie known
    assert "set-cookie" not in again.headers
    for response in (first, again):
        assert response.headers["cache-control"] == "private, max-age=60"
        assert response.headers["vary"] == "Cookie"
    other = TestClient(make_app(), headers=BROWSER).get("/cached")
    assert other.cookies[COOKIE] != first.cookies[COOKIE]
    plain = client.get("/plain")
    assert plain.headers["cache-control"] == "public, max-age=60" and "vary" not in plain.headers
    assert "set-cookie" not in client.get("/plain").headers
