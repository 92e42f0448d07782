"""The request context: what one request tells about its visitor, as immutable typed records.

Every part is computed once per request by the middleware. None of them holds the client's
IP address: it is used to look up the geo record and then dropped.

>>> ctx = VisitorContext()
>>> ctx.source.channel, ctx.device.type, ctx.geo is None
('direct', 'other', True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from personalize.util.frozen import fast_init

DeviceType = Literal["mobile", "tablet", "desktop", "bot", "other"]
Channel = Literal[
    "direct",
    "organic_search",
    "paid_search",
    "organic_social",
    "paid_social",
    "organic_video",
    "paid_video",
    "organic_shopping",
    "paid_shopping",
    "email",
    "sms",
    "referral",
    "display",
    "affiliate",
    "paid_other",
    "ai_assistant",
    "internal",
]
Daypart = Literal["night", "morning", "afternoon", "evening"]


@dataclass(frozen=True, slots=True)
class Geo:
    """Where the request comes from, as far as the GeoIP database knows."""

    country: str | None = None  # ISO 3166-1 alpha-2, e.g. "GB"
    country_name: str | None = None
    region: str | None = None  # ISO 3166-2 subdivision code without country, e.g. "ENG"
    region_name: str | None = None
    city: str | None = None
    time_zone: str | None = None  # IANA name, e.g. "Europe/London"
    latitude: float | None = None
    longitude: float | None = None
    continent: str | None = None  # two-letter continent code, e.g. "EU"


@dataclass(frozen=True, slots=True)
class Device:
    """The visitor's device, from the User-Agent header.

    ``is_browser``: the User-Agent is a plausible browser's (see
    :data:`personalize.context.device.BROWSER_RULE`); anything else is served context-only.
    """

    type: DeviceType = "other"
    os: str | None = None  # family, e.g. "iOS"
    os_version: str | None = None
    browser: str | None = None  # family, e.g. "Mobile Safari"
    browser_version: str | None = None
    is_bot: bool = False
    is_touch: bool = False
    is_browser: bool = False


@dataclass(frozen=True, slots=True)
class Source:
    """How the visitor arrived: the channel and what is known about the referrer or campaign."""

    channel: Channel = "direct"
    source: str | None = None  # e.g. "google", "facebook", "newsletter"
    medium: str | None = None  # utm_medium or the inferred one ("organic", "referral", "cpc")
    campaign: str | None = None
    term: str | None = None  # search term, where the engine or utm_term passes one
    content: str | None = None  # utm_content
    referrer_host: str | None = None
    click_id: str | None = None  # the *name* of the click id parameter, e.g. "gclid"


@dataclass(frozen=True, slots=True)
class Clock:
    """The visitor's local time, from their geo time zone (or the site's)."""

    time_zone: str = "UTC"
    hour: int = 0  # 0..23
    minute: int = 0
    weekday: int = 0  # Monday is 0
    daypart: Daypart = "night"
    weekend: bool = False
    iso: str = ""  # local timestamp, ISO 8601 with offset


@dataclass(frozen=True, slots=True)
class Signals:
    """Language preferences and privacy signals the browser sends."""

    languages: tuple[str, ...] = ()  # ordered by preference, lower-case tags, e.g. ("en-gb", "en")
    gpc: bool = False  # Sec-GPC: 1
    dnt: bool = False  # DNT: 1

    @property
    def language(self) -> str | None:
        """The primary language subtag of the most preferred language, e.g. "en"."""
        if not self.languages:
            return None
        return self.languages[0].split("-", 1)[0]


@fast_init  # built on every request
@dataclass(frozen=True, slots=True)
class VisitorContext:
    """Everything the current request says about the visitor, built once per request."""

    geo: Geo | None = None
    device: Device = field(default_factory=Device)
    source: Source = field(default_factory=Source)
    clock: Clock = field(default_factory=Clock)
    signals: Signals = field(default_factory=Signals)
    path: str = "/"
    host: str | None = None
    client_hints: tuple[str, ...] = ()  # the Sec-CH-UA-* headers read ("Sec-CH-UA-Mobile")
