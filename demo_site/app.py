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

Tests build their own app with ``create_app(store=MemoryStore(), demo_mode=True, ...)``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from demo_site import catalogue
from demo_site.accounts import DEMO_LOGINS, authenticate
from demo_site.cart import CART_COOKIE, MAX_QUANTITY, CartCodec, lines, total
from demo_site.forms import CSRF_FIELD, csrf_token, read_form, set_csrf_cookie
from demo_site.simulator import (
    COUNTRIES,
    DEVICES,
    SIM_COOKIE,
    SOURCES,
    Simulation,
    SimulationCodec,
    SimulatorMiddleware,
    place_for_hour,
)
from personalize import (
    DecisionEngine,
    EventError,
    IdentityError,
    PersonalizeMiddleware,
    ProfileStore,
    SegmentLibrary,
    SQLiteStore,
    Visitor,
    get_visitor,
)
from personalize.learning.runtime import LocalLearning
from personalize.templating import install as install_slots

logger = logging.getLogger("demo_site")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
_AUTO: Any = object()  # "find the GeoLite2 database of the demo extra"
_OFF = {"0", "false", "no", "off"}

TICKET_TOPICS = {
    "delivery": "Where is my order?",
    "return": "I want to return something",
    "product": "A product is faulty",
    "other": "Something else",
}
MAX_MESSAGE = 2000  # characters


def packaged_geoip_db() -> str | None:
    """The GeoLite2 City database of ``maxminddb-geolite2`` (2018, CC BY-SA), if installed."""
    try:
        from _maxminddb_geolite2 import geolite2_database  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = str(geolite2_database())
    return path if os.path.exists(path) else None


@dataclass(frozen=True, slots=True)
class Shop:
    """What the handlers share; one per app (``request.app.state.shop``)."""

    templates: Jinja2Templates
    engine: DecisionEngine
    carts: CartCodec
    simulations: SimulationCodec
    demo_mode: bool
    secure_cookies: bool | None


def _shop(request: Request) -> Shop:
    shop: Shop = request.app.state.shop
    return shop


def _cart(request: Request) -> dict[str, int]:
    return _shop(request).carts.load(request.cookies.get(CART_COOKIE))


def _local_path(value: str | None, default: str = "/") -> str:
    """``value`` if it is a path on this site (never an open redirect), else ``default``."""
    if (
        not value
        or len(value) > 200
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 32 for c in value)
    ):
        return default
    return value


def render(
    request: Request, template: str, context: Mapping[str, Any] | None = None, status: int = 200
) -> Response:
    """A page of the shop: the layout's shared context plus ``context``."""
    shop = _shop(request)
    visitor = get_visitor(request)
    sim = request.scope.get("demo.simulation") or Simulation()
    items = _cart(request)
    values: dict[str, Any] = {
        "visitor": visitor,
        "categories": list(catalogue.CATEGORIES.values()),
        "cart_count": sum(items.values()),
        "csrf_field": CSRF_FIELD,
        "csrf_token": csrf_token(request),
        "demo_mode": shop.demo_mode,
        "sim": sim,
        "sim_countries": COUNTRIES.values(),
        "sim_devices": DEVICES.values(),
        "sim_sources": SOURCES.values(),
        "active": None,
        "open_context": False,
        **(context or {}),
    }
    response = shop.templates.TemplateResponse(request, template, values, status_code=status)
    set_csrf_cookie(request, response)
    return response


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)  # after a POST: GET the next page


def _int(value: str | None, low: int, high: int, what: str) -> int:
    try:
        number = int(value or "")
    except ValueError:
        raise HTTPException(400, f"{what} must be a whole number.") from None
    if not low <= number <= high:
        raise HTTPException(400, f"{what} must be between {low} and {high}.")
    return number


# --- catalogue pages ---------------------------------------------------------------------


async def home(request: Request) -> Response:
    return render(
        request,
        "home.html",
        {"bestsellers": catalogue.bestsellers(), "open_context": True},
    )


