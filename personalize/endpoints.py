"""The middleware's own HTTP endpoints under a configurable prefix (``/_personalize`` by default).

Feature modules register handlers with :func:`endpoint`; the middleware serves them for
requests under its prefix, after it has built the visitor, so a handler sees the same
``Visitor`` as the application would.

>>> sorted(path for path in ROUTES if path == "/ping")
['/ping']
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

if TYPE_CHECKING:
    from personalize.middleware import PersonalizeMiddleware
    from personalize.visitor import Visitor

Handler = Callable[["Request", "Visitor", "PersonalizeMiddleware"], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Route:
    path: str  # below the prefix, e.g. "/events"
    methods: frozenset[str]
    handler: Handler


ROUTES: dict[str, Route] = {}


def endpoint(path: str, methods: Iterable[str] = ("GET",)) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``<prefix><path>``."""

    def register(handler: Handler) -> Handler:
        ROUTES[path] = Route(path, frozenset(m.upper() for m in methods), handler)
        return handler

    return register


@endpoint("/ping")
async def ping(request: Request, visitor: Visitor, pz: PersonalizeMiddleware) -> Response:
    """A liveness check that also proves the middleware is mounted."""
    return PlainTextResponse("ok")
