"""The shop's own pages: catalogue, cart, checkout and orders."""

from __future__ import annotations

import logging
import secrets
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from demo_site import catalogue
from demo_site.cart import CART_COOKIE, MAX_LINES, MAX_QUANTITY, lines, total
from demo_site.forms import read_form
from demo_site.shop import Shop, cart_of, redirect, render, shop_of, whole_number
from personalize import EventError, IdentityError, Visitor, get_visitor

logger = logging.getLogger("demo_site")

__all__ = [
    "bestsellers",
    "cart_add",
    "cart_page",
    "cart_update",
    "category_page",
    "checkout",
    "home",
    "orders_page",
    "product_page",
]


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


def _with_cart(request: Request, response: Response, items: dict[str, int]) -> Response:
    secure = shop_of(request).secure_cookies
    response.set_cookie(
        CART_COOKIE,
        shop_of(request).carts.dump(items),
        max_age=30 * 24 * 3600,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" if secure is None else secure,
    )
    return response


async def cart_page(request: Request) -> Response:
    items = cart_of(request)
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
    quantity = whole_number(form.get("quantity", "1"), 1, MAX_QUANTITY, "Quantity")
    items = cart_of(request)
    if product.id not in items and len(items) >= MAX_LINES:
        raise HTTPException(400, "Your cart is full.")
    items[product.id] = min(MAX_QUANTITY, items.get(product.id, 0) + quantity)
    return _with_cart(request, redirect("/cart"), items)


async def cart_update(request: Request) -> Response:
    form = await read_form(request)
    product_id = form.get("product_id", "")
    items = cart_of(request)
    if product_id not in items:
        raise HTTPException(400, "That product is not in your cart.")
    quantity = whole_number(form.get("quantity"), 0, MAX_QUANTITY, "Quantity")
    if quantity:
        items[product_id] = quantity
    else:
        del items[product_id]
    return _with_cart(request, redirect("/cart"), items)


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
    items = cart_of(request)
    if not items:
        raise HTTPException(400, "Your cart is empty.")
    visitor = get_visitor(request)
    credited = await _credit_recommendation(shop_of(request), visitor, items)
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
    response = redirect("/account/orders?" + urlencode({"placed": order_id}))
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
