"""Litestar: a small app with the middleware around it, driven by Litestar's TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template.config import TemplateConfig
from litestar.testing import TestClient
from starlette.types import ASGIApp

from personalize import MemoryStore, PersonalizeMiddleware, Visitor
from personalize.integrations.litestar import provide_visitor
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


@get("/")
async def home(visitor: NamedDependency[Visitor]) -> Template:
    return Template("page.html", context={"visitor": visitor})


@post("/login", status_code=200)
async def login(visitor: NamedDependency[Visitor], user: FromQuery[str]) -> Template:
    await visitor.identify(user, traits={"plan": "gold"})  # after your own authentication
    return Template("page.html", context={"visitor": visitor})


@post("/logout", status_code=200)
async def logout(visitor: NamedDependency[Visitor]) -> dict[str, bool]:
    visitor.logout()
    return {"known": visitor.is_known}


@get("/offer")
async def offer(request: Request[Any, Any, Any]) -> Response[dict[str, str | None]]:
    # Without the dependency: the visitor is also request.state.visitor.
    hero = request.state.visitor.decide_sync("hero")
    return Response(
        {"variant": hero.variant},
        headers={"cache-control": "public, max-age=600, s-maxage=600"},
    )


def make_app(options: dict[str, Any]) -> ASGIApp:
    """The README's Litestar section: the whole application wrapped, so that
    /_personalize/* answers too; the page views still buffered are written at shutdown."""

    async def close_personalize() -> None:
        await app.aclose()

    site = Litestar(
        route_handlers=[home, login, logout, offer],
        dependencies={"visitor": Provide(provide_visitor)},
        template_config=TemplateConfig(
            directory=JINJA_TEMPLATES,
            engine=JinjaTemplateEngine,
            engine_callback=lambda jinja: install(jinja.engine),  # personalize.slot("hero")
        ),
        on_shutdown=[close_personalize],
    )
    app = PersonalizeMiddleware(site, **options)
    return app


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Any]]:
    with TestClient(make_app(write_site(tmp_path))) as client:
        client.headers["user-agent"] = FIREFOX
        yield client


def test_a_first_visit_gets_the_cookie_a_private_response_and_the_default_slot(
    client: TestClient[Any],
) -> None:
    r = client.get("/")
    assert r.status_code == 200
    visitor_cookie(r.headers.get_list("set-cookie"))
    assert_private(r.headers.get("cache-control"), r.headers.get_list("vary"))
    page = read_page(r.text)
    assert (page.user_id, page.page_views, page.segments) == ("", 1, {})
    assert slot_html(WELCOME).fullmatch(page.hero), page.hero


def test_a_newsletter_visit_is_in_the_segment_and_sees_its_variant(
    client: TestClient[Any],
) -> None:
    page = read_page(client.get("/" + NEWSLETTER).text)
    assert page.segments == {"newsletter_readers": "channel is email"}
    assert slot_html(THANKS).fullmatch(page.hero), page.hero


def test_login_merges_the_anonymous_history_into_the_same_response(
    client: TestClient[Any],
) -> None:
    anonymous = read_page(client.get("/").text)
    client.get("/")
    before = client.cookies["pz_visitor"]
    r = client.post("/login", params={"user": "ann"})
    page = read_page(r.text)
    assert (page.user_id, page.page_views) == ("ann", 3)
    assert page.segments == {"regulars": "page views 3 is at least 3"}
    assert page.visitor_id != anonymous.visitor_id
    assert visitor_cookie(r.headers.get_list("set-cookie")) != before
    assert read_page(client.get("/").text).user_id == "ann"

    r = client.post("/logout")
    assert r.json() == {"known": False}
    visitor_cookie(r.headers.get_list("set-cookie"))
    after = read_page(client.get("/").text)
    assert (after.user_id, after.page_views) == ("", 1)


def test_the_middleware_endpoints_are_reachable(client: TestClient[Any]) -> None:
    assert client.get("/_personalize/ping").text == "ok"
    client.get("/")
    client.post("/login", params={"user": "ann"})
    assert "ann" in client.get("/_personalize/me").text
    exported = client.get("/_personalize/me/export").json()
    assert (exported["user_id"], exported["stored_profile"]["page_views"]) == ("ann", 1)
    slots = client.get("/_personalize/slots", params={"slot": "hero"}).json()
    assert [d["variant"] for d in slots["decisions"]] == ["welcome"]
    assert client.get("/no-such-page").status_code == 404  # Litestar's own 404 still answers


def test_a_public_response_becomes_private_once_it_reads_the_visitor(
    client: TestClient[Any],
) -> None:
    client.get("/")
    r = client.get("/offer")
    assert r.json() == {"variant": "welcome"}
    assert r.headers["cache-control"] == "private, max-age=600"
    assert_private(r.headers.get("cache-control"), r.headers.get_list("vary"))


def test_shutdown_closes_the_store(tmp_path: Path) -> None:
    closed: list[bool] = []

    class Store(MemoryStore):
        async def close(self) -> None:
            closed.append(True)
            await super().close()

    with TestClient(make_app({**write_site(tmp_path), "store": Store()})) as client:
        client.get("/")
        assert closed == []
    assert closed == [True]
