"""Django, served over ASGI: ``request.visitor`` in views, ``personalize`` in templates.

``asgi.py`` wraps Django's ASGI application; ``settings.py`` adds the middleware that sets
``request.visitor`` and the context processor that gives templates ``personalize``::

    # asgi.py
    application = with_lifespan(PersonalizeMiddleware(get_asgi_application(), secret_key=...))

    # settings.py
    MIDDLEWARE = [..., "personalize.integrations.django.VisitorMiddleware"]
    TEMPLATES = [{..., "OPTIONS": {"context_processors": [
        ..., "personalize.integrations.django.context_processor"]}}]

In a template, ``{{ personalize.slot.hero }}`` is the decided HTML of slot ``hero``,
``{% if personalize.in_segment.uk_visitors %}`` tests a segment, and
``personalize.visitor`` is the :class:`~personalize.Visitor`. Without a visitor (an excluded
path, a request that did not pass the middleware) slots render nothing and no segment
matches:

>>> helper = context_processor(object())["personalize"]
>>> helper.slot["hero"], helper.in_segment["uk_visitors"], helper.visitor
(Markup(''), False, None)

WSGI cannot work: the middleware is ASGI only. Under WSGI ``request.visitor`` says so:

>>> class WSGIRequest:  # what Django's runserver and WSGI servers hand a view
...     pass
>>> request = WSGIRequest()
>>> VisitorMiddleware(lambda request: "page")(request)
'page'
>>> bool(request.visitor)
False
>>> request.visitor.context  # doctest: +ELLIPSIS
Traceback (most recent call last):
  ...
personalize.exceptions.MiddlewareMissingError: request.visitor needs Django served over ASGI ...
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any, NoReturn

from markupsafe import Markup
from starlette.types import ASGIApp, Receive, Scope, Send

from personalize import MiddlewareMissingError, PersonalizeMiddleware, Visitor, get_visitor

logger = logging.getLogger("personalize")

_WSGI = (
    "request.visitor needs Django served over ASGI (an ASGI server such as uvicorn or daphne "
    "running asgi.py, whose application is wrapped in PersonalizeMiddleware); this request "
    "came through WSGI (manage.py runserver without daphne, gunicorn's sync workers, "
    "mod_wsgi...), where personalize cannot work"
)
_NOT_SEEN = (
    "PersonalizeMiddleware did not see this request: wrap the application in asgi.py "
    "(application = PersonalizeMiddleware(get_asgi_application(), secret_key=...)), and check "
    "that this path is not excluded. Django's test Client and AsyncClient call Django "
    "directly, without asgi.py: test through an ASGI client on asgi.application instead "
    "(such as starlette.testclient.TestClient(application))"
)


def _visitor(request: Any) -> Visitor | None:
    scope = getattr(request, "scope", None)
    if not isinstance(scope, dict):
        return None
    try:
        return get_visitor(scope)
    except MiddlewareMissingError:
        return None


class MissingVisitor:
    """``request.visitor`` when PersonalizeMiddleware did not see the request: false in an
    ``if``, and reading anything from it raises :class:`~personalize.MiddlewareMissingError`
    saying why."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "<MissingVisitor>"

    def __getattr__(self, name: str) -> NoReturn:
        if name.startswith("__"):  # copy, pickle and Django's __html__ probe ask politely
            raise AttributeError(name)
        raise MiddlewareMissingError(self.reason)


class VisitorMiddleware:
    """Django middleware that sets ``request.visitor`` (sync and async capable)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        # Django builds its middleware chain with asgiref, its own dependency (not ours).
        # In an async chain this middleware must look like a coroutine function to Django;
        # __call__ then returns the next layer's coroutine, which Django awaits.
        sync = importlib.import_module("asgiref.sync")
        if sync.iscoroutinefunction(get_response):
            sync.markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        visitor = _visitor(request)
        if visitor is None:
            reason = _NOT_SEEN if isinstance(getattr(request, "scope", None), dict) else _WSGI
            request.visitor = MissingVisitor(reason)
        else:
            request.visitor = visitor
        return self.get_response(request)


class Slots:
    """``{{ personalize.slot.hero }}``: the decided HTML of a slot (nothing without a
    visitor). Deciding does no I/O, so sync Django templates can call it."""

    __slots__ = ("_visitor",)

    def __init__(self, visitor: Visitor | None) -> None:
        self._visitor = visitor

    def __getitem__(self, name: str) -> Markup:
        if self._visitor is None:
            return Markup("")
        return self._visitor.decide_sync(name).html


class Segments:
    """``{% if personalize.in_segment.uk_visitors %}``: whether the visitor is in a segment."""

    __slots__ = ("_visitor",)

    def __init__(self, visitor: Visitor | None) -> None:
        self._visitor = visitor

    def __getitem__(self, name: str) -> bool:
        return self._visitor is not None and self._visitor.in_segment(name)


class TemplateHelper:
    """What Django templates see as ``personalize``. Nothing is read from the visitor until
    a template asks, so a page that shows nothing personal stays cacheable."""

    __slots__ = ("in_segment", "slot", "visitor")

    def __init__(self, visitor: Visitor | None) -> None:
        self.visitor = visitor
        self.slot = Slots(visitor)
        self.in_segment = Segments(visitor)


def context_processor(request: Any) -> dict[str, TemplateHelper]:
    """Django context processor: ``personalize`` in every template rendered with a request."""
    return {"personalize": TemplateHelper(_visitor(request))}


def with_lifespan(app: PersonalizeMiddleware) -> ASGIApp:
    """``app`` answering the ASGI lifespan, which Django's own handler refuses: at shutdown
    it writes the page views still buffered and closes the store.

    >>> import asyncio
    >>> from personalize import MemoryStore
    >>> async def django(scope, receive, send):
    ...     raise ValueError("Django can only handle ASGI/HTTP connections, not lifespan.")
    >>> application = with_lifespan(
    ...     PersonalizeMiddleware(django, secret_key="s" * 32, store=MemoryStore()))
    >>> async def serve():
    ...     inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    ...     sent = []
    ...     async def receive():
    ...         return inbox.pop(0)
    ...     async def send(message):
    ...         sent.append(message["type"])
    ...     await application({"type": "lifespan"}, receive, send)
    ...     return sent
    >>> asyncio.run(serve())
    ['lifespan.startup.complete', 'lifespan.shutdown.complete']
    """

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await app.aclose()
                except Exception as exc:
                    logger.exception("personalize: closing at shutdown failed")
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    return application
