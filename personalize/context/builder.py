"""Assembles the :class:`VisitorContext` of one request from its ASGI scope.

Each part comes from a small module (clientip, geo, device, source, clock, signals); what
repeats across requests is cached there in bounded LRUs. The client IP is used for the geo
lookup and then dropped: it is never part of the context.

Two optional sources refine the parts: User-Agent Client Hints (``client_hints="read"``, the
default, reads the ``Sec-CH-UA-*`` headers Chromium browsers send, and they take precedence
over the User-Agent for device type, OS and browser; they are parsed only when
``Sec-CH-UA-Platform`` is present, and the context names the ones read in ``client_hints``,
for the response's ``Vary``), and the geolocation headers of the CDNs named in ``cdn_geo``,
believed only when the direct peer is one of ``trusted_proxies``; the CDN's record wins and
GeoIP fills in what it lacks (see :func:`~personalize.context.cdn_geo.merge_geo`), or stands
alone when the CDN sends nothing.

An ASGI layer in front of the middleware (a demo's visitor simulator, a test) may put an hour
0-23 in ``scope[LOCAL_HOUR]``: the request's local clock then reads that hour, in the visitor's
own time zone (the nearest such time, so the day may change). Nothing a client sends can set
it, and only the local clock changes: sessions, timestamps and caps keep the real time.

>>> builder = ContextBuilder(site_time_zone="Europe/London")
>>> noon = 1_700_000_000.0 - 1_700_000_000.0 % 86_400 + 12 * 3600  # 12:00 UTC, in November
>>> builder.build({"type": "http"}, {}, noon).clock.hour
12
>>> clock = builder.build({"type": "http", LOCAL_HOUR: 20}, {}, noon).clock
>>> clock.hour, clock.daypart, clock.time_zone
(20, 'evening', 'Europe/London')
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from starlette.types import Scope

from personalize.context.cdn_geo import CDNGeoReader, Provider, merge_geo
from personalize.context.client_hints import (
    HEADER_NAMES,
    ClientHintsMode,
    ClientHintsParser,
    apply_client_hints,
)
from personalize.context.clientip import ClientIPResolver
from personalize.context.clock import local_clock, validate_time_zone
from personalize.context.device import DeviceDetector
from personalize.context.geo import GeoLocator
from personalize.context.records import Clock, Device, Geo, VisitorContext
from personalize.context.signals import parse_signals
from personalize.context.source import SourceClassifier
from personalize.exceptions import ConfigurationError

_MAX_PATH = 2048
LOCAL_HOUR = "personalize.local_hour"  # scope key: the local hour to simulate (see above)

# The request headers the context reads, as ASGI gives them (lower-case bytes).
WANTED = frozenset(
    {
        b"host",
        b"user-agent",
        b"referer",
        b"x-forwarded-for",
        b"forwarded",
        b"accept-language",
        b"sec-gpc",
        b"dnt",
        b"cookie",
    }
)


_MEMO_SIZE = 4096  # contexts remembered by the raw bytes they were built from


# (canonical name, lower case, as ASGI gives it) of each hint; those present are named in Vary.
_HINTS = tuple((canonical, name, name.encode()) for name, canonical in HEADER_NAMES.items())
_PLATFORM = b"sec-ch-ua-platform"  # without it, no hint is read


def _key_function(names: tuple[bytes, ...]) -> Callable[..., tuple[object, ...]]:
    """``key(raw, path, query, hour, peer)``: those four, then the value of each header of
    ``names`` in ``raw`` (None where absent), as one tuple. Written out with the names as
    constants: the same tuple as ``(path, query, hour, peer, *map(raw.get, names))`` in
    about two thirds of the time (it keys the context memo: this runs for every request).

    >>> _key_function((b"dnt", b"host"))({b"host": b"a"}, "/", b"", None, None)
    ('/', b'', None, None, None, b'a')
    """
    values = "".join(f"get({name!r}), " for name in names)
    source = "def key(raw, path, query, hour, peer):\n    get = raw.get\n"
    source += f"    return (path, query, hour, peer, {values})\n"
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # (each name is a bytes literal, written by repr: no code)
    key: Callable[..., tuple[object, ...]] = namespace["key"]
    return key


def read_headers(scope: Scope, wanted: frozenset[bytes] = WANTED) -> dict[bytes, str]:
    """The ``wanted`` headers of a request (a builder's `ContextBuilder.wanted`), decoded as
    latin-1 (never fails on odd bytes)."""
    found: dict[bytes, str] = {}
    for name, value in scope.get("headers", ()):
        if name in wanted:
            text = value.decode("latin-1")
            # Repeated headers: join as RFC 9110 allows (cookies with "; ").
            if name in found:
                text = found[name] + ("; " if name == b"cookie" else ", ") + text
            found[name] = text
    return found


def _decoded(raw: Mapping[bytes, bytes], wanted: frozenset[bytes]) -> dict[bytes, str]:
    return {name: value.decode("latin-1") for name, value in raw.items() if name in wanted}


class ContextBuilder:
    """Builds the context of a request; everything that can be prepared is prepared here."""

    def __init__(
        self,
        *,
        geoip_db: str | os.PathLike[str] | None = None,
        trusted_proxies: Iterable[str] = (),
        internal_hosts: Iterable[str] = (),
        site_time_zone: str = "UTC",
        client_hints: ClientHintsMode = "read",
        cdn_geo: Iterable[Provider] = (),
    ) -> None:
        if client_hints not in ("off", "read", "request"):
            raise ConfigurationError(
                f"client_hints must be 'off', 'read' or 'request', not {client_hints!r}"
            )
        self.site_time_zone = validate_time_zone(site_time_zone)
        self.geo = GeoLocator(geoip_db) if geoip_db is not None else None
        self.ips = ClientIPResolver(trusted_proxies)
        self.devices = DeviceDetector()
        self.hints = ClientHintsParser() if client_hints != "off" else None
        if isinstance(cdn_geo, str):
            raise ConfigurationError(f"cdn_geo must be a list, e.g. [{cdn_geo!r}]")
        cdns = tuple(cdn_geo)
        self.cdn = CDNGeoReader(cdns) if cdns else None
        if self.cdn is not None and not self.ips.trusted_proxies:
            raise ConfigurationError(
                "cdn_geo headers are believed only from trusted_proxies (anybody can send "
                "them to the site directly): list the addresses the CDN connects from, or "
                "your load balancer's, in trusted_proxies"
            )
        self._cdn_headers = tuple(
            (name, name.encode()) for name in (self.cdn.header_names if self.cdn else ())
        )
        wanted = set(WANTED)
        if self.hints is not None:
            wanted.update(key for _, _, key in _HINTS)
        wanted.update(name for _, name in self._cdn_headers)
        self.wanted = frozenset(wanted)  # the request headers build() reads
        # Contexts by the raw bytes of what they read (memoized: every header build() reads
        # but the cookie, in a fixed order), each with the minute it was built in. The client
        # hints but Sec-CH-UA-Platform are read only when it is there (see build()), and so
        # are they in the key.
        hints = (
            {key for _, _, key in _HINTS if key != _PLATFORM} if self.hints is not None else set()
        )
        self._memo_headers = tuple(sorted(self.wanted - {b"cookie"} - hints))
        self._memo_hints = tuple(sorted(hints))
        self._memo_key = _key_function(self._memo_headers)
        # key -> (the minute's start and end, in seconds, and the context built in it)
        self._memo: dict[tuple[object, ...], tuple[float, float, VisitorContext]] = {}
        self.sources = SourceClassifier(internal_hosts=internal_hosts)
        # The clock of a time zone changes once a minute: cache per (zone, minute).
        self._clock = lru_cache(maxsize=1024)(self._clock_for_minute)

    def close(self) -> None:
        if self.geo is not None:
            self.geo.close()

    def _clock_for_minute(self, time_zone: str | None, minute: int) -> Clock:
        return local_clock(
            datetime.fromtimestamp(minute * 60, UTC), time_zone, default=self.site_time_zone
        )

    def _at_hour(self, zone: str | None, minute: int, hour: int, wanted: int) -> Clock:
        """The nearest local time in ``zone`` whose hour is ``wanted``."""
        shift = (wanted - hour + 12) % 24 - 12  # -12 to +11 hours
        # Around a daylight saving change the hour may be skipped or doubled that day: then
        # one hour more or less, or the same hour a day earlier or later.
        for hours in (shift, shift + 1, shift - 1, shift - 24, shift + 24):
            clock = self._clock(zone, minute + hours * 60)
            if clock.hour == wanted:
                return clock
        return clock  # a zone that skips whole days (Pacific/Apia, 2011); close enough

    def build(self, scope: Scope, headers: dict[bytes, str], now: float) -> VisitorContext:
        get = headers.get
        client = scope.get("client")
        peer = client[0] if client else None
        ip = self.ips.resolve(peer, get(b"x-forwarded-for"), get(b"forwarded"))
        geo = self.geo.lookup(ip) if self.geo is not None and ip is not None else None
        if self.cdn is not None:
            geo = self._cdn_geo(peer, headers, geo)
        host = get(b"host")
        query = scope.get("query_string", b"").decode("latin-1")
        source = self.sources.classify(host=host, referer=get(b"referer"), query_string=query)
        zone, minute = geo.time_zone if geo else None, int(now // 60)
        clock = self._clock(zone, minute)
        wanted = scope.get(LOCAL_HOUR)
        if type(wanted) is int and 0 <= wanted <= 23 and wanted != clock.hour:
            clock = self._at_hour(zone, minute, clock.hour, wanted)
        user_agent = get(b"user-agent")
        device = self.devices.detect(user_agent)
        hinted: tuple[str, ...] = ()
        # Chromium sends Sec-CH-UA-Platform with every request to a secure origin; without it
        # there are no hints worth parsing (one lookup: this runs for every request).
        if self.hints is not None and _PLATFORM in headers:
            device, hinted = self._hinted(device, headers, user_agent)
        # Positional, in field order (geo, device, source, clock, signals, path, host, hints).
        return VisitorContext(
            geo,
            device,
            source,
            clock,
            parse_signals(get(b"accept-language"), get(b"sec-gpc"), get(b"dnt")),
            str(scope.get("path", "/"))[:_MAX_PATH],
            host[:255] if host else None,
            hinted,
        )

    def _hinted(
        self, device: Device, headers: dict[bytes, str], user_agent: str | None
    ) -> tuple[Device, tuple[str, ...]]:
        """``device`` as the client hints correct it, and the names of the hints read."""
        assert self.hints is not None
        raw: dict[str, str] = {}
        names = []
        for canonical, name, key in _HINTS:
            if value := headers.get(key):
                raw[name] = value
                names.append(canonical)
        hints = self.hints.parse(raw)
        if not hints.present:
            return device, ()
        return apply_client_hints(device, hints, user_agent=user_agent), tuple(names)

    def _cdn_geo(
        self, peer: str | None, headers: dict[bytes, str], geoip: Geo | None
    ) -> Geo | None:
        """The CDN's record (from a trusted peer) merged with GeoIP's, or GeoIP's alone."""
        assert self.cdn is not None
        raw = {
            name: value
            for name, key in self._cdn_headers
            if (value := headers.get(key)) is not None
        }
        if not raw:
            return geoip
        cdn = self.cdn.read(raw, trusted=self.ips.peer_trusted(peer))
        return merge_geo(cdn, geoip) if cdn is not None else geoip

    def memoized(self, scope: Scope, raw: Mapping[bytes, bytes], now: float) -> VisitorContext:
        """:meth:`build` for a request whose headers are ``raw`` (name -> value, no name
        repeated), remembered by the raw bytes it reads: a request like an earlier one in the
        same minute gets the same context without decoding or classifying anything again.
        The client address is part of the key only where it matters (a GeoIP database, or
        CDN geo headers believed only from trusted proxies)."""
        hour = scope.get(LOCAL_HOUR)
        peer = None
        if self.geo is not None or self.cdn is not None:
            client = scope.get("client")
            peer = client[0] if client else None
        key = self._memo_key(
            raw,
            scope.get("path"),
            scope.get("query_string"),
            hour if type(hour) is int else None,
            peer,
        )
        if _PLATFORM in raw and self._memo_hints:
            key += tuple(map(raw.get, self._memo_hints))
        memo = self._memo
        try:
            entry = memo.get(key)
        except TypeError:  # something unhashable where ASGI promises bytes: just build it
            return self.build(scope, _decoded(raw, self.wanted), now)
        if entry is not None and entry[0] <= now < entry[1]:  # (built in this minute)
            return entry[2]
        context = self.build(scope, _decoded(raw, self.wanted), now)
        if entry is None and len(memo) >= _MEMO_SIZE:
            memo.pop(next(iter(memo)), None)  # the oldest: first in, first out
        start = now // 60 * 60
        memo[key] = (start, start + 60, context)
        return context

    def as_stated(
        self, context: VisitorContext, now: float, *, use_geo: bool, language: str | None
    ) -> VisitorContext:
        """``context`` as the visitor asked: without geo (and so with the site's clock) when
        they said not to use their location, with their chosen language first."""
        if not use_geo and context.geo is not None:
            clock = self._clock(None, int(now // 60))
            context = replace(context, geo=None, clock=clock)
        if language and (not context.signals.languages or context.signals.languages[0] != language):
            signals = context.signals
            ranked = (language, *(tag for tag in signals.languages if tag != language))
            context = replace(context, signals=replace(signals, languages=ranked))
        return context
