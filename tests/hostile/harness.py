"""The middleware, as a site mounts it, driven with raw ASGI messages; every request checked.

One :class:`Harness` per test module: two middlewares (consent implied with every feature on,
and consent required under another prefix and cookie) around one tiny Starlette app, on one
long-lived event loop, and a third like the first on an SQLite store that compacts after
every write (what the events API accepts must also be storable, foldable and encodable), and
a fourth on a store that is unreachable (where a login or an erasure must answer 503 with
Retry-After, never 500).
:meth:`Harness.request` sends one raw request (arbitrary header bytes, paths, methods and
bodies, beyond what an HTTP client allows) and asserts the properties every response must
have; :data:`STATS` counts what happened, for the long run's report.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from personalize import (
    EventError,
    IdentityError,
    MemoryStore,
    MiddlewareMissingError,
    PersonalizeMiddleware,
    Profile,
    SQLiteStore,
    StoreUnavailableError,
    get_visitor,
)
from personalize.context.device import DeviceDetector
from personalize.stores.base import Mutation
from personalize.web.admin.passwords import hash_password
from personalize.web.csrf import CsrfSigner

SECRET = "hostile-secret-key-of-at-least-32-chars"
DETECTOR = DeviceDetector(cache_size=4096)
OLD_SECRET = "hostile-previous-secret-0123456789abc"
API_KEY = "hostile-api-key-0123456789abcdef"
EDITOR = ("editor", "correct horse battery staple")
PREFIXES = {"full": "/_personalize", "strict": "/_pz", "sqlite": "/_personalize", "down": "/_pd"}
COOKIES = {"full": "pz_visitor", "strict": "vid", "sqlite": "pz_visitor", "down": "pz_visitor"}
TRUSTED = ["127.0.0.0/8", "10.0.0.0/8", "::1", "fd00::/8"]
STATS_ENV = "HOSTILE_STATS"  # where the counts are written as JSON at the end of the module

SEGMENTS = """\
- name: mobile
  description: Phones
  rule: {attribute: device_type, operator: eq, value: mobile}
- name: paid_search
  description: Paid search
  rule: {attribute: channel, operator: eq, value: paid_search}
- name: spring_campaign
  description: A campaign name pattern, searched in hostile text
  rule:
    any:
      - {attribute: campaign, operator: matches, value: "^spring[-_]?[0-9]{2,4}$"}
      - {attribute: term, operator: contains, value: boots}
      - {attribute: languages, operator: in, value: [de, fr-CH]}
- name: shoe_fans
  description: Looked at shoes
  rule: {attribute: affinity.shoes, operator: gte, value: 2}
"""
CONTENT = """\
slots:
  hero:
    variants:
      - {id: welcome, html: "<h1>Welcome</h1>"}
      - {id: phone, html: "<h1>On the go</h1>"}
      - {id: deal, markdown: "**Deal** for {{ you }}", value: 3}
    rules:
      - segment: mobile
        variants: [phone]
      - segment: paid_search
        variants: [deal, welcome]
    default: [welcome]
  banner:
    reward: conversion
    variants:
      - {id: plain, html: "<p>Plain</p>"}
      - {id: evening, html: "<p>Evening</p>", schedule: {hours: [18, 2]}}
    default: [plain, evening]