async def bestsellers(request: Request) -> Response:
    return render(request, "bestsellers.html", {"products": catalogue.bestsellers()})


async def category_page(request: Request) -> Response:
    category = catalogue.category(request.path_params["category"])
    if category is None:
        raise HTTPException(404, "There is no such page in the shop.")
    return render(
        request,
        "category.html",
        {
            "category": category,
            "products": catalogue.in_category(category.id),
            "active": category.id,
        },
    )


async def product_page(request: Request) -> Response:
    product = catalogue.product(request.path_params["product"])
    if product is None or product.category != request.path_params["category"]:
        raise HTTPException(404, "We could not find that product.")
    return render(
        request,
        "product.html",
        {
            "product": product,
            "category": catalogue.category(product.category),
            "active": product.category,
            "max_quantity": MAX_QUANTITY,
        },
    )


# --- cart and checkout -------------------------------------------------------------------


def _with_cart(request: Request, response: Response, items: dict[str, int]) -> Response:
    secure = _shop(request).secure_cookies
    response.set_cookie(
        CART_COOKIE,
        _shop(request).carts.dump(items),
        max_age=30 * 24 * 3600,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" if secure is None else secure,
    )
    return response


async def cart_page(request: Request) -> Response:
    items = _cart(request)
    return render(
        request,
        "cart.html",
        {"lines": lines(items), "total": total(items), "max_quantity": MAX_QUANTITY},
    )


async def cart_add(request: Request) -> Response:
    form = await read_form(request)
    product = catalogue.product(form.get("product_id", ""))
    if product is None:
        raise HTTPException(400, "That product does not exist.")
    quantity = _int(form.get("quantity", "1"), 1, MAX_QUANTITY, "Quantity")
    items = _cart(request)
    if product.id not in items and len(items) >= 20:
        raise HTTPException(400, "Your cart is full.")
    items[product.id] = min(MAX_QUANTITY, items.get(product.id, 0) + quantity)
    return _with_cart(request, _redirect("/cart"), items)


async def cart_update(request: Request) -> Response:
    form = await read_form(request)
    product_id = form.get("product_id", "")
    items = _cart(request)
    if product_id not in items:
        raise HTTPException(400, "That product is not in your cart.")
    quantity = _int(form.get("quantity"), 0, MAX_QUANTITY, "Quantity")
    if quantity:
        items[product_id] = quantity
    else:
        del items[product_id]
    return _with_cart(request, _redirect("/cart"), items)


async def _credit_recommendation(shop: Shop, visitor: Visitor, items: dict[str, int]) -> str | None:
    """Report the purchase as a conversion of the recommendation the visitor was shown.

    The decision is cached per visit, so deciding again returns the teaser this visit saw;
    it is credited when the order contains the product it promoted (must run before the
    order is tracked: after it, the product counts as bought and is suppressed).
    """
    decision = await visitor.decide("recommendation")
    slot = shop.engine.library.slots.get("recommendation")
    if not decision.variant or not decision.decision_id or slot is None:
        return None
    variant = slot.variants.get(decision.variant)
    bought = [pid for pid in items if variant is not None and pid in variant.products]
    if not bought:
        return None
    value = sum(catalogue.PRODUCTS[pid].price * items[pid] for pid in bought)
    try:
        return shop.engine.record(
            decision.decision_id, "conversion", visitor_key=visitor.profile_key or "", value=value
        )
    except ValueError:  # signed by an engine of an earlier run: nothing to credit
        return None


async def checkout(request: Request) -> Response:
    await read_form(request)
    items = _cart(request)
    if not items:
        raise HTTPException(400, "Your cart is empty.")
    visitor = get_visitor(request)
    credited = await _credit_recommendation(_shop(request), visitor, items)
    if credited:
        logger.info("demo: %s", credited)
    order_id = f"o-{secrets.token_hex(4)}"
    try:
        await visitor.track(
            "order",
            {"order_id": order_id, "products": list(items), "value": round(total(items), 2)},
        )
    except (EventError, IdentityError) as exc:  # a bot has no profile to record it in
        raise HTTPException(400, f"The order could not be recorded: {exc}") from None
    response = _redirect("/account/orders?" + urlencode({"placed": order_id}))
    response.delete_cookie(CART_COOKIE)
    return response


