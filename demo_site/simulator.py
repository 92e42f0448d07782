"""The visitor simulator (demo mode only): be a visitor from elsewhere, on another device.

A form on every page picks a country, a device, how the visitor arrived and their local time;
the choice is kept in a signed cookie, and :class:`SimulatorMiddleware`, mounted *outside*
PersonalizeMiddleware, rewrites each request before personalization sees it:

- ``client``: a sample IP of the chosen country (a real address of the GeoLite2 City
  database the demo ships), so the GeoIP lookup finds that country, city and time zone;
- ``User-Agent``: a sample of the chosen device;
- ``Referer``: on the first page after a change only (the "arrival"), the chosen source's
  referrer; the utm tags and click ids are in the URL the simulator redirects to, as in a
  real ad or newsletter click.

PersonalizeMiddleware has no hook to override the visitor's local clock, so a local time is
simulated by *place*: the simulator picks a sample IP in a time zone where it is that hour
now (in the chosen country when one of its zones fits, else anywhere).

Never mount this in production: anyone could claim any IP. ``create_app(demo_mode=False)``
(the default of the factory) leaves it out entirely.

>>> [z.time_zone for z in zones_at_hour(13, now=datetime(2024, 1, 15, 12, 0, tzinfo=UTC))][:2]
['Europe/Berlin', 'Europe/Paris']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SIM_COOKIE = "demo_sim"


@dataclass(frozen=True, slots=True)
class Place:
    key: str
    label: str
    ip: str  # resolves to this place in GeoLite2-City 2018 (maxminddb-geolite2)
    country: str
    time_zone: str


@dataclass(frozen=True, slots=True)
class DeviceSample:
    key: str
    label: str
    user_agent: str


@dataclass(frozen=True, slots=True)
class SourceSample:
    key: str
    label: str
    referer: str | None
    query: str  # utm tags / click ids in the landing URL


# 81.2.69.142 resolves to London in both the real GeoLite2 and MaxMind's test database.
COUNTRIES: dict[str, Place] = {
    p.key: p
    for p in (
        Place("gb", "United Kingdom (London)", "81.2.69.142", "GB", "Europe/London"),
        Place("us", "United States (New York)", "3.184.0.1", "US", "America/New_York"),
        Place("us-west", "United States (Los Angeles)", "4.7.30.1", "US", "America/Los_Angeles"),
        Place("de", "Germany (Berlin)", "2.201.88.1", "DE", "Europe/Berlin"),
        Place("at", "Austria (Vienna)", "5.11.2.1", "AT", "Europe/Vienna"),
        Place("ch", "Switzerland (Zurich)", "5.132.141.1", "CH", "Europe/Zurich"),
        Place("fr", "France (Paris)", "2.2.70.1", "FR", "Europe/Paris"),
        Place("jp", "Japan (Tokyo)", "1.0.16.1", "JP", "Asia/Tokyo"),
        Place("au", "Australia (Sydney)", "1.40.215.1", "AU", "Australia/Sydney"),
        Place("in", "India (Mumbai)", "1.22.42.1", "IN", "Asia/Kolkata"),
        Place("br", "Brazil (São Paulo)", "17.43.176.1", "BR", "America/Sao_Paulo"),
    )
}

# One sample place per UTC offset from -11 to +14 (with daylight saving both ways), so every
# local hour exists somewhere right now.
ZONES: tuple[Place, ...] = tuple(
    Place(f"tz:{tz}", f"{city}, {cc}", ip, cc, tz)
    for tz, ip, cc, city in (
        ("Pacific/Pago_Pago", "45.59.152.1", "AS", "Pago Pago"),
        ("Pacific/Honolulu", "4.30.193.1", "US", "Honolulu"),
        ("America/Adak", "12.117.200.1", "US", "Saint Paul"),
        ("Pacific/Gambier", "202.90.64.1", "PF", "Rikitea"),
        ("America/Anchorage", "12.12.0.1", "US", "Anchorage"),
        ("America/Los_Angeles", "4.7.30.1", "US", "Los Angeles"),
        ("America/Phoenix", "3.75.128.1", "US", "Tempe"),
        ("America/Denver", "3.235.64.1", "US", "Denver"),
        ("America/Chicago", "3.94.46.1", "US", "Chicago"),
        ("America/Mexico_City", "8.14.224.1", "MX", "Mexico City"),
        ("America/New_York", "3.184.0.1", "US", "New York"),
        ("America/Bogota", "17.45.148.1", "CO", "Bogotá"),
        ("America/Toronto", "4.16.53.1", "CA", "Toronto"),
        ("America/Halifax", "24.53.80.1", "CA", "Canning"),
        ("America/Sao_Paulo", "17.43.176.1", "BR", "São Paulo"),
        ("America/Argentina/Buenos_Aires", "23.237.23.1", "AR", "Buenos Aires"),
        ("America/Noronha", "128.201.197.1", "BR", "Itamaracá"),
        ("Atlantic/South_Georgia", "104.224.44.1", "GS", "Grytviken"),
        ("Atlantic/Cape_Verde", "41.79.124.1", "CV", "Santa Cruz"),
        ("Atlantic/Azores", "78.29.128.1", "PT", "Ribeira Grande"),
        ("Europe/London", "81.2.69.142", "GB", "London"),
        ("Africa/Abidjan", "41.61.12.1", "CI", "Abidjan"),
        ("Europe/Berlin", "2.201.88.1", "DE", "Berlin"),
        ("Europe/Paris", "2.2.70.1", "FR", "Paris"),
        ("Europe/Vienna", "5.11.2.1", "AT", "Vienna"),
        ("Europe/Zurich", "5.132.141.1", "CH", "Zurich"),
        ("Africa/Lagos", "23.232.246.1", "NG", "Lagos"),
        ("Europe/Athens", "2.84.0.1", "GR", "Athens"),
        ("Africa/Johannesburg", "13.106.204.1", "ZA", "Johannesburg"),
        ("Europe/Moscow", "2.92.32.1", "RU", "Rostov-on-Don"),
        ("Asia/Dubai", "2.48.0.1", "AE", "Dubai"),
        ("Asia/Karachi", "14.1.104.1", "PK", "Karachi"),
        ("Asia/Dhaka", "14.1.100.1", "BD", "Dhaka"),
        ("Asia/Bangkok", "1.0.128.1", "TH", "Bangkok"),
        ("Asia/Singapore", "5.10.194.1", "SG", "Singapore"),
        ("Asia/Shanghai", "1.0.1.1", "CN", "Fuzhou"),
        ("Asia/Tokyo", "1.0.16.1", "JP", "Tokyo"),
        ("Australia/Brisbane", "1.120.96.1", "AU", "Brisbane"),
        ("Australia/Sydney", "1.40.215.1", "AU", "Sydney"),
        ("Pacific/Noumea", "43.224.192.1", "NC", "Nouméa"),
        ("Pacific/Fiji", "27.123.128.1", "FJ", "Suva"),
        ("Pacific/Auckland", "14.1.36.1", "NZ", "Auckland"),
        ("Pacific/Tongatapu", "45.59.145.1", "TO", "Nuku'alofa"),
        ("Pacific/Kiritimati", "202.58.248.1", "KI", "Kiritimati"),
    )
)
_ZONES_BY_KEY = {z.key: z for z in ZONES}

DEVICES: dict[str, DeviceSample] = {
    d.key: d
    for d in (
        DeviceSample("iphone", "iPhone (Safari)",
                     "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
                     "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"),
        DeviceSample("android", "Android phone (Chrome)",
                     "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like "
                     "Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"),
        DeviceSample("ipad", "iPad (Safari)",
                     "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
                     "like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"),
        DeviceSample("desktop", "Desktop (Chrome on Windows)",
                     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
                     "Gecko) Chrome/124.0.0.0 Safari/537.36"),
    )
}  # fmt: skip

SOURCES: dict[str, SourceSample] = {
    s.key: s
    for s in (
        SourceSample("direct", "Direct (typed the address)", None, ""),
        SourceSample("google", "Google search (organic)", "https://www.google.com/", ""),
        SourceSample("google_ads", "Google Ads (gclid)", "https://www.google.com/",
                     "utm_source=google&utm_medium=cpc&utm_campaign=spring_sale"
                     "&gclid=EAIaIQobChMIdemo"),
        SourceSample("facebook", "Facebook post (organic social)", "https://www.facebook.com/", ""),
        SourceSample("facebook_ads", "Facebook ad (paid social)", "https://m.facebook.com/",
                     "utm_source=facebook&utm_medium=paid_social&utm_campaign=summer"
                     "&fbclid=IwAR0demo"),
        SourceSample("newsletter", "Newsletter e-mail", None,
                     "utm_source=newsletter&utm_medium=email&utm_campaign=weekly"),
        SourceSample("blog", "Link on a hiking blog (referral)",
                     "https://blog.example.org/best-hiking-gear", ""),
    )
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Simulation:
    """What the simulator pretends; empty strings mean "as it really is"."""

    country: str = ""  # a COUNTRIES key
    zone: str = ""  # a ZONES key, chosen for a local time; overrides country
    hour: int | None = None  # the local hour asked for (for display)
    device: str = ""  # a DEVICES key
    source: str = ""  # a SOURCES key
    arriving: bool = False  # the next page is the landing page of the simulated visit

    @property
    def place(self) -> Place | None:
        return _ZONES_BY_KEY.get(self.zone) or COUNTRIES.get(self.country)

    @property
    def active(self) -> bool:
        return bool(self.place or self.device or self.source)

    def describe(self) -> list[str]:
        """What is simulated, in words, for the panel."""
        out = []
        place = self.place
        if place is not None:
            where = f"{place.label} from {place.ip}"
            if self.hour is not None:
                where += f", where it was {self.hour:02d}:xx when you chose it"
                wanted = COUNTRIES.get(self.country)
                if wanted is not None and wanted.country != place.country:
                    where += f" (no time zone of {wanted.label} had that hour)"
            out.append(where)
        if self.device in DEVICES:
            out.append(DEVICES[self.device].label)
        if self.source in SOURCES:
            out.append(f"arrived via {SOURCES[self.source].label}")
        return out


def zones_at_hour(hour: int, *, now: datetime | None = None) -> list[Place]:
    """The sample places where the local hour is ``hour`` at ``now``."""
    now = now or datetime.now(UTC)
    return [z for z in ZONES if now.astimezone(ZoneInfo(z.time_zone)).hour == hour]


def place_for_hour(hour: int, country: str = "", *, now: datetime | None = None) -> Place | None:
    """A place where it is ``hour`` now: in ``country``'s zones when one fits."""
    places = zones_at_hour(hour, now=now)
    wanted = COUNTRIES[country].country if country in COUNTRIES else None
    same = [p for p in places if p.country == wanted]
    return (same or places or [None])[0]


