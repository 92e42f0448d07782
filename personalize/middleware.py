"""PersonalizeMiddleware: one pure ASGI middleware in front of every page.

>>> from starlette.applications import Starlette
>>> from personalize import MemoryStore
>>> app = PersonalizeMiddleware(Starlette(), secret_key="change-me-to-32-random-characters",
...                             store=MemoryStore(), exclude=["/static/*"])
>>> app.excluded("/static/app.css"), app.excluded("/")
(True, False)
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from fnmatch import translate
from typing import Literal

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from personalize.builder import ContextBuilder, read_headers
from personalize.context import VisitorContext
from personalize.cookie import CookieState, VisitorCookie, new_visitor_id
from personalize.profile import SESSION_TIMEOUT, CategoryMap, Hit
from personalize.service import ProfileService
from personalize.stores.base import ProfileStore
from personalize.visitor import STATE_KEY, Visitor

logger = logging.getLogger("personalize")

DEFAULT_EXCLUDE = ("/static/*", "/favicon.ico", "/robots.txt", "/health", "/healthz")
_MAX_COOKIE_HEADER = 8192


def _merge_cache_control(existing: str | None) -> str:
    """``private`` added to the app's Cache-Control; directives for shared caches removed."""
    keep = []
    for part in (existing or "").split(","):
        directive = part.strip()
        name = directive.split("=", 1)[0].strip().lower()
        if directive and name not in {"public", "private", "s-maxage", "proxy-revalidate"}:
            keep.append(directive)
    return ", ".join(["private", *keep])