async def orders_page(request: Request) -> Response:
    visitor = get_visitor(request)
    profile = visitor.profile
    orders = [e for e in reversed(profile.events) if e.get("kind") == "order"]
    return render(
        request,
        "orders.html",
        {
            "orders": orders,
            "products": catalogue.PRODUCTS,
            "placed": request.query_params.get("placed", "")[:20],
            "tickets": profile.facts.get("tickets", {}),
        },
    )


# --- accounts ------------------------------------------------------------------------------


async def login_page(request: Request) -> Response:
    next_path = _local_path(request.query_params.get("next"))
    return render(request, "login.html", {"logins": DEMO_LOGINS, "next": next_path})


async def login(request: Request) -> Response:
    form = await read_form(request)
    email = form.get("email", "")[:200]
    next_path = _local_path(form.get("next"))
    account = authenticate(email, form.get("password", "")[:200])
    if account is None:
        context = {"logins": DEMO_LOGINS, "next": next_path, "email": email,
                   "error": "That e-mail and password do not match an account."}  # fmt: skip
        return render(request, "login.html", context, status=401)
    visitor = get_visitor(request)
    try:
        await visitor.identify(account.user_id, {"name": account.name})
    except IdentityError as exc:  # a bot or a browser without the visitor cookie machinery
        raise HTTPException(400, f"Could not sign in: {exc}") from None
    return _redirect(next_path)


async def logout(request: Request) -> Response:
    await read_form(request)
    visitor = get_visitor(request)
    with contextlib.suppress(IdentityError):  # a bot: nothing to forget
        visitor.logout()
    return _redirect("/")


# --- support -------------------------------------------------------------------------------


async def support_page(request: Request) -> Response:
    visitor = get_visitor(request)
    tickets = visitor.profile.facts.get("tickets", {})
    return render(
        request,
        "support.html",
        {
            "topics": TICKET_TOPICS,
            "tickets": tickets,
            "opened": request.query_params.get("opened", "")[:20],
        },
    )


async def support_open(request: Request) -> Response:
    form = await read_form(request)
    topic = form.get("topic", "")
    message = form.get("message", "").strip()
    if topic not in TICKET_TOPICS:
        raise HTTPException(400, "Pick one of the topics.")
    if not 0 < len(message) <= MAX_MESSAGE:
        raise HTTPException(400, f"Write a message of 1 to {MAX_MESSAGE} characters.")
    ticket_id = f"t-{secrets.token_hex(4)}"
    try:
        # The message itself would go to the help desk; the profile keeps only the status.
        await get_visitor(request).track(
            "ticket", {"ticket_id": ticket_id, "status": "open", "topic": topic}
        )
    except (EventError, IdentityError) as exc:
        raise HTTPException(400, f"The ticket could not be opened: {exc}") from None
    return _redirect("/support?" + urlencode({"opened": ticket_id}))


async def support_close(request: Request) -> Response:
    form = await read_form(request)
    visitor = get_visitor(request)
    ticket_id = form.get("ticket_id", "")
    ticket = visitor.profile.facts.get("tickets", {}).get(ticket_id)
    if ticket is None:
        raise HTTPException(400, "You have no ticket with that number.")
    if ticket.get("status") == "open":
        await visitor.track("ticket", {"ticket_id": ticket_id, "status": "closed"})
    return _redirect("/support")


# --- the visitor simulator (demo mode) -------------------------------------------------------


