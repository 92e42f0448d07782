"""The visitor simulator (demo mode only): be a visitor from elsewhere, on another device.

A form on every page picks a country, a device, how the visitor arrived and their local time;
the choice is kept in a signed cookie, and :class:`SimulatorMiddleware`, mounted *outside*
PersonalizeMiddleware, rewrites each request before personalization sees it:

- ``client``: a sample IP of the chosen country (a real address of the GeoLite2 City
  database the demo ships), so the GeoIP lookup finds that country, city and time zone;
- ``User-Agent``: a sample of the chosen device, with the client hints (``Sec-CH-UA-*``) a
  Chrome of that device sends; the browser's own hints are dropped, or they would describe
  the demo's visitor instead;
- ``Referer``: on the first page after a change only (the "arrival"), the chosen source's
  referrer; the utm tags and click ids are in the URL the simulator redirects to, as in a
  real ad or newsletter click;
- the local hour: ``scope["personalize.local_hour"]`` (see ``personalize.context.builder``),
  so the visitor's clock reads that hour in their own time zone: a UK visitor at 20:00 stays
  in London, whatever the time there really is.

Never mount this in production: anyone could claim any IP. ``create_app(demo_mode=False)``
(the default of the factory) leaves it out entirely.

>>> Simulation(country="gb", hour=20, device="iphone").describe()
['United Kingdom (London) from 81.2.69.142', '20:00-20:59 local time', 'iPhone (Safari)']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from personalize.context.builder import LOCAL_HOUR

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
    hints: tuple[tuple[str, str], ...] = ()  # Sec-CH-UA-* headers, lower-case names


# What Chrome 131 sends with its reduced User-Agent (as tests/data/client_hints_chromium.yaml,
# captured from Chromium, shows): the low-entropy hints always, the others after Accept-CH.
_CHROME_131 = '"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"'
_CHROME_131_FULL = (
    '"Google Chrome";v="131.0.6778.86", "Chromium";v="131.0.6778.86", "Not_A Brand";v="24.0.0.0"'
)


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
        # Reduced User-Agents: only the client hints tell the real system and version.
        DeviceSample("android-hints", "Android 15 (Chrome, reduced UA)",
                     "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
                     "Chrome/131.0.0.0 Mobile Safari/537.36",
                     (("sec-ch-ua", _CHROME_131), ("sec-ch-ua-mobile", "?1"),
                      ("sec-ch-ua-platform", '"Android"'),
                      ("sec-ch-ua-platform-version", '"15.0.0"'),
                      ("sec-ch-ua-model", '"Pixel 9"'),
                      ("sec-ch-ua-full-version-list", _CHROME_131_FULL))),
        DeviceSample("windows11-hints", "Windows 11 (Chrome, reduced UA)",
                     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
                     "Gecko) Chrome/131.0.0.0 Safari/537.36",
                     (("sec-ch-ua", _CHROME_131), ("sec-ch-ua-mobile", "?0"),
                      ("sec-ch-ua-platform", '"Windows"'),
                      ("sec-ch-ua-platform-version", '"15.0.0"'),
                      ("sec-ch-ua-full-version-list", _CHROME_131_FULL))),
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
        SourceSample("gmail", "Gmail (a link in an e-mail)",
                     "https://mail.google.com/", ""),
        SourceSample("chatgpt", "ChatGPT (AI assistant)", "https://chatgpt.com/",
                     "utm_source=chatgpt.com"),  # ChatGPT tags its links so
        SourceSample("perplexity", "Perplexity (AI assistant)",
                     "https://www.perplexity.ai/", ""),
        SourceSample("brave", "Brave Search (origin only)",
                     "https://search.brave.com/", ""),
        SourceSample("display", "Google display ad (banner)",
                     "https://googleads.g.doubleclick.net/", "gclid=EAIaIQobChMIdisplay"),
        SourceSample("blog", "Link on a hiking blog (referral)",
                     "https://blog.example.org/best-hiking-gear", ""),
    )
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Simulation:
    """What the simulator pretends; empty strings mean "as it really is"."""

    country: str = ""  # a COUNTRIES key
    hour: int | None = None  # the local hour, in the place's own time zone
    device: str = ""  # a DEVICES key
    source: str = ""  # a SOURCES key
    arriving: bool = False  # the next page is the landing page of the simulated visit

    @property
    def place(self) -> Place | None:
        return COUNTRIES.get(self.country)

    @property
    def local_hour(self) -> int | None:
        hour = self.hour
        return hour if type(hour) is int and 0 <= hour <= 23 else None

    @property
    def active(self) -> bool:
        return bool(self.place or self.device or self.source or self.local_hour is not None)

    def describe(self) -> list[str]:
        """What is simulated, in words, for the panel."""
        out = []
        place = self.place
        if place is not None:
            out.append(f"{place.label} from {place.ip}")
        hour = self.local_hour
        if hour is not None:
            out.append(f"{hour:02d}:00-{hour:02d}:59 local time")
        if self.device in DEVICES:
            out.append(DEVICES[self.device].label)
        if self.source in SOURCES:
            out.append(f"arrived via {SOURCES[self.source].label}")
        return out


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
        if sim.local_hour is not None:
            scope[LOCAL_HOUR] = sim.local_hour
        headers: list[Any] = list(scope.get("headers", ()))
        place = sim.place
        if place is not None:
            port = scope["client"][1] if scope.get("client") else 0
            scope["client"] = (place.ip, port)
        if sim.device in DEVICES:
            sample = DEVICES[sim.device]
            headers = [
                (k, v) for k, v in headers if k != b"user-agent" and not k.startswith(b"sec-ch-ua")
            ]
            headers.append((b"user-agent", sample.user_agent.encode()))
            headers.extend((name.encode(), value.encode()) for name, value in sample.hints)
        arrival = (
            sim.arriving
            and scope.get("method") == "GET"
            and not scope["path"].startswith(_NOT_PAGES)
        )
        if arrival:
            # The browser's own Referer here is the simulator's form on this site: the visit
            # arrives from the chosen source, or from nowhere (typed address) without one.
            referer = SOURCES[sim.source].referer if sim.source in SOURCES else None
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