class PersonalizeMiddleware:
    """Knows every page's visitor: identity, context and profile, on ``request.state.visitor``.

    Options:
      secret_key: signs the visitor cookie; a list rotates keys (newest first, all verify).
      store: where profiles live; default an SQLite file ``personalize.sqlite3`` in the
        working directory.
      geoip_db: path to a GeoIP2/GeoLite2 City or Country ``.mmdb``; None disables geo.
      trusted_proxies: IPs or CIDRs of reverse proxies whose X-Forwarded-For is believed.
      internal_hosts: other hosts of the same site (".example.com" covers subdomains);
        referrers from them are internal navigation, not a new source.
      categories: shell-style path pattern -> interest category, first match wins.
      site_time_zone: IANA zone for visitors without geo.
      exclude: shell-style path patterns that skip all personalization work.
      cookie_*: the visitor cookie's name, lifetime (seconds), path, domain and SameSite;
        ``cookie_secure=None`` sets Secure on https requests only.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        secret_key: str | Sequence[str],
        store: ProfileStore | None = None,
        geoip_db: str | os.PathLike[str] | None = None,
        trusted_proxies: Iterable[str] = (),
        internal_hosts: Iterable[str] = (),
        categories: Mapping[str, str] | None = None,
        site_time_zone: str = "UTC",
        exclude: Iterable[str] = DEFAULT_EXCLUDE,
        cookie_name: str = "pz_visitor",
        cookie_max_age: int = 365 * 24 * 3600,  # seconds
        cookie_path: str = "/",
        cookie_domain: str | None = None,
        cookie_same_site: Literal["lax", "strict", "none"] = "lax",
        cookie_secure: bool | None = None,
        session_timeout: float = SESSION_TIMEOUT,  # seconds
        profile_cache_size: int = 10_000,
        flush_interval: float = 0.02,  # seconds
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.cookies = VisitorCookie(secret_key, max_age=cookie_max_age, clock=clock)
        if store is None:
            from personalize.stores.sqlite import SQLiteStore

            store = SQLiteStore("personalize.sqlite3")
        store.session_timeout = session_timeout
        self.profiles = ProfileService(
            store, cache_size=profile_cache_size, flush_interval=flush_interval
        )
        self.context = ContextBuilder(
            geoip_db=geoip_db,
            trusted_proxies=trusted_proxies,
            internal_hosts=internal_hosts,
            site_time_zone=site_time_zone,
        )
        self.categories = CategoryMap(categories or {})
        patterns = list(exclude)
        self._exclude = re.compile("|".join(translate(p) for p in patterns)) if patterns else None
        self._clock = clock
        self.cookie_name = cookie_name
        attributes = f"; Path={cookie_path}; Max-Age={cookie_max_age}; HttpOnly"
        if cookie_domain:
            attributes += f"; Domain={cookie_domain}"
        attributes += f"; SameSite={cookie_same_site.capitalize()}"
        self._cookie_attributes = attributes
        if cookie_same_site == "none" and cookie_secure is False:
            raise ValueError("cookie_same_site='none' needs cookie_secure (browsers demand it)")
        self._cookie_secure = cookie_secure

    def excluded(self, path: str) -> bool:
        """True when ``path`` skips personalization (static files, health checks...)."""
        return self._exclude is not None and self._exclude.match(path) is not None

    async def aclose(self) -> None:
        """Write pending profile updates and release the store and the GeoIP reader."""
        await self.profiles.aclose()
        self.context.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.excluded(scope["path"]):
            await self.app(scope, receive, send)
            return

        now = self._clock()
        try:
            visitor, set_cookie = await self._visitor(scope, now)
        except Exception:  # never let a bug or an outage here cost the visitor their page
            logger.exception("personalize: could not build the visitor; serving defaults")
            visitor, set_cookie = (
                Visitor(visitor_id=None, user_id=None, context=VisitorContext(), is_new=False),
                None,
            )
        scope.setdefault("state", {})[STATE_KEY] = visitor
        page: list[bool] = []

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if set_cookie is not None:
                    headers.append("set-cookie", set_cookie)
                if visitor.used or set_cookie is not None:
                    headers["cache-control"] = _merge_cache_control(headers.get("cache-control"))
                    headers.add_vary_header("Cookie")
                status = message["status"]
                ctype = headers.get("content-type", "")
                page.append(200 <= status < 300 and ctype.startswith("text/html"))
            await send(message)

        await self.app(scope, receive, send_wrapper)

        hit = visitor._hit
        key = visitor.profile_key
        if page and page[0] and hit is not None and key is not None and scope["method"] == "GET":
            # After the response: the visitor is not waiting for this write.
            try:
                await self.profiles.record(key, hit)
            except Exception:
                logger.exception("personalize: could not record a page view")

    async def _visitor(self, scope: Scope, now: float) -> tuple[Visitor, str | None]:
        headers = read_headers(scope)
        context = self.context.build(scope, headers, now)
        if context.device.is_bot:
            # Bots get no id, no cookie, no profile, and never feed learning.
            return Visitor(visitor_id=None, user_id=None, context=context, is_new=False), None

        loaded = self.cookies.load(self._read_cookie(headers.get(b"cookie")))
        state = loaded.state
        is_new = state is None
        if state is None:
            state = CookieState(visitor_id=new_visitor_id())
        set_cookie = self._set_cookie(scope, state) if is_new or loaded.reissue else None

        source = context.source
        hit = Hit(
            ts=now,
            path=context.path,
            channel=source.channel,
            source=source.source,
            medium=source.medium,
            campaign=source.campaign,
            term=source.term,
            category=self.categories.category(context.path),
            device_type=context.device.type,
            country=context.geo.country if context.geo else None,
        )
        visitor = Visitor(
            visitor_id=state.visitor_id,
            user_id=state.user_id,
            context=context,
            is_new=is_new,
            hit=hit,
        )
        if not is_new:
            try:
                visitor._stored = await self.profiles.load(visitor.profile_key or "")
            except Exception as exc:  # an outage: keep the identity, show default content
                logger.warning(
                    "personalize: profile store unavailable (%s); serving this "
                    "page without the stored profile",
                    exc,
                )
        return visitor, set_cookie

    def _read_cookie(self, header: str | None) -> str | None:
        if not header or len(header) > _MAX_COOKIE_HEADER:
            return None
        # Fast path: find our cookie by name without parsing every cookie of the site.
        for part in header.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name == self.cookie_name:
                return value.strip().strip('"')
        return None

    def _set_cookie(self, scope: Scope, state: CookieState) -> str:
        value = self.cookies.dump(state)
        secure = self._cookie_secure
        if secure is None:
            secure = scope.get("scheme") == "https"
        return f"{self.cookie_name}={value}{self._cookie_attributes}" + (
            "; Secure" if secure else ""
        )
