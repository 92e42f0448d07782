"""ContextBuilder through the middleware and TestClient: client hints, CDN geo, the headers out.

Real Chromium request headers (tests/data/client_hints_chromium.yaml) go through a tiny app, as
a browser's would; CDN geolocation headers come from a peer that is or is not a trusted proxy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import shared_data_path
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from personalize import MemoryStore, PersonalizeMiddleware, get_visitor
from personalize.context.builder import ContextBuilder, read_headers
from personalize.context.client_hints import ACCEPT_CH
from personalize.exceptions import ConfigurationError
from tests.apps import SECRET

DATA = Path(__file__).parent / "data"
CAPTURED: dict[str, Any] = yaml.safe_load((DATA / "client_hints_chromium.yaml").read_text("utf-8"))
CASES: dict[str, Any] = yaml.safe_load((DATA / "client_hints_cases.yaml").read_text("utf-8"))
CDN_PEER = "173.245.48.7"  # in Cloudflare's 173.245.48.0/20
STRANGER = "198.51.100.9"
LONDON_IP = "81.2.69.142"  # London, GB, Europe/London in MaxMind's test database
PIXEL_7 = next(s for s in CAPTURED["scenarios"] if s["name"] == "android-phone-reduced-ua")
SEGMENTS = """
- name: from_ai_assistant
  description: Sent by a chat assistant
  rule: {attribute: channel, operator: eq, value: ai_assistant}
- name: modern_android
  description: Android 14 or later
  rule:
    all:
      - {attribute: os, operator: eq, value: Android}
      - {attribute: os_version, operator: matches, value: '^(1[4-9]|[2-9][0-9])'}
