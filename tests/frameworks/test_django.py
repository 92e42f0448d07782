"""Django over ASGI: the project in django_site.py, driven by Django's AsyncClient with every
request served by the real ASGI stack (PersonalizeMiddleware around Django's ASGIHandler)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.http import HttpResponse
from django.test import AsyncClient, Client
from starlette.testclient import TestClient

from personalize import (
    MemoryStore,
    MiddlewareMissingError,
    Profile,
    StoreUnavailableError,
)
from tests.frameworks import django_site
from tests.frameworks.common import (
    FIREFOX,
    NEWSLETTER,
    THANKS,
    WELCOME,
    assert_private,
    read_page,
    slot_html,
    visitor_cookie,
    write_site,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class ServedByASGI:
    """Stands in for AsyncClient's handler, which calls Django in-process and so skips any
    ASGI middleware: each request is served by ``application`` as an ASGI server would, and
    its messages become the HttpResponse the client expects (with the raw headers kept as
    ``asgi_headers``). Requests carry a browser's User-Agent."""

    def __init__(self, application: ASGIApp) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any]) -> HttpResponse:
        body_file = scope.pop("_body_file", None)
        inbox = [{"type": "http.request", "body": body_file.read() if body_file else b""}]
        query = scope.get("query_string", "")
        scope = {
            **scope,
            "headers": [*scope["headers"], (b"user-agent", FIREFOX.encode())],
            "raw_path": scope["path"].encode(),
            "root_path": "",
            "query_string": query.encode("latin-1") if isinstance(query, str) else query,
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if inbox:
                return inbox.pop()
            await asyncio.Event().wait()  # the client stays connected until Django is done
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.application(scope, receive, send)
        start = sent[0]
        response = HttpResponse(
            b"".join(m.get("body", b"") for m in sent[1:]), status=start["status"]
        )
        del response["Content-Type"]
        headers = [(n.decode("latin-1").lower(), v.decode("latin-1")) for n, v in start["headers"]]
        for name, value in headers:
            if name == "set-cookie":
                response.cookies.load(value)
            else:
                response[name] = value
        response.asgi_headers = headers
        response.asgi_request = None
        return response


def header_values(response: HttpResponse, name: str) -> list[str]:
    return [v for n, v in response.asgi_headers if n == name]


@pytest.fixture(scope="module")
def ann() -> Iterator[User]:
    from django.contrib.auth import get_user_model  # once django_site has set Django up

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("ann", "ann@example.com", "trail-ann")
    yield user
    connections.close_all()


@pytest.fixture
def site(tmp_path: Path, ann: User) -> ASGIApp:
    return django_site.application(**write_site(tmp_path))


def client_for(application: ASGIApp) -> AsyncClient:
    client = AsyncClient()
    client.handler = ServedByASGI(application)
    return client


Scenario = Callable[[AsyncClient], Awaitable[None]]


def run(site: ASGIApp, scenario: Scenario) -> None:
    asyncio.run(scenario(client_for(site)))


def test_a_first_visit_gets_the_cookie_a_private_response_and_the_default_slot(
    site: ASGIApp,
) -> None:
    async def scenario(client: AsyncClient) -> None:
        r = await client.get("/")
        assert r.status_code == 200
        visitor_cookie(header_values(r, "set-cookie"))
        assert_private(r.get("cache-control"), header_values(r, "vary"))
        page = read_page(r.content.decode())
        assert (page.user_id, page.page_views, page.segments) == ("", 1, {})
        assert slot_html(WELCOME).fullmatch(page.hero), page.hero
        assert 'id="reader"' not in r.content.decode()

    run(site, scenario)


def test_a_newsletter_visit_is_in_the_segment_and_sees_its_variant(
    site: ASGIApp,
) -> None:
    async def scenario(client: AsyncClient) -> None:
        html = (await client.get("/" + NEWSLETTER)).content.decode()
        page = read_page(html)
        assert page.segments == {"newsletter_readers": "channel is email"}
        assert slot_html(THANKS).fullmatch(page.hero), page.hero
        assert '<p id="reader">Hello, reader</p>' in html  # personalize.in_segment

    run(site, scenario)


def test_login_merges_the_anonymous_history_into_the_same_response(
    site: ASGIApp, ann: User
) -> None:
    async def scenario(client: AsyncClient) -> None:
        r = await client.get("/")
        anonymous, before = (
            read_page(r.content.decode()),
            visitor_cookie(header_values(r, "set-cookie")),
        )
        await client.get("/")
        r = await client.post("/login", {"username": "ann", "password": "trail-ann"})
        assert r.status_code == 200
        page = read_page(r.content.decode())
        assert (page.user_id, page.page_views) == (str(ann.pk), 3)
        assert page.segments == {"regulars": "page views 3 is at least 3"}
        assert page.visitor_id != anonymous.visitor_id
        # Django's session cookie and personalize's, each once, in the same response.
        cookies = header_values(r, "set-cookie")
        assert visitor_cookie(cookies) != before
        assert [c.split("=")[0] for c in cookies] == ["sessionid", "pz_visitor"]
        assert_private(r.get("cache-control"), header_values(r, "vary"))
        assert read_page((await client.get("/")).content.decode()).user_id == str(ann.pk)

        r = await client.post("/logout")
        assert r.json() == {"known": False}
        visitor_cookie(header_values(r, "set-cookie"))
        after = read_page((await client.get("/")).content.decode())
        assert (after.user_id, after.page_views) == ("", 1)

    run(site, scenario)


def test_a_wrong_password_logs_nobody_in(site: ASGIApp) -> None:
    async def scenario(client: AsyncClient) -> None:
        r = await client.post("/login", {"username": "ann", "password": "guess"})
        assert r.status_code == 401
        assert read_page((await client.get("/")).content.decode()).user_id == ""

    run(site, scenario)


def test_sync_views_render_slots_and_log_in_through_async_to_sync(site: ASGIApp, ann: User) -> None:
    async def scenario(client: AsyncClient) -> None:
        r = await client.get("/sync" + NEWSLETTER)
        html = r.content.decode()
        assert "<title>desktop</title>" in html
        assert slot_html(THANKS).fullmatch(read_page(html).hero)
        assert_private(r.get("cache-control"), header_values(r, "vary"))
        r = await client.post("/sync/login", {"username": "ann", "password": "trail-ann"})
        page = read_page(r.content.decode())
        assert (page.user_id, page.page_views) == (str(ann.pk), 2)

    run(site, scenario)


def test_a_sync_view_that_calls_identify_without_async_to_sync_logs_nobody_in(
    site: ASGIApp,
) -> None:
    """What a developer sees: Python's RuntimeWarning, and a visitor still anonymous."""

    async def scenario(client: AsyncClient) -> None:
        r = await client.post("/sync/login-forgot", {"username": "ann"})
        assert read_page(r.content.decode()).user_id == ""
        assert read_page((await client.get("/")).content.decode()).user_id == ""

    with pytest.warns(RuntimeWarning, match="coroutine 'Visitor.identify' was never awaited"):
        run(site, scenario)
        gc.collect()


def test_async_to_sync_in_an_async_view_is_refused_by_asgiref(site: ASGIApp) -> None:
    async def scenario(client: AsyncClient) -> None:
        with pytest.raises(RuntimeError, match="You cannot use AsyncToSync in the same thread"):
            await client.post("/async/login-async-to-sync", {"username": "ann"})

    run(site, scenario)


def test_the_middleware_endpoints_are_reachable(site: ASGIApp, ann: User) -> None:
    async def scenario(client: AsyncClient) -> None:
        assert (await client.get("/_personalize/ping")).content == b"ok"
        await client.get("/")
        await client.post("/login", {"username": "ann", "password": "trail-ann"})
        me = await client.get("/_personalize/me")
        assert me.status_code == 200 and str(ann.pk) in me.content.decode()
        exported = (await client.get("/_personalize/me/export")).json()
        assert (exported["user_id"], exported["stored_profile"]["page_views"]) == (
            str(ann.pk),
            1,
        )
        slots = (await client.get("/_personalize/slots", {"slot": "hero"})).json()
        assert [d["variant"] for d in slots["decisions"]] == ["welcome"]

    run(site, scenario)


def test_a_public_response_becomes_private_once_it_reads_the_visitor(
    site: ASGIApp,
) -> None:
    async def scenario(client: AsyncClient) -> None:
        await client.get("/")
        r = await client.get("/offer")  # @cache_control(public=True, max_age=600, s_maxage=600)
        assert r.json() == {"variant": "welcome"}
        assert r["cache-control"] == "private, max-age=600"
        assert_private(r.get("cache-control"), header_values(r, "vary"))

    run(site, scenario)


def test_excluded_paths_have_no_visitor_and_say_so_when_asked(
    site: ASGIApp,
) -> None:
    async def scenario(client: AsyncClient) -> None:
        r = await client.get("/health")
        assert r.content == b"ok"
        assert header_values(r, "set-cookie") == [] and header_values(r, "vary") == []
        with pytest.raises(MiddlewareMissingError, match="PersonalizeMiddleware did not see"):
            await client.get("/health", {"read": "1"})

    run(site, scenario)


def test_under_wsgi_request_visitor_says_that_asgi_is_needed(ann: User) -> None:
    """Django's plain Client serves views as WSGI does (manage.py runserver, gunicorn's sync
    workers): there is no ASGI scope, so nothing can be personalized."""
    client = Client(headers={"user-agent": FIREFOX})
    with pytest.raises(MiddlewareMissingError, match="needs Django served over ASGI"):
        client.get("/sync")
    html = client.get("/").content.decode()  # templates render, with nothing personalized
    assert '<p id="who">||</p>' in html and "<main></main>" in html


class BrieflyDownStore(MemoryStore):
    """A store that refuses writes until it is back (a Redis restart during a deploy)."""

    down = True

    async def apply_changes(
        self, changes: Mapping[str, Sequence[Any]], *, batch_id: str | None = None
    ) -> dict[str, Profile]:
        if self.down:
            raise StoreUnavailableError("the store is restarting")
        return await super().apply_changes(changes, batch_id=batch_id)


def test_shutdown_writes_the_page_views_still_buffered(tmp_path: Path, ann: User) -> None:
    """Django refuses the ASGI lifespan; with_lifespan answers it and flushes at shutdown."""
    store = BrieflyDownStore()
    application = django_site.application(**{**write_site(tmp_path), "store": store})

    async def scenario() -> None:
        r = await client_for(application).get("/")
        key = f"v:{read_page(r.content.decode()).visitor_id}"
        store.down = False  # back, but the buffered page view waits for its retry
        assert await store.get(key) is None

        inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent: list[str] = []

        async def receive() -> dict[str, str]:
            return inbox.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message["type"])

        await application({"type": "lifespan"}, receive, send)
        assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
        stored = await store.get(key)
        assert stored is not None and stored.page_views == 1

    asyncio.run(scenario())


def test_djangos_own_test_clients_skip_asgi_py_and_request_visitor_says_so(ann: User) -> None:
    async def scenario() -> None:
        with pytest.raises(MiddlewareMissingError, match="test Client and AsyncClient call"):
            await AsyncClient().get("/sync")

    asyncio.run(scenario())


def test_an_asgi_test_client_on_the_asgi_application_sees_the_visitor(
    site: ASGIApp, ann: User
) -> None:
    """What the README recommends for a Django project's tests."""
    with TestClient(site, headers={"user-agent": FIREFOX}) as client:  # lifespan included
        client.get("/")
        r = client.post("/login", data={"username": "ann", "password": "trail-ann"})
        page = read_page(r.text)
        assert (page.user_id, page.page_views) == (str(ann.pk), 2)
        assert client.cookies["sessionid"] and client.cookies["pz_visitor"]
