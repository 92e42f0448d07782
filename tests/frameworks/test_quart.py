"""Quart: a small app with the middleware in ``app.asgi_app``, driven by Quart's test client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from quart import Quart, g, render_template, request
from quart.testing import QuartClient

from personalize import ConfigurationError, MemoryStore, PersonalizeMiddleware
from personalize.integrations.quart import init_app
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


def make_app(options: dict[str, Any], static: Path) -> Quart:
    """The README's Quart section, plus a cached response and a static file."""
    app = Quart(__name__, template_folder=str(JINJA_TEMPLATES), static_folder=str(static))
    app.asgi_app = PersonalizeMiddleware(app.asgi_app, **options)  # type: ignore[method-assign]
    init_app(app)

    @app.get("/")
    async def home() -> str:
        return await render_template("page.html", visitor=g.visitor)

    @app.post("/login")
    async def login() -> str:
        await g.visitor.identify(request.args["user"], traits={"plan": "gold"})
        return await render_template("page.html", visitor=g.visitor)

    @app.post("/logout")
    async def logout() -> dict[str, bool]:
        g.visitor.logout()
        return {"known": g.visitor.is_known}

    @app.get("/offer")
    async def offer() -> tuple[dict[str, str | None], int, dict[str, str]]:
        hero = g.visitor.decide_sync("hero")
        headers = {"cache-control": "public, max-age=600, s-maxage=600"}
        return {"variant": hero.variant}, 200, headers

    return app


Scenario = Callable[[QuartClient], Awaitable[None]]


def run(tmp_path: Path, scenario: Scenario, store: MemoryStore | None = None) -> None:
    """``scenario`` against a fresh app, inside Quart's lifespan (startup, then shutdown)."""
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "app.css").write_text("body { margin: 0 }")
    options = write_site(tmp_path)
    if store is not None:
        options["store"] = store
    app = make_app(options, tmp_path / "static")

    async def main() -> None:
        async with app.test_app() as test_app:
            await scenario(test_app.test_client())

    asyncio.run(main())


async def get(client: QuartClient, path: str) -> tuple[Any, str]:
    response = await client.get(path, headers={"user-agent": FIREFOX})
    return response, await response.get_data(as_text=True)


async def post(client: QuartClient, path: str) -> tuple[Any, str]:
    response = await client.post(path, headers={"user-agent": FIREFOX})
    return response, await response.get_data(as_text=True)


def test_a_first_visit_gets_the_cookie_a_private_response_and_the_default_slot(
    tmp_path: Path,
) -> None:
    async def scenario(client: QuartClient) -> None:
        r, html = await get(client, "/")
        assert r.status_code == 200
        visitor_cookie(r.headers.getlist("set-cookie"))
        assert_private(r.headers.get("cache-control"), r.headers.getlist("vary"))
        page = read_page(html)
        assert (page.user_id, page.page_views, page.segments) == ("", 1, {})
        assert slot_html(WELCOME).fullmatch(page.hero), page.hero

    run(tmp_path, scenario)


def test_a_newsletter_visit_is_in_the_segment_and_sees_its_variant(tmp_path: Path) -> None:
    async def scenario(client: QuartClient) -> None:
        page = read_page((await get(client, "/" + NEWSLETTER))[1])
        assert page.segments == {"newsletter_readers": "channel is email"}
        assert slot_html(THANKS).fullmatch(page.hero), page.hero

    run(tmp_path, scenario)


def test_login_merges_the_anonymous_history_into_the_same_response(tmp_path: Path) -> None:
    async def scenario(client: QuartClient) -> None:
        r, html = await get(client, "/")
        anonymous, before = read_page(html), visitor_cookie(r.headers.getlist("set-cookie"))
        await get(client, "/")
        r, html = await post(client, "/login?user=ann")
        page = read_page(html)
        assert (page.user_id, page.page_views) == ("ann", 3)
        assert page.segments == {"regulars": "page views 3 is at least 3"}
        assert page.visitor_id != anonymous.visitor_id
        assert visitor_cookie(r.headers.getlist("set-cookie")) != before
        assert read_page((await get(client, "/"))[1]).user_id == "ann"

        r, body = await post(client, "/logout")
        assert body.strip() == '{"known":false}'
        visitor_cookie(r.headers.getlist("set-cookie"))
        after = read_page((await get(client, "/"))[1])
        assert (after.user_id, after.page_views) == ("", 1)

    run(tmp_path, scenario)


def test_the_middleware_endpoints_are_reachable(tmp_path: Path) -> None:
    async def scenario(client: QuartClient) -> None:
        assert (await get(client, "/_personalize/ping"))[1] == "ok"
        await get(client, "/")
        await post(client, "/login?user=ann")
        assert "ann" in (await get(client, "/_personalize/me"))[1]
        r, _ = await get(client, "/_personalize/me/export")
        exported = await r.get_json()
        assert (exported["user_id"], exported["stored_profile"]["page_views"]) == ("ann", 1)

    run(tmp_path, scenario)


def test_cache_headers_private_when_personalized_untouched_for_static_files(
    tmp_path: Path,
) -> None:
    async def scenario(client: QuartClient) -> None:
        await get(client, "/")
        r, body = await get(client, "/offer")
        assert body.strip() == '{"variant":"welcome"}'
        assert r.headers["cache-control"] == "private, max-age=600"
        assert_private(r.headers.get("cache-control"), r.headers.getlist("vary"))
        css, text = await get(client, "/static/app.css")
        assert text == "body { margin: 0 }"
        assert "set-cookie" not in css.headers and "private" not in css.headers.get(
            "cache-control", ""
        )

    run(tmp_path, scenario)


def test_shutdown_closes_the_store(tmp_path: Path) -> None:
    closed: list[bool] = []

    class Store(MemoryStore):
        async def close(self) -> None:
            closed.append(True)
            await super().close()

    async def scenario(client: QuartClient) -> None:
        await get(client, "/")
        assert closed == []

    run(tmp_path, scenario, store=Store())
    assert closed == [True]


def test_init_app_without_the_middleware_says_what_to_do() -> None:
    with pytest.raises(ConfigurationError, match=r"app.asgi_app = PersonalizeMiddleware\("):
        init_app(Quart(__name__))
