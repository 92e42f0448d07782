"""What every handler of the shop shares: the :class:`Shop` record, page rendering, redirects,
form numbers and the error page.

>>> local_path("/cart"), local_path("//evil.example/"), local_path("https://evil.example/")
('/cart', '/', '/')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from demo_site import catalogue
from demo_site.cart import CART_COOKIE, CartCodec
from demo_site.forms import CSRF_FIELD, csrf_token, set_csrf_cookie
from demo_site.simulator import COUNTRIES, DEVICES, SOURCES, Simulation, SimulationCodec
from personalize import DecisionEngine, get_visitor


@dataclass(frozen=True, slots=True)
class Shop:
    """What the handlers share; one per app (``request.app.state.shop``)."""

    templates: Jinja2Templates
    engine: DecisionEngine
    carts: CartCodec
    simulations: SimulationCodec
    demo_mode: bool
    secure_cookies: bool | None


def shop_of(request: Request) -> Shop:
    shop: Shop = request.app.state.shop
    return shop


def cart_of(request: Request) -> dict[str, int]:
    return shop_of(request).carts.load(request.cookies.get(CART_COOKIE))


def local_path(value: str | None, default: str = "/") -> str:
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
    shop = shop_of(request)
    visitor = get_visitor(request)
    sim = request.scope.get("demo.simulation") or Simulation()
    items = cart_of(request)
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


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)  # after a POST: GET the next page


def whole_number(value: str | None, low: int, high: int, what: str) -> int:
    """A form field as a whole number from ``low`` to ``high``; 400 with ``what`` otherwise."""
    try:
        number = int(value or "")
    except ValueError:
        raise HTTPException(400, f"{what} must be a whole number.") from None
    if not low <= number <= high:
        raise HTTPException(400, f"{what} must be between {low} and {high}.")
    return number


async def http_error(request: Request, exc: Exception) -> Response:
    """The shop's error page (plain text outside the middleware, e.g. a static file)."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return Response("Method Not Allowed", status_code=405, headers=exc.headers)
    try:
        get_visitor(request)
    except Exception:  # outside the middleware (an excluded path): plain text
        return Response(exc.detail, status_code=exc.status_code, media_type="text/plain")
    return render(request, "error.html", {"status": exc.status_code, "message": exc.detail},
                  status=exc.status_code)  # fmt: skip