class SimulationCodec:
    """Signs the simulator cookie; anything invalid reads as no simulation."""

    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeSerializer(secret, salt="demo-simulator")

    def dump(self, sim: Simulation) -> str:
        return self._serializer.dumps(asdict(sim))

    def load(self, value: str | None) -> Simulation | None:
        if not value or len(value) > 1024:
            return None
        try:
            data = self._serializer.loads(value)
            sim = Simulation(**data)
        except (BadSignature, TypeError):
            return None
        return sim if sim.active else None


def _cookie(headers: Sequence[tuple[bytes, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, sep, v = part.strip().partition("=")
                if sep and k == name:
                    return v.strip('"')
    return None


_NOT_PAGES = ("/static/", "/_personalize/", "/_demo/", "/favicon.ico", "/robots.txt")


class SimulatorMiddleware:
    """Rewrites client address, User-Agent and (on arrival) Referer from the demo cookie."""

    def __init__(self, app: ASGIApp, *, secret: str) -> None:
        self.app = app
        self.codec = SimulationCodec(secret)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sim = self.codec.load(_cookie(scope.get("headers", ()), SIM_COOKIE))
        if sim is None:
            await self.app(scope, receive, send)
            return
        scope = dict(scope)
        scope["demo.simulation"] = sim
        headers: list[Any] = list(scope.get("headers", ()))
        place = sim.place
        if place is not None:
            port = scope["client"][1] if scope.get("client") else 0
            scope["client"] = (place.ip, port)
        if sim.device in DEVICES:
            agent = DEVICES[sim.device].user_agent.encode()
            headers = [(k, v) for k, v in headers if k != b"user-agent"]
            headers.append((b"user-agent", agent))
        arrival = (
            sim.arriving
            and scope.get("method") == "GET"
            and not scope["path"].startswith(_NOT_PAGES)
        )
        if arrival and sim.source in SOURCES:
            referer = SOURCES[sim.source].referer
            headers = [(k, v) for k, v in headers if k != b"referer"]
            if referer:
                headers.append((b"referer", referer.encode()))
        scope["headers"] = headers
        if not arrival:
            await self.app(scope, receive, send)
            return

        landed = self.codec.dump(Simulation(**{**asdict(sim), "arriving": False}))

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append(
                    "set-cookie", f"{SIM_COOKIE}={landed}; Path=/; HttpOnly; SameSite=Lax"
                )
            await send(message)

        await self.app(scope, receive, send_wrapper)
