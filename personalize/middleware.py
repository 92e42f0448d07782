"""PersonalizeMiddleware: one pure ASGI middleware in front of every page.

It adapts a :class:`~personalize.Personalizer` to ASGI, as Starlette's ``SessionMiddleware``
adapts a signer: the visitor goes into the scope, personalized responses get their cookie and
cache headers, requests under the prefix go to the built-in endpoints, and the page view is
recorded after the response.

>>> from starlette.applications import Starlette
>>> from personalize import MemoryStore
>>> app = PersonalizeMiddleware(Starlette(), secret_key="change-me-to-32-random-characters",
...                             store=MemoryStore(), exclude=["/static/*"])
>>> app.excluded("/static/app.css"), app.excluded("/")
(True, False)
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from personalize.context.client_hints import ACCEPT_CH, HEADER_NAMES, HIGH_ENTROPY_HINTS
from personalize.exceptions import StoreUnavailableError
from personalize.personalizer import Personalizer
from personalize.routing import store_unavailable
from personalize.scope import STATE_KEY
from personalize.visitor import Visitor
from personalize.web import install

__all__ = ["PersonalizeMiddleware"]

logger = logging.getLogger("personalize")
_FINISHED_SIZE = 1024  # response header lists remembered with what the middleware made of them


@functools.lru_cache(maxsize=256)
def _merge_cache_control(existing: bytes | None) -> bytes:
    """``private`` added to the app's Cache-Control; directives for shared caches removed.

    >>> _merge_cache_control(b"public, max-age=60, s-maxage=600")
    b'private, max-age=60'
    """
    keep = []
    for part in (existing or b"").split(b","):
        directive = part.strip()
        name = directive.split(b"=", 1)[0].strip().lower()
        if directive and name not in {b"public", b"private", b"s-maxage", b"proxy-revalidate"}:
            keep.append(directive)
    return b", ".join([b"private", *keep])


@functools.lru_cache(maxsize=256)
def _add_vary(existing: bytes | None, hints: tuple[str, ...] = ()) -> bytes:
    """The Vary header with Cookie in it, and the client hints the context read.

    >>> _add_vary(b"Accept-Encoding"), _add_vary(b"cookie"), _add_vary(None)
    (b'Accept-Encoding, Cookie', b'cookie', b'Cookie')
    >>> _add_vary(b"Accept-Encoding", ("Sec-CH-UA-Mobile", "Sec-CH-UA-Platform"))
    b'Accept-Encoding, Cookie, Sec-CH-UA-Mobile, Sec-CH-UA-Platform'
    """
    names = {part.strip().lower() for part in (existing or b"").split(b",")}
    if b"*" in names:
        return existing or b"*"
    wanted = dict.fromkeys(("Cookie", *hints))
    missing = [n.encode() for n in wanted if n.lower().encode() not in names]
    return b", ".join([existing, *missing] if existing else missing) or b"Cookie"


class PersonalizeMiddleware:
    """Knows every page's visitor: identity, context and profile, on ``request.state.visitor``.

    Give it the options of :class:`~personalize.Settings` as keyword arguments (``secret_key``,
    ``store``, ``segments``, ``content``, ...), or a :class:`~personalize.Personalizer` built
    from them (to share one between apps, or to reach it from code outside requests).
    """

    def __init__(
        self, app: ASGIApp, personalizer: Personalizer | None = None, **options: Any
    ) -> None:
        self.app = app
        if personalizer is None:
            personalizer = Personalizer(**options)
        elif options:
            raise TypeError("give a Personalizer or its options, not both")
        self.personalizer = personalizer
        install(personalizer)  # the built-in endpoints, once per personalizer
        self._router = personalizer.router
        self._engine = personalizer.decisions
        # The pattern's own match (in C: this runs for every request), None without one.
        exclusion = personalizer.exclusion
        self._exclude = exclusion.match if exclusion is not None else None
        self._prefix = self._router.prefix
        # Asked on HTML responses: browsers take Accept-CH from top-level documents only. The
        # hints asked for are in Vary from then on: the next request's page depends on them.
        wants_hints = personalizer.settings.client_hints == "request"
        self._accept_ch = ACCEPT_CH.encode() if wants_hints else None
        self._asked = tuple(HEADER_NAMES[h] for h in HIGH_ENTROPY_HINTS) if wants_hints else ()
        self._finished: dict[tuple[Any, ...], tuple[list[tuple[bytes, bytes]], bool, bool]] = {}

    def excluded(self, path: str) -> bool:
        """True when ``path`` skips personalization (static files, health checks...)."""
        return self.personalizer.excluded(path)

    async def aclose(self) -> None:
        """Write pending profile updates and release the store and the GeoIP reader."""
        await self.personalizer.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._lifespan(send))
            return
        path = scope["path"] if scope["type"] == "http" else None
        if path is None or (self._exclude is not None and self._exclude(path) is not None):
            await self.app(scope, receive, send)
            return

        personalizer = self.personalizer
        try:
            found = personalizer.visitor_now(scope)
            if not isinstance(found, Visitor):  # the store must be read first
                found = await personalizer.visitor_for(scope, found)
            visitor = found
        except Exception:  # never let a bug or an outage here cost the visitor their page
            logger.exception("personalize: could not build the visitor; serving defaults")
            # With the site attached, its endpoints (opt-out on /me...) still work.
            visitor = personalizer.fallback()
        state = scope.get("state")
        if state is None:
            scope["state"] = state = {}
        state[STATE_KEY] = visitor
        page: list[bool] = []

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                page.append(self._finish_headers(scope, message, visitor))
            await send(message)

        # (the prefix first, without a call: this runs for every request)
        if path.startswith(self._prefix) and self._router.handles(path):
            response = await self._router.respond(Request(scope, receive), visitor)
            await response(scope, receive, send_wrapper)
            self._decided(scope, visitor)
            await personalizer.state.settle()
            await personalizer.impact.settle()
            return
        try:
            await self.app(scope, receive, send_wrapper)
        except StoreUnavailableError as exc:  # a login or erasure during an outage
            if page:  # the response has started: too late to answer 503
                raise
            logger.warning("personalize: %s needed the unreachable store: %s", path, exc)
            response = store_unavailable(Headers(scope=scope))
            await response(scope, receive, send_wrapper)
            return
        engine = self._engine  # (inline: this runs for every page)
        if engine is not None and engine.shared is not None:
            engine.decided_on(path, visitor.decided or ())
        if page and page[0] and scope["method"] == "GET":
            # After the response: the visitor is not waiting for this write (and most page
            # views are only buffered: no coroutine then).
            if personalizer.record_now(visitor):
                await personalizer.record_rest(visitor)
        elif visitor.pending_write:  # a logout's revocation, after a redirect or a POST
            await personalizer.record(visitor, page_view=False)
        # The decision state the page changed and the exposures and outcomes it reported, if
        # any (asked first, without a coroutine: most responses have nothing to write).
        if personalizer.state.due:
            await personalizer.state.settle()
        if personalizer.impact.due:
            await personalizer.impact.settle()

    def _decided(self, scope: Scope, visitor: Visitor) -> None:
        """Tell the decision engine which slots a page on this path decided (maybe none):
        the shared state read before the next page on it asks for those alone."""
        engine = self._engine
        if engine is not None and engine.shared is not None:
            engine.decided_on(scope["path"], visitor.decided or ())

    def _lifespan(self, send: Send) -> Send:
        """``send`` for the lifespan: before the app reports its start-up complete, learning
        resumes from its snapshot; before it reports its shutdown complete, the page views
        still buffered are written and the store closed (the server exits after it)."""

        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                await self.personalizer.start()
            if message["type"] == "lifespan.shutdown.complete":
                try:
                    await self.personalizer.aclose()
                except Exception:
                    logger.exception("personalize: could not close the store at shutdown")
            await send(message)

        return lifespan_send

    def _finish_headers(self, scope: Scope, message: Message, visitor: Visitor) -> bool:
        """Add Set-Cookie, Cache-Control: private and Vary (Cookie, the client hints read or
        asked for) where they belong, and Accept-CH to HTML when the site asks for hints;
        return whether the response is a page view (2xx HTML). Works on the raw header list,
        and remembers the result by the headers the app sent: this runs for every response."""
        raw = message.get("headers") or []
        cookie = visitor.cookie_out
        personalized = visitor.used or cookie is not None
        hints = visitor.context.client_hints + self._asked if personalized else ()
        try:
            key = (personalized, hints, *raw)
            found = self._finished.get(key)
        except TypeError:  # something unhashable where ASGI promises bytes: no memo
            key, found = None, None
        if found is None:
            found = self._finish(raw, personalized, hints)
            if key is not None:
                if len(self._finished) >= _FINISHED_SIZE:
                    self._finished.pop(next(iter(self._finished)), None)  # the oldest first
                self._finished[key] = found
        headers, html, changed = found
        if changed:
            headers = headers.copy()  # (the memo's own list stays as it is)
            if cookie is not None:
                https = scope.get("scheme") == "https"
                headers.append(
                    (b"set-cookie", self.personalizer.cookies.set_cookie(cookie, https=https))
                )
            message["headers"] = headers
        return html and 200 <= message["status"] < 300

    def _finish(
        self, raw: list[tuple[bytes, bytes]], personalized: bool, hints: tuple[str, ...]
    ) -> tuple[list[tuple[bytes, bytes]], bool, bool]:
        """The response headers (but Set-Cookie), whether it is HTML, and whether they
        changed."""
        content_type = b""
        cache_control: bytes | None = None
        vary: bytes | None = None
        accept_ch = self._accept_ch
        headers: list[tuple[bytes, bytes]] = []
        for name, value in raw:
            lowered = name.lower()
            if lowered == b"content-type":
                content_type = value
            elif accept_ch is not None and lowered == b"accept-ch":
                accept_ch = None  # the app asks for hints itself
            elif personalized and lowered == b"cache-control":
                cache_control = value
                continue
            elif personalized and lowered == b"vary":
                vary = value if vary is None else vary + b", " + value
                continue
            headers.append((name, value))
        changed = personalized
        if accept_ch is not None and content_type.startswith(b"text/html"):
            headers.append((b"accept-ch", accept_ch))
            changed = True
        if personalized:
            headers.append((b"cache-control", _merge_cache_control(cache_control)))
            headers.append((b"vary", _add_vary(vary, hints) if hints else _add_vary(vary)))
        return headers, content_type.startswith(b"text/html"), changed
