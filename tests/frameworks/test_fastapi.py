"""FastAPI: a small app with the middleware mounted, driven by FastAPI's TestClient."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import anyio.from_thread
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from fastapi.testclient import TestClient

from personalize import MiddlewareMissingError, PersonalizeMiddleware, Visitor
from personalize.integrations.fastapi import current_visitor
from personalize.templating import install
from tests.frameworks.common import (
    FIREFOX,
    JINJA_TEMPLATES,
    NEWSLETTER,
    THANKS,
    WELCOME,
    assert_private,
    read_page,
    slot_html,
    visitor_cookie,
    write_site,
)

CurrentVisitor = Annotated[Visitor, Depends(current_visitor)]


def make_app(options: dict[str, Any] | None) -> FastAPI:
    """The README's FastAPI section, plus a sync endpoint and a cached one."""
    templates = Jinja2Templates(directory=JINJA_TEMPLATES)
    install(templates.env)  # {{ personalize.slot("hero") }}
    app = FastAPI()

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request, visitor: CurrentVisitor) -> Response:
        return templates.TemplateResponse(request, "page.html", {"visitor": visitor})

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request, visitor: CurrentVisitor, user: str) -> Response:
        await visitor.identify(user, traits={"plan": "gold"})  # after your own authentication
        return templates.TemplateResponse(request, "page.html", {"visitor": visitor})

    @app.post("/logout")
    async def logout(visitor: CurrentVisitor) -> dict[str, bool]:
        visitor.logout()
        return {"known": visitor.is_known}

    @app.post("/sync-login", response_class=HTMLResponse)
    def sync_login(request: Request, visitor: CurrentVisitor, user: str) -> Response:
        # A plain `def` endpoint runs in a worker thread: await on the event loop from there.
        anyio.from_thread.run(visitor.identify, user)
        return templates.TemplateResponse(request, "page.html", {"visitor": visitor})

    @app.get("/offer")
    async def offer(visitor: CurrentVisitor) -> Response:
        hero = visitor.decide_sync("hero")
        return JSONResponse(
            {"variant": hero.variant},
            headers={"cache-control": "public, max-age=600, s-maxage=600"},
        )

    @app.get("/about")
    async def about() -> Response:
        return HTMLResponse("<p>same for everyone</p>", headers={"cache-control": "public"})

    if options is not None:
        app.add_middleware(PersonalizeMiddleware, **options)
    return app


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return TestClient(make_app(write_site(tmp_path)), headers={"user-agent": FIREFOX})


def test_a_first_visit_gets_the_cookie_a_private_response_and_the_default_slot(
    client: TestClient,
) -> None:
    r = client.get("/")
    assert r.status_code == 200
    visitor_cookie(r.headers.get_list("set-cookie"))
    assert_private(r.headers.get("cache-control"), r.headers.get_list("vary"))
    page = read_page(r.text)
    assert (page.user_id, page.page_views, page.segments) == ("", 1, {})
    assert slot_html(WELCOME).fullmatch(page.hero), page.hero


def test_a_newsletter_visit_is_in_the_segment_and_sees_its_variant(client: TestClient) -> None:
    page = read_page(client.get("/" + NEWSLETTER).text)
    assert page.segments == {"newsletter_readers": "channel is email"}
    assert slot_html(THANKS).fullmatch(page.hero), page.hero
    assert slot_html(WELCOME).fullmatch(read_page(client.get("/").text).hero)


def test_login_merges_the_anonymous_history_into_the_same_response(client: TestClient) -> None:
    anonymous = read_page(client.get("/").text)
    client.get("/")
    before = client.cookies["pz_visitor"]
    r = client.post("/login", params={"user": "ann"})
    page = read_page(r.text)
    # Two anonymous page views plus this request, and a segment that needs all three.
    assert (page.user_id, page.page_views) == ("ann", 3)
    assert page.segments == {"regulars": "page views 3 is at least 3"}
    assert page.visitor_id != anonymous.visitor_id
    assert visitor_cookie(r.headers.get_list("set-cookie")) != before
    assert_private(r.headers.get("cache-control"), r.headers.get_list("vary"))
    assert read_page(client.get("/").text).user_id == "ann"

    r = client.post("/logout")
    assert r.json() == {"known": False}
    visitor_cookie(r.headers.get_list("set-cookie"))
    after = read_page(client.get("/").text)
    assert (after.user_id, after.page_views) == ("", 1)


def test_a_sync_endpoint_logs_in_through_the_event_loop(client: TestClient) -> None:
    client.get("/")
    page = read_page(client.post("/sync-login", params={"user": "bob"}).text)
    assert (page.user_id, page.page_views) == ("bob", 2)


def test_the_middleware_endpoints_are_reachable(client: TestClient) -> None:
    assert client.get("/_personalize/ping").text == "ok"
    client.get("/")
    client.post("/login", params={"user": "ann"})
    me = client.get("/_personalize/me")
    assert me.status_code == 200 and "ann" in me.text
    exported = client.get("/_personalize/me/export").json()
    assert (exported["user_id"], exported["stored_profile"]["page_views"]) == ("ann", 1)
    slots = client.get("/_personalize/slots", params={"slot": "hero"}).json()
    assert [d["variant"] for d in slots["decisions"]] == ["welcome"]


def test_a_public_response_becomes_private_once_it_reads_the_visitor(client: TestClient) -> None:
    client.get("/")  # the cookie is set: later responses only change if they are personalized
    r = client.get("/offer")
    assert r.json() == {"variant": "welcome"}
    assert r.headers["cache-control"] == "private, max-age=600"
    assert_private(r.headers.get("cache-control"), r.headers.get_list("vary"))
    untouched = client.get("/about")
    assert untouched.headers["cache-control"] == "public"
    assert "set-cookie" not in untouched.headers and "vary" not in untouched.headers


def test_without_the_middleware_the_dependency_says_what_is_missing() -> None:
    client = TestClient(make_app(None))
    with pytest.raises(MiddlewareMissingError, match="PersonalizeMiddleware must be installed"):
        client.get("/")