async def simulate(request: Request) -> Response:
    shop = _shop(request)
    if not shop.demo_mode:
        raise HTTPException(404, "There is no such page in the shop.")
    form = await read_form(request)
    country, device, source = (
        form.get("country", ""),
        form.get("device", ""),
        form.get("source", ""),
    )
    if country and country not in COUNTRIES:
        raise HTTPException(400, "Unknown country sample.")
    if device and device not in DEVICES:
        raise HTTPException(400, "Unknown device sample.")
    if source and source not in SOURCES:
        raise HTTPException(400, "Unknown source sample.")
    hour: int | None = None
    zone = ""
    if form.get("hour"):
        hour = _int(form.get("hour"), 0, 23, "Hour")
        place = place_for_hour(hour, country)
        if place is None:  # cannot happen with the sample table, which spans every offset
            raise HTTPException(400, "No sample place has that local time now.")
        zone = place.key
    sim = Simulation(country=country, zone=zone, hour=hour, device=device, source=source,
                     arriving=True)  # fmt: skip
    target = _local_path(form.get("next")).split("?", 1)[0]
    if source:
        target += "?" + SOURCES[source].query if SOURCES[source].query else ""
    response = _redirect(target)
    if form.get("new_visit") == "1":
        # Decisions stay put for a whole visit; a new context shows best on a new visit.
        with contextlib.suppress(IdentityError):
            get_visitor(request).logout()
    if sim.active:
        response.set_cookie(SIM_COOKIE, shop.simulations.dump(sim), httponly=True,
                            samesite="lax")  # fmt: skip
    else:
        response.delete_cookie(SIM_COOKIE)
    return response


async def simulate_reset(request: Request) -> Response:
    if not _shop(request).demo_mode:
        raise HTTPException(404, "There is no such page in the shop.")
    form = await read_form(request)
    response = _redirect(_local_path(form.get("next")).split("?", 1)[0])
    response.delete_cookie(SIM_COOKIE)
    return response


# --- errors and the app ------------------------------------------------------------------------


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return Response("Method Not Allowed", status_code=405, headers=exc.headers)
    try:
        get_visitor(request)
    except Exception:  # outside the middleware (an excluded path): plain text
        return Response(exc.detail, status_code=exc.status_code, media_type="text/plain")
    return render(request, "error.html", {"status": exc.status_code, "message": exc.detail},
                  status=exc.status_code)  # fmt: skip


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
        Route("/", home),
        Route("/bestsellers", bestsellers),
        Route("/cart", cart_page),
        Route("/cart/add", cart_add, methods=["POST"]),
        Route("/cart/update", cart_update, methods=["POST"]),
        Route("/checkout", checkout, methods=["POST"]),
        Route("/account/orders", orders_page),
        Route("/login", login_page),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/support", support_page),
        Route("/support", support_open, methods=["POST"]),
        Route("/support/close", support_close, methods=["POST"]),
        Route("/_demo/simulate", simulate, methods=["POST"]),
        Route("/_demo/reset", simulate_reset, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        Route("/{category:str}", category_page),
        Route("/{category:str}/{product:str}", product_page),
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
        **middleware_options,
    )
    if demo_mode:
        # Outside PersonalizeMiddleware (added last = outermost): it rewrites the request
        # before personalization sees it.
        app.add_middleware(SimulatorMiddleware, secret=secret)
    return app


def __getattr__(name: str) -> Any:
    # ``demo_site.app:app`` is built on first access, so importing create_app (tests, other
    # apps) opens no database; uvicorn's getattr builds it once.
    if name == "app":
        demo = os.environ.get("PERSONALIZE_DEMO", "1").strip().lower() not in _OFF
        options: dict[str, Any] = {"learning": LocalLearning()}
        # The editor UI needs credentials from the environment; there is no default password:
        #   PERSONALIZE_ADMIN_USER=editor \
        #   PERSONALIZE_ADMIN_PASSWORD_HASH="$(personalize hash-password)" scripts/demo
        user = os.environ.get("PERSONALIZE_ADMIN_USER")
        password_hash = os.environ.get("PERSONALIZE_ADMIN_PASSWORD_HASH")
        if user and password_hash:
            options["admin_users"] = {user: password_hash}
        if os.environ.get("PERSONALIZE_API_KEY"):
            options["api_keys"] = [os.environ["PERSONALIZE_API_KEY"]]
        built = globals()["app"] = create_app(demo_mode=demo, **options)
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
