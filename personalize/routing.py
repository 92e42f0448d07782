"""The router of the built-in endpoints under a prefix (``/_personalize`` by default).

A :class:`~personalize.Personalizer` owns one :class:`Router`; :func:`personalize.web.install`
adds the built-in endpoints to it, and an application may add its own. The middleware hands
every request under the prefix to it, after it has built the visitor, so a handler sees the
same :class:`~personalize.Visitor` as the application would.

>>> import asyncio
>>> from starlette.responses import PlainTextResponse
>>> router = Router("/_personalize")
>>> async def ping(request, visitor):
...     return PlainTextResponse("ok")
>>> router.add("/ping", ping)
>>> router.handles("/_personalize/ping"), router.handles("/shop")
(True, False)
>>> router.match("/_personalize/ping", "HEAD")[1]
200
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from personalize.exceptions import ConfigurationError, StoreUnavailableError

if TYPE_CHECKING:
    from personalize.visitor import Visitor

__all__ = ["RETRY_AFTER", "Handler", "Route", "Router", "store_unavailable"]

logger = logging.getLogger("personalize")

RETRY_AFTER = 5  # seconds a client is asked to wait while the profile store is unreachable
_UNAVAILABLE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Please try again in a moment</title></head>
<body><h1>Please try again in a moment</h1>
<p>This could not be saved just now, and nothing was changed. Please try again in a few
seconds.</p></body></html>
"""


def store_unavailable(headers: Headers) -> Response:
    """503 with Retry-After, for a request whose action needed the profile store while it
    was unreachable (a login, an erasure, an opt-out): a small page when the client accepts
    HTML (a browser), JSON otherwise (an API client).

    >>> store_unavailable(Headers({"accept": "text/html"})).headers["retry-after"]
    '5'
    >>> store_unavailable(Headers({})).body
    b'{"error":"the profile store is unreachable; nothing was changed, retry later"}'
    """
    extra = {"retry-after": str(RETRY_AFTER), "cache-control": "no-store"}
    if "text/html" in headers.get("accept", ""):
        return HTMLResponse(_UNAVAILABLE_PAGE, status_code=503, headers=extra)
    message = "the profile store is unreachable; nothing was changed, retry later"
    return JSONResponse({"error": message}, status_code=503, headers=extra)


#: An endpoint: the request and its visitor in, a response out.
Handler = Callable[[Request, "Visitor"], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Route:
    path: str  # below the prefix, e.g. "/events"
    methods: frozenset[str]
    handler: Handler


class Router:
    """Routes of exact paths below ``prefix``; HEAD is served wherever GET is.

    A path may also be registered as a *tree* (``tree=True``): it then answers for every path
    below it too (the editor UI guards its whole tree, so unknown paths look like known ones).
    """

    def __init__(self, prefix: str = "/_personalize") -> None:
        self.prefix = "/" + prefix.strip("/")
        self._root = self.prefix + "/"
        self._routes: dict[str, Route] = {}
        self._trees: list[Route] = []

    def add(
        self, path: str, handler: Handler, methods: Iterable[str] = ("GET",), *, tree: bool = False
    ) -> None:
        """Serve ``handler`` at ``<prefix><path>`` for ``methods``."""
        if not path.startswith("/") and path != "":
            raise ConfigurationError(f"a route path starts with '/': {path!r}")
        if path in self._routes:
            raise ConfigurationError(f"{self.prefix}{path} is already routed")
        allowed = {m.upper() for m in methods}
        if "GET" in allowed:
            allowed.add("HEAD")
        route = Route(path, frozenset(allowed), handler)
        self._routes[path] = route
        if tree:
            self._trees.append(route)

    @property
    def paths(self) -> list[str]:
        """The routed paths below the prefix, sorted."""
        return sorted(self._routes)

    def handles(self, path: str) -> bool:
        """True when ``path`` is the prefix or below it."""
        return path.startswith(self.prefix) and (path == self.prefix or path.startswith(self._root))

    def match(self, path: str, method: str) -> tuple[Route | None, int]:
        """The route for a request and the status to answer: 200, 404 or 405."""
        below = path[len(self.prefix) :] or "/"
        route = self._routes.get(below)
        if route is None:
            for tree in self._trees:
                if below.startswith(tree.path + "/"):
                    route = tree
                    break
        if route is None:
            return None, 404
        if method not in route.methods:
            return route, 405
        return route, 200

    async def respond(self, request: Request, visitor: Visitor) -> Response:
        """The response of the endpoint for ``request`` (404, 405, 503 when it needed the
        store while it was unreachable, or 500 if it fails)."""
        route, status = self.match(request.scope["path"], request.method)
        if status == 404 or route is None:
            return PlainTextResponse("Not Found", status_code=404)
        if status == 405:
            allow = ", ".join(sorted(route.methods))
            return PlainTextResponse(
                "Method Not Allowed", status_code=405, headers={"allow": allow}
            )
        try:
            return await route.handler(request, visitor)
        except StoreUnavailableError as exc:
            logger.warning("personalize: %s needed the unreachable store: %s", route.path, exc)
            return store_unavailable(request.headers)
        except Exception:
            logger.exception("personalize: endpoint %s failed", route.path)
            return PlainTextResponse("Internal error, logged", status_code=500)
