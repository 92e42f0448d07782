"""Quart: ``g.visitor`` in every request, ``personalize.slot()`` in every template.

Wrap ``app.asgi_app`` (Quart's place for ASGI middleware), then call :func:`init_app`:

>>> from quart import Quart, g
>>> from personalize import MemoryStore, PersonalizeMiddleware
>>> app = Quart(__name__)
>>> app.asgi_app = PersonalizeMiddleware(app.asgi_app, secret_key="s" * 32, store=MemoryStore())
>>> init_app(app)
>>> @app.get("/")
... async def home():
...     return f"{g.visitor.context.device.type} visit {g.visitor.profile.visits}"
>>> async def visit():
...     async with app.test_app() as test_app:
...         response = await test_app.test_client().get(
...             "/", headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64)"})
...         return await response.get_data(as_text=True)
>>> import asyncio
>>> asyncio.run(visit())
'desktop visit 1'
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

from personalize import (
    ConfigurationError,
    MiddlewareMissingError,
    PersonalizeMiddleware,
    get_visitor,
)
from personalize.templating import install


def _middleware(app: Any) -> PersonalizeMiddleware:
    """The PersonalizeMiddleware in ``app.asgi_app``, under any middleware wrapped after it."""
    node: Any = app.asgi_app
    seen: set[int] = set()
    while node is not None and id(node) not in seen:  # ASGI middleware hold the next as .app
        if isinstance(node, PersonalizeMiddleware):
            return node
        seen.add(id(node))
        node = getattr(node, "app", None)
    raise ConfigurationError(
        "init_app(app) needs PersonalizeMiddleware in app.asgi_app first: "
        "app.asgi_app = PersonalizeMiddleware(app.asgi_app, secret_key=...)"
    )


def init_app(app: Any) -> None:
    """Give the Quart ``app`` what its views and templates need from personalize.

    - ``g.visitor``: the :class:`~personalize.Visitor`, set before each request (absent on
      paths the middleware excludes, such as ``/static/*``);
    - ``{{ personalize.slot("hero") }}`` in its Jinja2 templates
      (:func:`personalize.templating.install`);
    - after serving, the page views still buffered are written and the store is closed.

    Raises :class:`~personalize.ConfigurationError` when ``app.asgi_app`` is not wrapped in
    PersonalizeMiddleware.
    """
    middleware = _middleware(app)
    # Quart's request context: imported here, when the application is being set up.
    quart = importlib.import_module("quart")

    async def set_visitor() -> None:
        with contextlib.suppress(MiddlewareMissingError):  # an excluded path: no visitor
            quart.g.visitor = get_visitor(quart.request.scope)

    app.before_request(set_visitor)
    app.after_serving(middleware.aclose)
    install(app.jinja_env)
