"""Tiny Starlette apps behind the middleware, as a real user would mount it."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from personalize import MemoryStore, PersonalizeMiddleware, get_visitor
from personalize.stores.base import ProfileStore

SECRET = "test-secret-key-of-at-least-32-chars"
# Only a plausible browser is remembered (a test client says "testclient"): tests of
# visitors send a browser's User-Agent, as their visitors' browsers would.
BROWSER = {"user-agent": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"}


async def page(request: Request) -> Response:
    visitor = get_visitor(request)
    p = visitor.profile
    return HTMLResponse(
        f"<p>{visitor.id}|{visitor.context.device.type}|{visitor.context.source.channel}"
        f"|{p.visits}|{p.page_views}</p>"
    )


async def plain(request: Request) -> Response:
    # Does not read the visitor: not personalized.
    return HTMLResponse("<p>same for everyone</p>", headers={"cache-control": "public, max-age=60"})


async def cached_page(request: Request) -> Response:
    get_visitor(request).profile  # noqa: B018 - reading it personalizes the response
    return HTMLResponse("<p>hi</p>", headers={"cache-control": "public, max-age=60, s-maxage=600"})


async def api(request: Request) -> Response:
    visitor = get_visitor(request)
    return JSONResponse({"id": visitor.id, "visits": visitor.profile.visits})


async def echo_state(request: Request) -> Response:
    try:
        get_visitor(request)
    except Exception as exc:
        return PlainTextResponse(str(exc), status_code=500)
    return PlainTextResponse("visitor present")


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


def make_app(store: ProfileStore | None = None, **options: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route("/", page),
            Route("/shoes/{item}", page),
            Route("/plain", plain),
            Route("/cached", cached_page),
            Route("/api", api, methods=["GET", "POST"]),
            Route("/static/x.css", echo_state),
            WebSocketRoute("/ws", ws),
        ]
    )
    options.setdefault("secret_key", SECRET)
    options.setdefault("flush_interval", 0)
    app.add_middleware(
        PersonalizeMiddleware, store=store if store is not None else MemoryStore(), **options
    )
    return app
