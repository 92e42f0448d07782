"""PersonalizeMiddleware: one pure ASGI middleware in front of every page.

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
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from fnmatch import translate
from pathlib import Path
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from personalize import admin, decisions_api, events_api, me, metrics  # noqa: F401 - registers endpoints
from personalize.builder import ContextBuilder, read_headers
from personalize.context import VisitorContext
from personalize.cookie import OPTED_OUT, CookieState, VisitorCookie, new_visitor_id
from personalize.decisions import DecisionEngine
from personalize.endpoints import ROUTES
from personalize.exceptions import ConfigurationError
from personalize.identity import DEFAULT_JUNK_IDS
from personalize.learning.runtime import LocalLearning, StreamLearning
from personalize.metrics import registry_for
from personalize.profile import MAX_ALIASES, SESSION_TIMEOUT, CategoryMap, Hit
from personalize.segments import SegmentLibrary
from personalize.service import MISSING, ProfileService
from personalize.stores.base import FORWARD_GRACE, ProfileStore
from personalize.visitor import STATE_KEY, Visitor

logger = logging.getLogger("personalize")

DEFAULT_EXCLUDE = ("/static/*", "/favicon.ico", "/robots.txt", "/health", "/healthz")
_MAX_COOKIE_HEADER = 8192


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
def _add_vary_cookie(existing: bytes | None) -> bytes:
    """The Vary header with Cookie in it.

    >>> _add_vary_cookie(b"Accept-Encoding"), _add_vary_cookie(b"cookie"), _add_vary_cookie(None)
    (b'Accept-Encoding, Cookie', b'cookie', b'Cookie')
    """
    if not existing:
        return b"Cookie"
    names = {part.strip().lower() for part in existing.split(b",")}
    if b"cookie" in names or b"*" in names:
        return existing
    return existing + b", Cookie"


def _api_key(key: str) -> str:
    if not isinstance(key, str) or len(key) < 16:
        raise ConfigurationError("api_keys must be strings of at least 16 characters")
    return key


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
      segments: a folder of segment YAML files (or a SegmentLibrary); reloaded on change.
      content: a folder of slot/variant YAML files (or a DecisionEngine); reloaded on change.
      site_time_zone: IANA zone for visitors without geo.
      exclude: shell-style path patterns that skip all personalization work.
      cookie_*: the visitor cookie's name, lifetime (seconds), path, domain and SameSite;
        ``cookie_secure=None`` sets Secure on https requests only.
      api_keys: keys that authenticate the server-to-server events API
        (``Authorization: Bearer <key>``); without any, that endpoint answers 403.
      path_prefix: where the middleware's own endpoints live (``/_personalize``).
      junk_user_ids: user ids ``identify`` refuses ("null", "guest", ...).
      max_aliases: anonymous profiles merged into one known profile before merging stops.
      consent: "implied" remembers visitors from their first page; "required" personalizes
        from the request alone and stores nothing (no profile, no cookie) until the app
        calls ``visitor.give_consent()``. Either way ``Sec-GPC: 1`` or an opt-out switches
        the visitor to context-only for good.
      admin_users: user name -> password hash (``personalize hash-password``) of the
        editors allowed into the editor UI at ``<path_prefix>/admin``; without any, the
        editor UI is disabled. There is no default password.
      learning: ``LocalLearning()`` learns propensity, clusters and anomalies in-process;
        ``StreamLearning(redis_url)`` sends events to the ``personalize learner`` process and
        predicts with its snapshots. None (the default) learns nothing.
      metrics_public: serve ``<path_prefix>/metrics`` (Prometheus) without an API key.
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
        segments: SegmentLibrary | str | os.PathLike[str] | None = None,
        content: DecisionEngine | str | os.PathLike[str] | None = None,
        site_time_zone: str = "UTC",
        exclude: Iterable[str] = DEFAULT_EXCLUDE,
        cookie_name: str = "pz_visitor",
        cookie_max_age: int = 365 * 24 * 3600,  # seconds
        cookie_path: str = "/",
        cookie_domain: str | None = None,
        cookie_same_site: Literal["lax", "strict", "none"] = "lax",
        cookie_secure: bool | None = None,
        session_timeout: float = SESSION_TIMEOUT,  # seconds
        api_keys: Iterable[str] = (),
        path_prefix: str = "/_personalize",
        junk_user_ids: Iterable[str] = DEFAULT_JUNK_IDS,
        max_aliases: int = MAX_ALIASES,
        consent: Literal["implied", "required"] = "implied",
        admin_users: Mapping[str, str] | None = None,
        learning: LocalLearning | StreamLearning | None = None,
        metrics_public: bool = False,
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
        if segments is not None and not isinstance(segments, SegmentLibrary):
            segments = SegmentLibrary(Path(segments))
        self.segments: SegmentLibrary | None = segments
        if content is not None and not isinstance(content, DecisionEngine):
            # Decision ids are signed with a key derived from the cookie secret, so every
            # worker of the site accepts the clicks of every other.
            first_key = secret_key if isinstance(secret_key, str) else secret_key[0]
            content = DecisionEngine(
                Path(content), segments=segments, secret=f"decisions:{first_key}", clock=clock
            )
        self.decisions: DecisionEngine | None = content
        patterns = list(exclude)
        self._exclude = re.compile("|".join(translate(p) for p in patterns)) if patterns else None
        self._clock = clock
        self.cookie_name = cookie_name
        self._cookie_prefix = cookie_name + "="
        attributes = f"; Path={cookie_path}; Max-Age={cookie_max_age}; HttpOnly"
        if cookie_domain:
            attributes += f"; Domain={cookie_domain}"
        attributes += f"; SameSite={cookie_same_site.capitalize()}"
        self._cookie_attributes = attributes
        if cookie_same_site == "none" and cookie_secure is False:
            raise ValueError("cookie_same_site='none' needs cookie_secure (browsers demand it)")
        self._cookie_secure = cookie_secure
        self.api_keys = tuple(_api_key(k) for k in api_keys)
        self.path_prefix = "/" + path_prefix.strip("/")
        self._endpoints_root = self.path_prefix + "/"
        self.junk_user_ids = frozenset(j.strip().lower() for j in junk_user_ids)
        self.max_aliases = max_aliases
        if consent not in ("implied", "required"):
            raise ConfigurationError(f"consent must be 'implied' or 'required', not {consent!r}")
        self.consent = consent
        self.admin_users: dict[str, str] = dict(admin_users or {})
        self.learning = learning
        self.metrics_public = metrics_public
        self.counts = {"remembered": 0, "context": 0, "bot": 0, "error": 0}
        self.metrics_registry = registry_for(self)

    def learned_scores(self, visitor: Visitor) -> dict[str, Any] | None:
        """Scores from the learned models (propensity, cluster, anomaly) for segment rules."""
        if self.learning is None or not visitor.remembers:
            return None
        return self.learning.scores(visitor)

    def consent_given(self, visitor: Visitor) -> bool:
        """Whether a new cookie for ``visitor`` carries an explicit consent (kept when the id
        changes at login, logout or erasure)."""
        return visitor.consent

    def hit_for(self, visitor: Visitor) -> Hit | None:
        """The page view of the current request, for a visitor who just became remembered."""
        if visitor.id is None:
            return None
        return _make_hit(visitor._context, self.categories, visitor._now, visitor.id)

    def now(self) -> float:
        """The current time in seconds, from the clock the middleware was given."""
        return self._clock()

    def excluded(self, path: str) -> bool:
        """True when ``path`` skips personalization (static files, health checks...)."""
        return self._exclude is not None and self._exclude.match(path) is not None

    async def aclose(self) -> None:
        """Write pending profile updates and release the store and the GeoIP reader."""
        await self.profiles.aclose()
        self.context.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            self._exclude is not None and self._exclude.match(scope["path"]) is not None
        ):
            await self.app(scope, receive, send)
            return

        now = self._clock()
        try:
            visitor = await self._visitor(scope, now)
        except Exception:  # never let a bug or an outage here cost the visitor their page
            logger.exception("personalize: could not build the visitor; serving defaults")
            # With the middleware attached, its endpoints (opt-out on /me...) still work.
            visitor = Visitor(
                visitor_id=None,
                user_id=None,
                context=VisitorContext(),
                is_new=False,
                middleware=self,
            )
            self.counts["error"] += 1
        else:
            kind = "bot" if visitor.is_bot else "remembered" if visitor.remembers else "context"
            self.counts[kind] += 1
        scope.setdefault("state", {})[STATE_KEY] = visitor
        page: list[bool] = []

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                page.append(self._finish_headers(scope, message, visitor))
            await send(message)

        path = scope["path"]
        if path.startswith(self.path_prefix) and (
            path == self.path_prefix or path.startswith(self._endpoints_root)
        ):
            await self._endpoint(scope, receive, send_wrapper, visitor)
            return
        await self.app(scope, receive, send_wrapper)

        hit = visitor._hit
        key = visitor.profile_key
        if (
            page
            and page[0]
            and hit is not None
            and key is not None
            and visitor.remembers
            and scope["method"] == "GET"
        ):
            # After the response: the visitor is not waiting for this write.
            try:
                await self.profiles.record(
                    key, hit, new=visitor.is_new, read=visitor._page_view_read()
                )
            except Exception:
                logger.exception("personalize: could not record a page view")
            if self.learning is not None:
                try:
                    self.learning.observe(visitor)
                    await self.learning.drain()
                except Exception:
                    logger.exception("personalize: learning failed for a page view")

    def _finish_headers(self, scope: Scope, message: Message, visitor: Visitor) -> bool:
        """Add Set-Cookie, Cache-Control: private and Vary: Cookie where they belong;
        return whether the response is a page view (2xx HTML). Works on the raw header list:
        this runs for every response."""
        raw = message.get("headers") or []
        cookie = visitor.cookie_out
        personalized = visitor.used or cookie is not None
        content_type = b""
        cache_control: bytes | None = None
        vary: bytes | None = None
        headers: list[tuple[bytes, bytes]] = []
        for name, value in raw:
            lowered = name.lower()
            if lowered == b"content-type":
                content_type = value
            elif personalized and lowered == b"cache-control":
                cache_control = value
                continue
            elif personalized and lowered == b"vary":
                vary = value if vary is None else vary + b", " + value
                continue
            headers.append((name, value))
        if personalized:
            headers.append((b"cache-control", _merge_cache_control(cache_control)))
            headers.append((b"vary", _add_vary_cookie(vary)))
            if cookie is not None:
                headers.append((b"set-cookie", self._set_cookie(scope, cookie).encode("latin-1")))
            message["headers"] = headers
        status = message["status"]
        return 200 <= status < 300 and content_type.startswith(b"text/html")

    async def _endpoint(self, scope: Scope, receive: Receive, send: Send, visitor: Visitor) -> None:
        route = ROUTES.get(scope["path"][len(self.path_prefix) :] or "/")
        request = Request(scope, receive)
        if route is None:
            response: Response = PlainTextResponse("Not Found", status_code=404)
        elif scope["method"] not in route.methods:
            response = PlainTextResponse(
                "Method Not Allowed", status_code=405, headers={"allow": ", ".join(route.methods)}
            )
        else:
            try:
                response = await route.handler(request, visitor, self)
            except Exception:
                logger.exception("personalize: endpoint %s failed", route.path)
                response = PlainTextResponse("Internal error, logged", status_code=500)
        await response(scope, receive, send)

    async def _visitor(self, scope: Scope, now: float) -> Visitor:
        headers = read_headers(scope)
        context = self.context.build(scope, headers, now)
        if context.device.is_bot:
            # Bots get no id, no cookie, no profile, and never feed learning.
            return Visitor(visitor_id=None, user_id=None, context=context, is_new=False)

        loaded = self.cookies.load(self._read_cookie(headers.get(b"cookie")))
        state = loaded.state
        if (state is not None and state.opted_out) or context.signals.gpc:
            # Context-only for good: no id, no profile; the cookie only says "opted out".
            visitor = Visitor(
                visitor_id=None, user_id=None, context=context, is_new=False, middleware=self
            )
            if state is None or not state.opted_out or loaded.reissue:
                visitor.cookie_out = OPTED_OUT
            return visitor
        if self.consent == "required" and (state is None or not state.consent):
            # Until the visitor consents: personalize from the request, persist nothing.
            return Visitor(
                visitor_id=None,
                user_id=None,
                context=context,
                is_new=state is None,
                middleware=self,
            )
        is_new = state is None
        if state is None:
            state = CookieState(visitor_id=new_visitor_id())
        visitor = Visitor(
            visitor_id=state.visitor_id,
            user_id=state.user_id,
            context=context,
            is_new=is_new,
            hit=_make_hit(context, self.categories, now, state.visitor_id),
            middleware=self,
        )
        visitor.consent = state.consent
        if is_new or loaded.reissue:
            visitor.cookie_out = state
        if is_new:
            return visitor
        key = visitor.profile_key or ""
        stored = self.profiles.cached(key)
        if stored is MISSING:
            try:
                stored = await self.profiles.load(key)
            except Exception as exc:  # an outage: keep the identity, show default content
                logger.warning(
                    "personalize: profile store unavailable (%s); serving this "
                    "page without the stored profile",
                    exc,
                )
                stored = None
        if stored is not None and stored.merged_into is not None:
            # This anonymous id was merged at a login: it never reads the known profile.
            # Requests in flight during the login still count (they are forwarded);
            # after that the browser starts over as a new anonymous visitor.
            if now > (stored.merged_at or 0.0) + FORWARD_GRACE:
                fresh = CookieState(visitor_id=new_visitor_id(), consent=state.consent)
                visitor = Visitor(
                    visitor_id=fresh.visitor_id,
                    user_id=None,
                    context=context,
                    is_new=True,
                    hit=_make_hit(context, self.categories, now, fresh.visitor_id),
                    middleware=self,
                )
                visitor.consent = state.consent
                visitor.cookie_out = fresh
                return visitor
            stored = None
        visitor._stored = stored
        return visitor

    def _read_cookie(self, header: str | None) -> str | None:
        """The value of the visitor cookie in a Cookie header (the first, if repeated).

        >>> from personalize import MemoryStore
        >>> m = PersonalizeMiddleware(None, secret_key="s" * 32, store=MemoryStore())
        >>> m._read_cookie('a=1; xpz_visitor=no; b pz_visitor=no;\tpz_visitor="v1" ; pz_visitor=v2')
        'v1'
        >>> m._read_cookie("pz_visitor =v1; pz_visitor"), m._read_cookie("pz_visitor=")
        (None, '')
        """
        if not header or len(header) > _MAX_COOKIE_HEADER:
            return None
        # Find our cookie by name without splitting every cookie of the site.
        prefix = self._cookie_prefix
        start = header.find(prefix)
        while start != -1:
            # A name, not the end of another one: only whitespace since the last ";".
            before = header[header.rfind(";", 0, start) + 1 : start]
            if not before or before.isspace():
                end = header.find(";", start)
                value = header[start + len(prefix) : end if end != -1 else len(header)]
                return value.strip().strip('"')
            start = header.find(prefix, start + 1)
        return None

    def _set_cookie(self, scope: Scope, state: CookieState) -> str:
        value = self.cookies.dump(state)
        secure = self._cookie_secure
        if secure is None:
            secure = scope.get("scheme") == "https"
        return f"{self.cookie_name}={value}{self._cookie_attributes}" + (
            "; Secure" if secure else ""
        )


def _make_hit(context: VisitorContext, categories: CategoryMap, now: float, device_id: str) -> Hit:
    device = context.device
    source = context.source
    path = context.path
    # Positional, in field order (ts, path, channel, source, medium, campaign, term,
    # category, device_type, country, device_id, os, browser): this runs for every request.
    return Hit(
        now,
        path,
        source.channel,
        source.source,
        source.medium,
        source.campaign,
        source.term,
        categories.category(path),
        device.type,
        context.geo.country if context.geo else None,
        device_id,
        device.os,
        device.browser,
    )
