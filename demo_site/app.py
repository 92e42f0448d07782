"""The demo site: a Starlette app behind PersonalizeMiddleware on the embedded SQLite store.

Run it with ``scripts/demo`` (see the README). Settings come from the environment:

- ``PERSONALIZE_SECRET_KEY``: cookie signing secret; a random one per start if unset (visitors
  then become new on every restart, which is fine for a demo).
- ``PERSONALIZE_DB``: SQLite file, default ``demo_site/personalize.sqlite3``.
- ``PERSONALIZE_GEOIP_DB``: a GeoIP2/GeoLite2 City ``.mmdb``; without it, no geo.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from personalize import PersonalizeMiddleware, SQLiteStore, get_visitor

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")

CATEGORIES = {
    "/shoes": "shoes",
    "/shoes/*": "shoes",
    "/bags": "bags",
    "/bags/*": "bags",
    "/outdoor": "outdoor",
    "/outdoor/*": "outdoor",
}


async def page(request: Request) -> Response:
    visitor = get_visitor(request)
    return templates.TemplateResponse(
        request,
        "index.html",
        {"visitor": visitor, "context": visitor.context, "profile": visitor.profile},
    )


def create_app() -> Starlette:
    app = Starlette(
        routes=[
            Route("/", page),
            Route("/{category:str}", page),
            Route("/{category:str}/{item:str}", page),
        ]
    )
    app.add_middleware(
        PersonalizeMiddleware,
        secret_key=os.environ.get("PERSONALIZE_SECRET_KEY") or secrets.token_urlsafe(32),
        store=SQLiteStore(os.environ.get("PERSONALIZE_DB", HERE / "personalize.sqlite3")),
        geoip_db=os.environ.get("PERSONALIZE_GEOIP_DB") or None,
        categories=CATEGORIES,
        site_time_zone="Europe/London",
    )
    return app


app = create_app()
