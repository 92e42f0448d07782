"""The realistic page of the throughput harness: a shop's product listing.

A Jinja2 listing of 24 products (about 9 KB of HTML) with a hero and a banner at the top.
``make_bare`` renders them from fixed HTML (the reference); ``make_personalized`` puts the
page behind :class:`~personalize.PersonalizeMiddleware` with the repository's ``content/``
and ``segments/``, and the template decides both slots with ``personalize.slot(...)``.

>>> page = render_listing(TEMPLATES.get_template("bare.html"), request=None)
>>> 8_000 < len(page.encode()) < 11_000, page.count('class="product"')
(True, 24)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.types import ASGIApp

ROOT = Path(__file__).resolve().parent.parent

PRODUCTS = [
    {
        "id": f"p{i:03d}",
        "name": f"{colour} {kind}",
        "price": 19.0 + 7.5 * i,
        "url": f"/shop/{kind.lower()}/{colour.lower()}-{i}",
        "image": f"/static/products/{kind.lower()}-{colour.lower()}.webp",
        "blurb": f"A {colour.lower()} {kind.lower()} made to last, in sizes for everyone. "
        "Free delivery over fifty pounds, free returns for sixty days.",
    }
    for i, (colour, kind) in enumerate(
        (c, k)
        for k in ("Sneaker", "Boot", "Tote", "Backpack", "Scarf", "Jacket")
        for c in ("Red", "Navy", "Olive", "Sand")
    )
]

_BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop: new season</title>
<link rel="stylesheet" href="/static/shop.css"></head>
<body><header><nav><a href="/">Home</a> <a href="/shop">Shop</a> <a href="/cart">Cart</a></nav>
{% block hero %}{% endblock %}{% block banner %}{% endblock %}</header>
<main><h2>New this season</h2><ul class="listing">
{% for p in products %}<li class="product" data-id="{{ p.id }}"><a href="{{ p.url }}">
<img src="{{ p.image }}" alt="{{ p.name }}" width="240" height="240" loading="lazy">
<h3>{{ p.name }}</h3></a><p>{{ p.blurb }}</p>
<p class="price">&pound;{{ "%.2f"|format(p.price) }}</p></li>
{% endfor %}</ul></main><footer>&copy; The shop</footer></body></html>
"""
# The bare page shows what the personalized one shows an unknown visitor: the defaults.
_BARE = """{% extends "base.html" %}
{% block hero %}<h1>Welcome to the shop</h1><p>New season, new favourites.</p>{% endblock %}
{% block banner %}<p><strong>Free returns</strong> for 60 days - no questions asked.</p>
{% endblock %}
"""
_PERSONALIZED = """{% extends "base.html" %}
{% block hero %}{{ personalize.slot("hero") }}{% endblock %}
{% block banner %}{{ personalize.slot("banner") }}{% endblock %}
"""


def environment() -> jinja2.Environment:
    """The listing's templates: ``bare.html`` and ``personalized.html``."""
    return jinja2.Environment(
        loader=jinja2.DictLoader(
            {"base.html": _BASE, "bare.html": _BARE, "personalized.html": _PERSONALIZED}
        ),
        autoescape=True,
    )


TEMPLATES = environment()


def render_listing(template: jinja2.Template, request: Request | None) -> str:
    return template.render(request=request, products=PRODUCTS)


def _page(env: jinja2.Environment, name: str) -> Callable[[Request], Any]:
    template = env.get_template(name)

    async def listing(request: Request) -> HTMLResponse:
        return HTMLResponse(render_listing(template, request))

    return listing


def make_bare() -> Starlette:
    """The listing with fixed hero and banner, no middleware: the reference."""
    return Starlette(routes=[Route("/", _page(TEMPLATES, "bare.html"))])


def make_personalized(store: Any, *, slots: bool = True) -> ASGIApp:
    """The listing behind PersonalizeMiddleware (``store``), hero and banner decided from
    the repository's ``content/`` and ``segments/``; with ``slots=False`` the bare page's
    fixed hero and banner and no content: what the middleware costs a page that decides
    nothing (the segments are still loaded)."""
    from personalize import PersonalizeMiddleware
    from personalize.templating import install

    holder: list[PersonalizeMiddleware] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for middleware in holder:
            await middleware.aclose()

    env = environment()
    install(env)  # decisions through each request's visitor
    page = _page(env, "personalized.html" if slots else "bare.html")
    inner = Starlette(routes=[Route("/", page)], lifespan=lifespan)
    middleware = PersonalizeMiddleware(
        inner,
        secret_key=os.environ.get("BENCH_SECRET", "benchmark-only-secret-0123456789abcdef"),
        store=store,
        content=ROOT / "content" if slots else None,
        segments=ROOT / "segments",
    )
    holder.append(middleware)
    return middleware
