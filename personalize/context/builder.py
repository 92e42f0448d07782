"""Assembles the :class:`VisitorContext` of one request from its ASGI scope.

Each part comes from a small module (clientip, geo, device, source, clock, signals); what
repeats across requests is cached there in bounded LRUs. The client IP is used for the geo
lookup and then dropped: it is never part of the context.

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
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache

from starlette.types import Scope

from personalize.context.clientip import ClientIPResolver
from personalize.context.clock import local_clock, validate_time_zone
from personalize.context.device import DeviceDetector
from personalize.context.geo import GeoLocator
from personalize.context.records import Clock, VisitorContext
from personalize.context.signals import parse_signals
from personalize.context.source import SourceClassifier

_MAX_PATH = 2048
LOCAL_HOUR = "personalize.local_hour"  # scope key: the local hour to simulate (see above)

# The request headers the context reads, as ASGI gives them (lower-case bytes).
_WANTED = frozenset(
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


def read_headers(scope: Scope) -> dict[bytes, str]:
    """The headers the middleware uses, decoded as latin-1 (never fails on odd bytes)."""
    found: dict[bytes, str] = {}
    for name, value in scope.get("headers", ()):
        if name in _WANTED:
            text = value.decode("latin-1")
            # Repeated headers: join as RFC 9110 allows (cookies with "; ").
            if name in found:
                text = found[name] + ("; " if name == b"cookie" else ", ") + text
            found[name] = text
    return found


class ContextBuilder:
    """Builds the context of a request; everything that can be prepared is prepared here."""

    def __init__(
        self,
        *,
        geoip_db: str | os.PathLike[str] | None = None,
        trusted_proxies: Iterable[str] = (),
        internal_hosts: Iterable[str] = (),
        site_time_zone: str = "UTC",
    ) -> None:
        self.site_time_zone = validate_time_zone(site_time_zone)
        self.geo = GeoLocator(geoip_db) if geoip_db is not None else None
        self.ips = ClientIPResolver(trusted_proxies)
        self.devices = DeviceDetector()
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
        host = get(b"host")
        query = scope.get("query_string", b"").decode("latin-1")
        source = self.sources.classify(host=host, referer=get(b"referer"), query_string=query)
        zone, minute = geo.time_zone if geo else None, int(now // 60)
        clock = self._clock(zone, minute)
        wanted = scope.get(LOCAL_HOUR)
        if type(wanted) is int and 0 <= wanted <= 23 and wanted != clock.hour:
            clock = self._at_hour(zone, minute, clock.hour, wanted)
        # Positional, in field order (geo, device, source, clock, signals, path, host).
        return VisitorContext(
            geo,
            self.devices.detect(get(b"user-agent")),
            source,
            clock,
            parse_signals(get(b"accept-language"), get(b"sec-gpc"), get(b"dnt")),
            str(scope.get("path", "/"))[:_MAX_PATH],
            host[:255] if host else None,
        )

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
