"""The demo shop: a small Starlette + Jinja2 store behind PersonalizeMiddleware.

Run it with ``scripts/demo`` (see the README), or ``uvicorn demo_site.app:app``. The
module-level ``app`` (built on first access) reads its settings from the environment:

- ``PERSONALIZE_DEMO``: the visitor simulator, **on unless set to 0/false/no/off**. It lets
  anyone claim any IP address, device and source, so a production app never turns it on:
  ``create_app()`` leaves it off unless given ``demo_mode=True``.
- ``PERSONALIZE_SECRET_KEY``: signs the visitor, cart and simulator cookies; a random one per
  start if unset (visitors then start over after a restart, which is fine for a demo).
- ``PERSONALIZE_DB``: the SQLite file, default ``demo_site/personalize.sqlite3``.
- ``PERSONALIZE_GEOIP_DB``: a GeoIP2/GeoLite2 City ``.mmdb``; default the GeoLite2 City
  database of the ``maxminddb-geolite2`` package (the ``demo`` extra) when it is installed,
  else no geo.
- ``PERSONALIZE_ADMIN_USER`` and ``PERSONALIZE_ADMIN_PASSWORD_HASH`` (from ``personalize
  hash-password``): the editor UI's one user; without both it is off (the start-up log says
  which is missing). ``PERSONALIZE_API_KEY``: a key for the events API and the metrics.

Tests build their own app with ``create_app(store=MemoryStore(), demo_mode=True, ...)``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from demo_site import account_pages, catalogue, simulator_pages, store_pages
from demo_site.cart import CartCodec
from demo_site.shop import Shop, http_error
from demo_site.simulator import SimulationCodec, SimulatorMiddleware
from personalize import (
    DecisionEngine,
    PersonalizeMiddleware,
    ProfileStore,
    SegmentLibrary,
    SQLiteStore,
)
from personalize.templating import install as install_slots
from personalize.web.admin.passwords import is_password_hash

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
_AUTO: Any = object()  # "find the GeoLite2 database of the demo extra"
_OFF = {"0", "false", "no", "off"}
# uvicorn prints this logger's lines next to its own "Uvicorn running on ..." at start-up.
startup_log = logging.getLogger("uvicorn.error")


def packaged_geoip_db() -> str | None:
    """The GeoLite2 City database of ``maxminddb-geolite2`` (2018, CC BY-SA), if installed."""
    try:
        from _maxminddb_geolite2 import geolite2_database  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = str(geolite2_database())
    return path if os.path.exists(path) else None


async def favicon(request: Request) -> Response:
    # Browsers ask for /favicon.ico on every site; pages also link the SVG itself.
    return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml",
                        headers={"cache-control": "public, max-age=86400"})  # fmt: skip


def create_app(
    *,
    demo_mode: bool = False,
    secret_key: str | None = None,
    store: ProfileStore | None = None,
    geoip_db: str | os.PathLike[str] | None = _AUTO,
    segments: str | os.PathLike[str] = ROOT / "segments",
    content: str | os.PathLike[str] = ROOT / "content",
    site_time_zone: str = "Europe/London",
    secure_cookies: bool | None = None,
    **middleware_options: Any,
) -> Starlette:
    """The shop; keyword arguments override the environment's settings (see the module).

    ``middleware_options`` go to PersonalizeMiddleware as they are (``api_keys=...``,
    ``clock=...``).
    """
    secret = secret_key or os.environ.get("PERSONALIZE_SECRET_KEY") or secrets.token_urlsafe(32)
    if store is None:
        store = SQLiteStore(os.environ.get("PERSONALIZE_DB") or HERE / "personalize.sqlite3")
    if geoip_db is _AUTO:
        geoip_db = os.environ.get("PERSONALIZE_GEOIP_DB") or packaged_geoip_db()
    library = SegmentLibrary(Path(segments))
    engine = DecisionEngine(Path(content), segments=library, secret=f"decisions:{secret}")
    templates = Jinja2Templates(directory=HERE / "templates")
    install_slots(templates.env, engine)
    shop = Shop(templates, engine, CartCodec(secret), SimulationCodec(secret), demo_mode,
                secure_cookies)  # fmt: skip
    store_p, account_p, sim_p = store_pages, account_pages, simulator_pages

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        # Write the page views still buffered, close the store and the GeoIP reader.
        node: Any = app.middleware_stack
        while node is not None:
            if isinstance(node, PersonalizeMiddleware):
                await node.aclose()
                break
            node = getattr(node, "app", None)

    routes = [
        Route("/", store_p.home),
        Route("/bestsellers", store_p.bestsellers),
        Route("/cart", store_p.cart_page),
        Route("/cart/add", store_p.cart_add, methods=["POST"]),
        Route("/cart/update", store_p.cart_update, methods=["POST"]),
        Route("/checkout", store_p.checkout, methods=["POST"]),
        Route("/account/orders", store_p.orders_page),
        Route("/login", account_p.login_page),
        Route("/login", account_p.login, methods=["POST"]),
        Route("/logout", account_p.logout, methods=["POST"]),
        Route("/support", account_p.support_page),
        Route("/support", account_p.support_open, methods=["POST"]),
        Route("/support/close", account_p.support_close, methods=["POST"]),
        Route("/_demo/simulate", sim_p.simulate, methods=["POST"]),
        Route("/_demo/reset", sim_p.simulate_reset, methods=["POST"]),
        Route("/favicon.ico", favicon),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        Route("/{category:str}", store_p.category_page),
        Route("/{category:str}/{product:str}", store_p.product_page),
    ]
    app = Starlette(
        routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan
    )
    app.state.shop = shop
    app.add_middleware(
        PersonalizeMiddleware,
        secret_key=secret,
        store=store,
        geoip_db=geoip_db,
        categories=catalogue.CATEGORY_PATHS,
        segments=library,
        content=engine,
        site_time_zone=site_time_zone,
        cookie_secure=secure_cookies,
        # Chromium then sends its real OS version from the second page on (localhost counts
        # as a secure origin, so the demo shows it too).
        **{"client_hints": "request", **middleware_options},
    )
    if demo_mode:
        # Outside PersonalizeMiddleware (added last = outermost): it rewrites the request
        # before personalization sees it.
        app.add_middleware(SimulatorMiddleware, secret=secret)
    return app


ENABLE_EDITOR = (
    "to turn it on, start the demo with PERSONALIZE_ADMIN_USER=editor scripts/demo (it asks "
    "for a password), or set PERSONALIZE_ADMIN_USER and PERSONALIZE_ADMIN_PASSWORD_HASH (a "
    "hash from `personalize hash-password`); see the README"
)


def editor_users(environ: Mapping[str, str]) -> tuple[dict[str, str] | None, str]:
    """The demo's ``admin_users`` from the environment, and a line for the start-up log.

    >>> editor_users({})[0] is None
    True
    >>> users, note = editor_users({"PERSONALIZE_ADMIN_USER": "ann",
    ...                             "PERSONALIZE_ADMIN_PASSWORD_HASH": ""})
    >>> users, note[:67]
    (None, 'the editor UI is off: PERSONALIZE_ADMIN_PASSWORD_HASH is empty (did')
    """
    user = environ.get("PERSONALIZE_ADMIN_USER", "").strip()
    hashed = environ.get("PERSONALIZE_ADMIN_PASSWORD_HASH", "").strip()
    if not user and not hashed:
        return None, f"the editor UI is off; {ENABLE_EDITOR}"
    if not user:
        return None, f"the editor UI is off: PERSONALIZE_ADMIN_USER is not set; {ENABLE_EDITOR}"
    if not hashed:
        return None, (
            "the editor UI is off: PERSONALIZE_ADMIN_PASSWORD_HASH is empty (did `personalize "
            f"hash-password` fail?); {ENABLE_EDITOR}"
        )
    if not is_password_hash(hashed):
        return None, (
            "the editor UI is off: PERSONALIZE_ADMIN_PASSWORD_HASH is not a hash made by "
            f"`personalize hash-password`; {ENABLE_EDITOR}"
        )
    return {user: hashed}, f"the editor UI is on at /_personalize/admin for the user {user!r}"


def __getattr__(name: str) -> Any:
    # ``demo_site.app:app`` is built on first access, so importing create_app (tests, other
    # apps) opens no database; uvicorn's getattr builds it once.
    if name == "app":
        # river takes seconds to import, and the models a few more to warm up: only here.
        from demo_site.learning import demo_learning

        demo = os.environ.get("PERSONALIZE_DEMO", "1").strip().lower() not in _OFF
        options: dict[str, Any] = {"learning": demo_learning()}
        users, note = editor_users(os.environ)  # there is no default password
        if users is not None:
            options["admin_users"] = users
            startup_log.info("demo: %s", note)
        else:
            startup_log.warning("demo: %s", note)
        if os.environ.get("PERSONALIZE_API_KEY"):
            options["api_keys"] = [os.environ["PERSONALIZE_API_KEY"]]
        built = globals()["app"] = create_app(demo_mode=demo, **options)
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