"""


async def context_page(request: Request) -> Response:
    visitor = get_visitor(request)
    context = visitor.context
    geo = context.geo
    return JSONResponse(
        {
            "device": [context.device.type, context.device.os, context.device.os_version],
            "browser": [context.device.browser, context.device.browser_version],
            "geo": None if geo is None else [geo.country, geo.city, geo.time_zone],
            "hour_zone": context.clock.time_zone,
            "hints": list(context.client_hints),
            "channel": [context.source.channel, context.source.source],
            "segments": sorted(m.segment for m in visitor.segments),
        }
    )


async def html_page(request: Request) -> Response:
    get_visitor(request).context  # noqa: B018 - reading it personalizes the response
    return HTMLResponse("<p>hello</p>", headers={"vary": "Accept-Encoding"})


async def same_for_all(request: Request) -> Response:
    return HTMLResponse("<p>same for everyone</p>")


def _app(**options: Any) -> Starlette:
    app = Starlette(
        routes=[
            Route("/", context_page),
            Route("/page", html_page),
            Route("/same", same_for_all),
        ]
    )
    options.setdefault("store", MemoryStore())
    app.add_middleware(PersonalizeMiddleware, secret_key=SECRET, **options)
    return app


def _client(peer: str = STRANGER, **options: Any) -> TestClient:
    return TestClient(_app(**options), base_url="https://shop.test", client=(peer, 50000))


def _browser_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in {"connection", "accept-encoding"}}


def _scenario_requests() -> list[tuple[str, dict[str, str]]]:
    return [
        (s["name"], _browser_headers(r["headers"]))
        for s in CAPTURED["scenarios"]
        for r in s["requests"]
    ]


@pytest.mark.parametrize(
    ("scenario", "headers"),
    _scenario_requests(),
    ids=[f"{n}-{i}" for i, (n, _) in enumerate(_scenario_requests())],
)
def test_real_chromium_requests_get_the_device_their_hints_say(
    scenario: str, headers: dict[str, str]
) -> None:
    expected = CASES["chromium"][scenario]
    want = expected["asked" if "sec-ch-ua-platform-version" in headers else "first"]
    body = _client().get("/", headers=headers).json()
    got = dict(zip(("type", "os", "os_version"), body["device"], strict=True))
    got |= dict(zip(("browser", "browser_version"), body["browser"], strict=True))
    assert {k: got[k] for k in want if k in got} == {k: v for k, v in want.items() if k in got}
    assert "Sec-CH-UA-Platform" in body["hints"] and "Sec-CH-UA-Mobile" in body["hints"]


def test_a_reduced_android_user_agent_is_android_14_only_by_its_hints(tmp_path: Path) -> None:
    asked = _browser_headers(PIXEL_7["requests"][-1]["headers"])
    assert "Android 10; K)" in asked["user-agent"]
    (tmp_path / "segments.yaml").write_text(SEGMENTS, "utf-8")
    client = _client(segments=tmp_path)
    hinted = client.get("/", headers=asked).json()
    assert hinted["device"] == ["mobile", "Android", "14"]
    assert "modern_android" in hinted["segments"]
    ua_only = client.get("/", headers={"user-agent": asked["user-agent"]}).json()
    # The frozen "Android 10" is all the User-Agent says: not Android 14.
    assert ua_only["device"] == ["mobile", "Android", "10"] and ua_only["hints"] == []
    assert "modern_android" not in ua_only["segments"]


def test_hints_are_ignored_when_switched_off() -> None:
    asked = _browser_headers(PIXEL_7["requests"][-1]["headers"])
    body = _client(client_hints="off").get("/", headers=asked).json()
    assert body["device"] == ["mobile", "Android", "10"] and body["hints"] == []


def test_garbage_hints_fall_back_to_the_user_agent() -> None:
    ua = PIXEL_7["requests"][-1]["headers"]["user-agent"]
    garbage = {
        "user-agent": ua,
        "sec-ch-ua-mobile": "maybe",
        "sec-ch-ua-platform": "Android" * 200,
        "sec-ch-ua": '"unterminated',
    }
    r = _client().get("/", headers=garbage)
    assert r.status_code == 200
    assert r.json()["device"][:2] == ["mobile", "Android"] and r.json()["hints"] == []
    assert "sec-ch-ua" not in r.headers["vary"].lower()


def test_hints_are_read_only_with_the_platform_every_chromium_sends() -> None:
    windows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0.0.0"
    partial = {"user-agent": windows, "sec-ch-ua-mobile": "?1"}
    body = _client().get("/", headers=partial).json()
    assert body["device"][:2] == ["desktop", "Windows"] and body["hints"] == []
    body = _client().get("/", headers=partial | {"sec-ch-ua-platform": '"Android"'}).json()
    assert body["device"][:2] == ["mobile", "Android"]
    assert body["hints"] == ["Sec-CH-UA-Mobile", "Sec-CH-UA-Platform"]


def test_vary_names_the_hints_read_and_the_response_stays_private() -> None:
    asked = _browser_headers(PIXEL_7["requests"][-1]["headers"])
    r = _client().get("/page", headers=asked)
    vary = [v.strip() for v in r.headers["vary"].split(",")]
    assert vary[:2] == ["Accept-Encoding", "Cookie"]
    assert {"Sec-CH-UA", "Sec-CH-UA-Mobile", "Sec-CH-UA-Platform"} <= set(vary)
    assert {"Sec-CH-UA-Platform-Version", "Sec-CH-UA-Model"} <= set(vary)
    assert r.headers["cache-control"].startswith("private")
    plain = _client().get("/page", headers={"user-agent": asked["user-agent"]})
    assert plain.headers["vary"] == "Accept-Encoding, Cookie"  # no hint was read


def test_accept_ch_is_sent_on_html_only_when_the_site_requests_hints() -> None:
    assert "accept-ch" not in _client().get("/page").headers  # "read" is the default
    client = _client(client_hints="request")
    page = client.get("/page")
    assert page.headers["accept-ch"] == ACCEPT_CH
    # The hints asked for are named in Vary already: the next request's page depends on them.
    vary = [v.strip() for v in page.headers["vary"].split(",")]
    assert vary == ["Accept-Encoding", "Cookie", *ACCEPT_CH.split(", ")]
    asked = _browser_headers(PIXEL_7["requests"][-1]["headers"])
    vary = [v.strip() for v in client.get("/page", headers=asked).headers["vary"].split(",")]
    assert len(vary) == len(set(vary)) and "Sec-CH-UA-Mobile" in vary and "Sec-CH-UA-Model" in vary
    # A page nobody personalized asks too (hints come from the next request on), and stays
    # cacheable as the app made it.
    same = client.get("/same")
    assert same.headers["accept-ch"] == ACCEPT_CH
    assert "cache-control" not in same.headers and "vary" not in same.headers
    assert "accept-ch" not in client.get("/").headers  # JSON: not a document


def test_the_apps_own_accept_ch_is_kept() -> None:
    async def own(request: Request) -> Response:
        return HTMLResponse("<p>x</p>", headers={"accept-ch": "Sec-CH-UA-Model"})

    app = Starlette(routes=[Route("/", own)])
    app.add_middleware(
        PersonalizeMiddleware, secret_key=SECRET, store=MemoryStore(), client_hints="request"
    )
    r = TestClient(app).get("/")
    assert r.headers.get_list("accept-ch") == ["Sec-CH-UA-Model"]


CLOUDFLARE = {
    "cf-ipcountry": "DE",
    "cf-ipcity": "Berlin",
    "cf-timezone": "Europe/Berlin",
    "cf-region-code": "BE",
}


def test_cdn_geo_from_a_trusted_proxy_sets_country_city_and_clock() -> None:
    client = _client(CDN_PEER, trusted_proxies=["173.245.48.0/20"], cdn_geo=["cloudflare"])
    body = client.get("/", headers=CLOUDFLARE).json()
    assert body["geo"] == ["DE", "Berlin", "Europe/Berlin"]
    assert body["hour_zone"] == "Europe/Berlin"


def test_cdn_geo_headers_from_anybody_else_are_ignored() -> None:
    client = _client(STRANGER, trusted_proxies=["173.245.48.0/20"], cdn_geo=["cloudflare"])
    assert client.get("/", headers=CLOUDFLARE).json()["geo"] is None


def test_cdn_geo_is_off_unless_configured() -> None:
    client = _client(CDN_PEER, trusted_proxies=["173.245.48.0/20"])
    assert client.get("/", headers=CLOUDFLARE).json()["geo"] is None


def test_forged_or_garbage_cdn_values_are_not_believed() -> None:
    client = _client(CDN_PEER, trusted_proxies=["173.245.48.0/20"], cdn_geo=["cloudflare"])
    for headers in (
        {"cf-ipcountry": "T1"},  # Tor
        {"cf-ipcountry": "XX"},
        {"cf-ipcountry": "<script>"},
        {"cf-ipcountry": "D" * 5000},
        {"cf-ipcity": "Berlin"},  # no country
    ):
        r = client.get("/", headers=headers)
        assert r.status_code == 200 and r.json()["geo"] is None, headers
    bad_zone = client.get("/", headers={"cf-ipcountry": "DE", "cf-timezone": "EST"}).json()
    assert bad_zone["geo"] == ["DE", None, None] and bad_zone["hour_zone"] == "UTC"


def test_geoip_fills_what_the_cdn_leaves_out_and_is_the_fallback() -> None:
    mmdb = shared_data_path("maxmind-test-db", "test-data", "GeoIP2-City-Test.mmdb")
    options = {
        "geoip_db": mmdb,
        "trusted_proxies": ["173.245.48.0/20"],
        "cdn_geo": ["cloudfront", "cloudflare"],
    }
    client = _client(CDN_PEER, **options)
    forwarded = {"x-forwarded-for": LONDON_IP}
    only_country = client.get("/", headers=forwarded | {"cf-ipcountry": "GB"}).json()
    assert only_country["geo"] == ["GB", "London", "Europe/London"]
    # The CDN says elsewhere: its answer wins, and nothing of GeoIP's other place is mixed in.
    elsewhere = client.get("/", headers=forwarded | {"cloudfront-viewer-country": "FR"}).json()
    assert elsewhere["geo"] == ["FR", None, None]
    without_cdn = client.get("/", headers=forwarded).json()
    assert without_cdn["geo"] == ["GB", "London", "Europe/London"]


def test_cdn_geo_needs_trusted_proxies_and_known_cdns() -> None:
    with pytest.raises(ConfigurationError, match="trusted_proxies"):
        PersonalizeMiddleware(Starlette(), secret_key=SECRET, cdn_geo=["cloudflare"])
    with pytest.raises(ConfigurationError, match="unknown CDN"):
        ContextBuilder(trusted_proxies=["10.0.0.0/8"], cdn_geo=["cloudflair"])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="must be a list"):
        ContextBuilder(trusted_proxies=["10.0.0.0/8"], cdn_geo="cloudflare")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="client_hints must be"):
        ContextBuilder(client_hints="always")  # type: ignore[arg-type]


def test_headers_are_read_only_when_the_builder_uses_them() -> None:
    scope = {
        "type": "http",
        "headers": [(b"sec-ch-ua-mobile", b"?1"), (b"cf-ipcountry", b"DE"), (b"host", b"a")],
    }
    plain = ContextBuilder(client_hints="off")
    assert read_headers(scope, plain.wanted) == {b"host": "a"}
    both = ContextBuilder(trusted_proxies=["10.0.0.0/8"], cdn_geo=["cloudflare"])
    assert read_headers(scope, both.wanted) == {
        b"sec-ch-ua-mobile": "?1",
        b"cf-ipcountry": "DE",
        b"host": "a",
    }


def test_the_ai_assistant_segment_through_the_middleware(tmp_path: Path) -> None:
    (tmp_path / "ai.yaml").write_text(SEGMENTS, "utf-8")
    client = _client(segments=tmp_path)
    for referer, source in (
        ("https://chatgpt.com/", "chatgpt"),
        ("https://claude.ai/", "claude"),
        ("https://www.perplexity.ai/", "perplexity"),
    ):
        body = client.get("/", headers={"referer": referer}).json()
        assert body["channel"] == ["ai_assistant", source]
        assert "from_ai_assistant" in body["segments"]
    tagged = client.get("/?utm_source=chatgpt.com").json()
    assert tagged["channel"] == ["ai_assistant", "chatgpt"]
    webmail = client.get("/", headers={"referer": "https://mail.google.com/"}).json()
    assert webmail["channel"] == ["email", "gmail"] and webmail["segments"] == []