"""


@dataclass
class Stats:
    """What the hostile tests saw; written as JSON to $HOSTILE_STATS at the end."""

    cases: int = 0  # generated examples run (test function calls), all tests
    requests: int = 0  # ASGI requests sent
    server_errors: int = 0  # responses with status >= 500
    exceptions: int = 0  # exceptions that escaped the middleware or a loader
    incomplete: int = 0  # requests that ended without a complete response
    cache_violations: int = 0  # personalized or cookie-setting responses not private
    non_browsers_remembered: int = 0  # a cookie or profile for a User-Agent not a browser's
    unavailable: int = 0  # 503 with Retry-After (the unreachable store's right answer)
    ip_leaks: int = 0  # client IPs found in the store afterwards
    identity_leaks: int = 0  # stale cookies that wrote into a known profile, erasures left
    statuses: dict[str, int] = field(default_factory=dict)
    per_test: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)  # distinct problem -> count
    examples: dict[str, str] = field(default_factory=dict)  # distinct problem -> first input

    def case(self, test: str) -> None:
        self.cases += 1
        self.per_test[test] = self.per_test.get(test, 0) + 1

    def fail(self, kind: str, detail: str, example: str) -> None:
        """Count one problem; raise unless counting only (the long run counts and goes on)."""
        signature = f"{kind}: {detail}"[:300]
        self.failures[signature] = self.failures.get(signature, 0) + 1
        self.examples.setdefault(signature, example[:2000])
        if STRICT:
            # from None: the cause may be a signal-raised Hang whose traceback pytest cannot show
            raise AssertionError(f"{signature}\nfor {example[:2000]}") from None

    def write(self) -> None:
        path = os.environ.get(STATS_ENV)
        if path:
            Path(path).write_text(json.dumps(self.__dict__, indent=2, sort_keys=True))


STATS = Stats()
STRICT = True  # raise on the first problem (normal run); the long run only counts


def where(exc: BaseException) -> str:
    """The innermost frame of a traceback that is personalize's or yaml's, as file:line."""
    tb, found = exc.__traceback__, "?"
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if "/personalize/" in name or "/yaml/" in name:
            found = f"{name.rsplit('/', 2)[-2]}/{name.rsplit('/', 1)[-1]}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


@dataclass(frozen=True)
class Req:
    """One raw request. ``ips`` are the client addresses it carries (peer, X-Forwarded-For,
    Forwarded): none of them may be in the store afterwards."""

    config: str = "full"
    method: str = "GET"
    path: str = "/"
    query: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: tuple[bytes, ...] = ()
    client: tuple[str, int] | None = ("127.0.0.1", 5000)
    scheme: str = "http"
    ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def all(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key.lower() == name]


# -- the site ----------------------------------------------------------------------------------


class DownStore(MemoryStore):
    """A store that cannot be reached: every call fails as an unreachable one does."""

    async def get(self, key: str) -> Profile | None:
        raise StoreUnavailableError("down (hostile harness)")

    async def update_many(self, mutations: Mapping[str, Mutation]) -> dict[str, Profile | None]:
        raise StoreUnavailableError("down (hostile harness)")

    async def delete(self, key: str) -> bool:
        raise StoreUnavailableError("down (hostile harness)")


READ = {"x-read-visitor": "1", "cache-control": "public, max-age=60, s-maxage=600"}


async def page(request: Request) -> Response:
    """Reads everything about the visitor (and says so in a header the checks look for)."""
    try:
        visitor = get_visitor(request)
    except MiddlewareMissingError:  # an excluded path (/favicon.ico...): nothing to read
        return HTMLResponse("<p>not personalized</p>")
    ctx = visitor.context
    profile = visitor.profile
    hero = await visitor.decide("hero")
    banner = await visitor.decide("banner")
    names = ",".join(sorted(visitor.segment_names))
    text = (
        f"<p>{visitor.id}|{ctx.device.type}|{ctx.source.channel}|{ctx.clock.hour}"
        f"|{profile.visits}|{profile.page_views}|{names}</p>{hero.html}{banner.html}"
    )
    return HTMLResponse(text, headers=READ)


async def plain(request: Request) -> Response:
    return HTMLResponse("<p>same for everyone</p>", headers={"cache-control": "public"})


async def login(request: Request) -> Response:
    visitor = get_visitor(request)
    traits = dict(request.query_params)
    try:
        await visitor.identify(request.query_params.get("user", ""), traits)
    except IdentityError as exc:
        return HTMLResponse(f"<p>refused: {exc}</p>", status_code=400)  # nothing personal
    except StoreUnavailableError:  # as the README's login shows
        return HTMLResponse("<p>try again</p>", status_code=503, headers={"retry-after": "5"})
    return HTMLResponse("<p>logged in</p>", headers=READ)


async def logout(request: Request) -> Response:
    get_visitor(request).logout(everywhere="everywhere" in request.query_params)
    return HTMLResponse("<p>bye</p>")


async def forget(request: Request) -> Response:
    try:
        await get_visitor(request).forget()
    except StoreUnavailableError:
        return HTMLResponse("<p>try again</p>", status_code=503, headers={"retry-after": "5"})
    return HTMLResponse("<p>forgotten</p>")


async def consent(request: Request) -> Response:
    get_visitor(request).give_consent()
    return HTMLResponse("<p>thanks</p>")


async def track(request: Request) -> Response:
    params = dict(request.query_params)
    name = params.pop("name", "")
    try:
        await get_visitor(request).track(name, params)
    except EventError as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    return JSONResponse({"ok": True})


def make_site() -> Starlette:
    return Starlette(
        routes=[
            Route("/", page, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]),
            Route("/plain", plain),
            Route("/login", login),
            Route("/logout", logout),
            Route("/forget", forget),
            Route("/consent", consent),
            Route("/track", track),
            Route("/{rest:path}", page, methods=["GET", "HEAD", "POST"]),
        ]
    )


def geoip_db() -> str | None:
    """The GeoLite2 City database of the ``demo`` extra, so client IPs really get looked up."""
    try:
        from _maxminddb_geolite2 import geolite2_database  # type: ignore[import-not-found]
    except ImportError:
        return None
    return str(geolite2_database())


class Harness:
    """Two configured middlewares around one site, on one event loop; see the module doc."""

    def __init__(self, root: Path) -> None:
        segments, content = root / "segments", root / "content"
        segments.mkdir()
        content.mkdir()
        (segments / "site.yaml").write_text(SEGMENTS)
        (content / "home.yaml").write_text(CONTENT)
        self.runner = asyncio.Runner()
        self.stores = {"full": MemoryStore(), "strict": MemoryStore(), "down": DownStore()}
        self.sqlite = SQLiteStore(root / "profiles.sqlite3", compact_after=1)
        self._used_sqlite = False
        site = make_site()
        common: dict[str, Any] = {
            "geoip_db": geoip_db(),
            "trusted_proxies": TRUSTED,
            "internal_hosts": [".example.com"],
            "categories": {"/shoes/*": "shoes", "/bags/*": "bags"},
            "segments": segments,
            "content": content,
            "site_time_zone": "Europe/London",
            "flush_interval": 0,
        }
        self.apps = {
            "full": PersonalizeMiddleware(
                site,
                secret_key=[SECRET, OLD_SECRET],
                store=self.stores["full"],
                api_keys=[API_KEY],
                admin_users={EDITOR[0]: hash_password(EDITOR[1], n=2**10)},
                cdn_geo=["cloudflare", "cloudfront", "netlify"],
                **common,
            ),
            "strict": PersonalizeMiddleware(
                site,
                secret_key=SECRET,
                store=self.stores["strict"],
                consent="required",
                client_hints="request",
                cookie_name=COOKIES["strict"],
                cookie_secure=True,
                path_prefix=PREFIXES["strict"],
                **common,
            ),
            "sqlite": PersonalizeMiddleware(
                site, secret_key=SECRET, store=self.sqlite, api_keys=[API_KEY], **common
            ),
            "down": PersonalizeMiddleware(
                site,
                secret_key=SECRET,
                store=self.stores["down"],
                path_prefix=PREFIXES["down"],
                **common,
            ),
        }

    def close(self) -> None:
        for app in self.apps.values():
            self.runner.run(app.aclose())
        self.runner.close()

    @property
    def admin_csrf(self) -> str:
        return CsrfSigner(SECRET, purpose="admin").token(f"editor:{EDITOR[0]}")

    @staticmethod
    def basic(user: str, password: str) -> bytes:
        return b"Basic " + base64.b64encode(f"{user}:{password}".encode())

    def reset(self) -> None:
        """Empty the stores (each example starts small, so scanning them stays cheap)."""
        for store in self.stores.values():
            store._data.clear()
        if self._used_sqlite:
            self._used_sqlite = False
            with sqlite3.connect(self.sqlite.path) as conn:
                for table in ("profiles", "log", "quarantine"):
                    conn.execute(f"DELETE FROM {table}")

    def sqlite_keys(self) -> list[str]:
        """The keys the SQLite store holds (profiles and logged changes)."""
        return self.runner.run(self.sqlite.keys())

    def request(self, req: Req) -> Outcome | None:
        """Send ``req``; assert no escaping exception, a complete response, no 5xx, private
        caching where the visitor was read or a cookie set, and no client IP in the store."""
        STATS.requests += 1
        app = self.apps[req.config]
        self._used_sqlite |= req.config == "sqlite"
        raw_path = req.path.encode("utf-8", "surrogateescape")
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": req.method,
            "scheme": req.scheme,
            "path": req.path,
            "raw_path": raw_path,
            "query_string": req.query,
            "root_path": "",
            "headers": list(req.headers),
            "client": req.client,
            "server": ("testserver", 443 if req.scheme == "https" else 80),
        }
        chunks = list(req.body) or [b""]
        messages: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if chunks:
                body = chunks.pop(0)
                return {"type": "http.request", "body": body, "more_body": bool(chunks)}
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        store = self.stores.get(req.config)
        keys_before = set(store._data) if store is not None else set()
        try:
            self.runner.run(app(scope, receive, send))
        except Exception as exc:
            STATS.exceptions += 1
            STATS.fail("exception", f"{type(exc).__name__} at {where(exc)}", repr(req))
            return None
        try:  # the harness's own bookkeeping: what the request buffered, written now
            self.runner.run(app.personalizer.profiles.flush())
        except StoreUnavailableError as exc:
            if req.config != "down":  # only that store is unreachable; there it stays buffered
                STATS.fail("store", f"{type(exc).__name__} at {where(exc)}", repr(req))
        outcome = self._complete(messages, req)
        if outcome is None:
            return None
        STATS.statuses[str(outcome.status)] = STATS.statuses.get(str(outcome.status), 0) + 1
        if outcome.status >= 500 and not self._unavailable(outcome, req):
            STATS.server_errors += 1
            route = req.path if len(req.path) <= 40 else req.path[:40] + "..."
            STATS.fail(f"{outcome.status} on {route}", f"{outcome.body[:100]!r}", repr(req))
        self._check_caching(outcome, req)
        self._check_ips(req)
        self._check_non_browser(outcome, req, keys_before)
        return outcome

    def _check_non_browser(self, outcome: Outcome, req: Req, keys_before: set[str]) -> None:
        """A request whose User-Agent is not a plausible browser's gets no visitor cookie,
        and nothing is stored for it (the events API, server to server, aside)."""
        agents = [v for k, v in req.headers if k.lower() == b"user-agent"]
        if len(agents) > 1 or not all(a.isascii() for a in agents) or "/events" in req.path:
            return
        if DETECTOR.detect(agents[0].decode() if agents else None).is_browser:
            return
        cookie = COOKIES[req.config].encode() + b"="
        store = self.stores.get(req.config)
        added = set(store._data) - keys_before if store is not None else set()
        if added or any(v.startswith(cookie) for v in outcome.all(b"set-cookie")):
            STATS.non_browsers_remembered += 1
            STATS.fail("non-browser remembered", f"{agents[:1]!r}", repr(req))

    @staticmethod
    def _unavailable(outcome: Outcome, req: Req) -> bool:
        """A 503 with Retry-After from the unreachable store: the right answer there."""
        answered = outcome.status == 503 and outcome.header(b"retry-after") is not None
        STATS.unavailable += int(answered)
        return req.config == "down" and answered

    @staticmethod
    def _complete(messages: list[dict[str, Any]], req: Req) -> Outcome | None:
        ok = (
            bool(messages)
            and messages[0]["type"] == "http.response.start"
            and all(m["type"] == "http.response.body" for m in messages[1:])
            and len(messages) >= 2
            and not messages[-1].get("more_body", False)
        )
        if not ok:
            STATS.incomplete += 1
            STATS.fail("incomplete response", f"{[m.get('type') for m in messages]}", repr(req))
            return None
        start = messages[0]
        body = b"".join(m.get("body", b"") for m in messages[1:])
        return Outcome(int(start["status"]), tuple(start.get("headers") or ()), body)

    @staticmethod
    def _check_caching(outcome: Outcome, req: Req) -> None:
        cookie = COOKIES[req.config].encode() + b"="
        sets_cookie = any(v.startswith(cookie) for v in outcome.all(b"set-cookie"))
        read = outcome.header(b"x-read-visitor") == b"1"
        if not (sets_cookie or read):
            return
        cache = outcome.header(b"cache-control") or b""
        vary = (outcome.header(b"vary") or b"").lower()
        directives = {d.strip().split(b"=")[0].lower() for d in cache.split(b",")}
        if (
            b"private" not in directives
            or directives & {b"public", b"s-maxage"}
            or b"cookie" not in vary
        ):
            STATS.cache_violations += 1
            STATS.fail("not private", f"cache-control {cache!r}, vary {vary!r}", repr(req))

    def _check_ips(self, req: Req) -> None:
        if not req.ips:
            return
        # Only addresses that are not also text of another part of the request (a path or a
        # referrer may legitimately be stored) and long enough not to occur by chance.
        others = b"\0".join(
            [req.path.encode("utf-8", "surrogateescape"), req.query, *req.body]
            + [v for k, v in req.headers if k not in (b"x-forwarded-for", b"forwarded")]
        ).lower()
        needles = {
            ip.lower().encode()
            for ip in req.ips
            if len(ip) >= 7 and ip.lower().encode() not in others
        }
        if not needles:
            return
        for store in self.stores.values():
            for key, raw in list(store._data.items()):
                blob = key.encode().lower() + b"\0" + raw.lower()
                leaked = [n for n in needles if n in blob]
                if leaked:
                    STATS.ip_leaks += 1
                    STATS.fail("client IP stored", f"under {key.split(':')[0]}:...", repr(req))
                    return
