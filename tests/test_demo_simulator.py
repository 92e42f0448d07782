"""The demo's visitor simulator: country, device, source and local time, through TestClient."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from itsdangerous import URLSafeSerializer
from starlette.testclient import TestClient

from demo_site import simulator
from demo_site.app import packaged_geoip_db
from tests.demo_shop import SECRET, geoip_db, make_client, post, slot_why, variant, words

needs_geolite = pytest.mark.skipif(
    packaged_geoip_db() is None, reason="needs the demo extra's GeoLite2 City"
)


@pytest.fixture
def demo() -> Iterator[TestClient]:
    yield from make_client(demo_mode=True, geoip_db=geoip_db())


def known(page: str, term: str) -> str:
    """A line of "What the shop knows about you right now"."""
    found = re.search(rf"<dt>{term}</dt> <dd>(.*?)</dd>", words(page))
    assert found, term
    return found.group(1)


def test_simulator_changes_country_device_and_source(demo: TestClient) -> None:
    page = demo.get("/").text
    assert "Visitor simulator" in page and "Not simulating" in page
    applied = post(
        demo,
        "/_demo/simulate",
        {"country": "gb", "device": "iphone", "source": "google_ads", "new_visit": "1",
         "next": "/"},
        follow_redirects=False,
    )  # fmt: skip
    assert applied.status_code == 303
    assert applied.headers["location"].startswith("/?utm_source=google&utm_medium=cpc")
    page = words(demo.get(applied.headers["location"]).text)
    assert "(GB)" in page and "mobile, iOS" in page and "paid_search (google" in page
    assert variant(page, "hero") == "search_deal"  # pinned for paid_search_mobile
    assert "The deal you searched for" in page
    why = slot_why(page, "hero")
    assert "Shown because you arrived from a Google ad and you are on a phone." in why
    assert "Shown because you arrived from a Google ad." in slot_why(page, "banner")
    assert "Simulating: United Kingdom (London) from 81.2.69.142" in page

    # The referrer is simulated on the landing page only: later pages are navigation.
    later = words(demo.get("/bags").text)
    assert "This page view came from</dt> <dd>direct" in later
    assert "mobile, iOS" in later and "(GB)" in later

    page = words(
        post(
            demo, "/_demo/simulate", {"device": "desktop", "source": "newsletter", "next": "/"}
        ).text
    )
    assert "desktop, Windows" in page and "email (newsletter" in page
    assert "unknown: a local address" in page  # no country chosen: the real (local) address

    post(demo, "/_demo/reset", {"next": "/"})
    assert "Not simulating" in demo.get("/").text


def test_the_paid_search_hero_stays_for_the_whole_visit(demo: TestClient) -> None:
    """The ad click opened the visit; the pages after it are internal links of that visit."""
    post(demo, "/_demo/simulate", {"country": "gb", "device": "iphone", "source": "google_ads",
                                   "new_visit": "1", "next": "/"})  # fmt: skip
    for path in ("/bags", "/bags/tote-3", "/", "/outdoor", "/"):
        page = demo.get(path).text
        assert "This page view came from</dt> <dd>direct" in words(page) or path == "/"
        if path == "/":
            assert variant(page, "hero") == "search_deal", path
            assert "The deal you searched for" in page


@pytest.mark.parametrize(
    ("country", "hour", "code"),
    [
        ("gb", 20, "GB"),  # was Pago Pago
        ("gb", 21, "GB"),  # was Honolulu, with the US hero
        ("gb", 3, "GB"),
        ("de", 9, "DE"),  # was Athens
        ("jp", 23, "JP"),
        ("us-west", 7, "US"),
    ],
)
def test_a_local_time_keeps_the_chosen_country(
    demo: TestClient, country: str, hour: int, code: str
) -> None:
    if code != "GB" and packaged_geoip_db() is None:
        pytest.skip("needs the demo extra's GeoLite2 City (MaxMind's test database has London)")
    post(demo, "/_demo/simulate", {"country": country, "hour": str(hour), "new_visit": "1",
                                   "next": "/"})  # fmt: skip
    page = demo.get("/").text
    assert known(page, "Location").endswith(f"({code})")
    local = known(page, "Your local time")
    assert re.match(rf"\w+ {hour:02d}:\d\d, ", local), local
    daypart = ("night", "morning", "afternoon", "evening")[hour // 6]
    assert daypart in local and simulator.COUNTRIES[country].time_zone in local
    # The form still shows what was chosen, and the status line says it in words.
    assert re.search(rf'<option value="{country}" selected>', page)
    assert re.search(rf'<option value="{hour}" selected>', page)
    assert f"{hour:02d}:00-{hour:02d}:59 local time" in words(page)
    if code == "GB":
        assert "uk_visitors" in page and "us_visitors" not in page


def test_a_local_time_alone_moves_only_the_clock(demo: TestClient) -> None:
    post(demo, "/_demo/simulate", {"hour": "22", "next": "/"})
    page = demo.get("/").text
    assert known(page, "Location").startswith("unknown")  # as the visitor really is
    assert re.match(r"\w+ 22:\d\d, evening", known(page, "Your local time"))
    assert "night_owls" in page  # hour between 22 and 5
    assert "Simulating: 22:00-22:59 local time" in words(page)


def test_simulator_is_absent_without_demo_mode() -> None:
    for client in make_client(geoip_db=geoip_db()):
        assert "Visitor simulator" not in client.get("/").text
        assert post(client, "/_demo/simulate", {"country": "gb"}).status_code == 404
        # A simulator cookie from a demo instance with the same secret changes nothing.
        forged = simulator.SimulationCodec(SECRET).dump(simulator.Simulation(country="gb", hour=20))
        client.cookies.set("demo_sim", forged)
        assert "unknown: a local address" in client.get("/").text


def test_an_old_or_tampered_simulator_cookie_is_no_simulation() -> None:
    codec = simulator.SimulationCodec(SECRET)
    earlier = URLSafeSerializer(SECRET, salt="demo-simulator")  # as the codec signs
    old = earlier.dumps({"country": "gb", "zone": "tz:Pacific/Pago_Pago", "hour": 20})
    assert codec.load(old) is None  # the cookie of an earlier version of the demo
    assert codec.load(codec.dump(simulator.Simulation(hour=20))) == simulator.Simulation(hour=20)
    assert codec.load("x" * 2000) is None


def test_arriving_as_i_am_is_not_a_visit_from_the_simulator_form(demo: TestClient) -> None:
    post(demo, "/_demo/simulate", {"country": "gb", "next": "/bags"}, follow_redirects=False,
         headers={"referer": "http://testserver/bags"})  # fmt: skip
    page = demo.get("/bags", headers={"referer": "http://testserver/bags"}).text
    assert "This page view came from</dt> <dd>direct" in words(page)


def test_an_ai_assistant_visitor_gets_the_short_answer_for_the_whole_visit(
    demo: TestClient,
) -> None:
    applied = post(demo, "/_demo/simulate", {"source": "chatgpt", "new_visit": "1", "next": "/"},
                   follow_redirects=False)  # fmt: skip
    assert applied.headers["location"] == "/?utm_source=chatgpt.com"
    page = words(demo.get(applied.headers["location"]).text)
    assert "ai_assistant (chatgpt" in page
    assert "<strong>from_ai_assistant</strong>" in page
    assert variant(page, "hero") == "ai_short_answer"
    assert "Sent here by an AI assistant?" in page
    assert "Shown because ChatGPT sent you here." in slot_why(page, "hero")
    later = words(demo.get("/bags").text)
    assert "This visit began with</dt> <dd>ai_assistant (chatgpt)" in later
    assert variant(words(demo.get("/").text), "hero") == "ai_short_answer"


@pytest.mark.parametrize(
    ("source", "came_from"),
    [
        ("perplexity", "ai_assistant (perplexity"),
        ("gmail", "email (gmail"),
        ("brave", "organic_search (brave"),
        ("display", "display (google"),
    ],
)
def test_the_new_arrivals_are_their_channels(demo: TestClient, source: str, came_from: str) -> None:
    page = words(post(demo, "/_demo/simulate", {"source": source, "new_visit": "1",
                                                "next": "/"}).text)  # fmt: skip
    assert f"This page view came from</dt> <dd>{came_from}" in page
    assert ("from_ai_assistant" in page) == (source == "perplexity")


def test_a_webmail_link_is_the_visitors_email_not_ours(demo: TestClient) -> None:
    page = words(post(demo, "/_demo/simulate", {"source": "gmail", "new_visit": "1",
                                                "next": "/"}).text)  # fmt: skip
    assert "email (gmail" in page and "our Gmail email" not in page


@pytest.mark.parametrize(
    ("device", "shown"),
    [
        ("android-hints", "mobile, Android 15, Chrome Mobile"),
        ("windows11-hints", "desktop, Windows 11, Chrome"),
    ],
)
def test_a_reduced_user_agent_is_told_apart_by_its_client_hints(
    demo: TestClient, device: str, shown: str
) -> None:
    # The test browser's own hints say Linux: a simulated device replaces them.
    real = {"sec-ch-ua-platform": '"Linux"', "sec-ch-ua-mobile": "?0"}
    post(demo, "/_demo/simulate", {"device": device, "next": "/"})
    page = words(demo.get("/", headers=real).text)
    assert known(page, "Device").startswith(shown), known(page, "Device")
    assert "Sec-CH-UA-Platform-Version" in known(page, "Device")


def test_a_simulated_device_drops_the_real_browsers_hints(demo: TestClient) -> None:
    post(demo, "/_demo/simulate", {"device": "iphone", "next": "/"})
    hints = {"sec-ch-ua-platform": '"Windows"', "sec-ch-ua-mobile": "?0"}
    assert known(words(demo.get("/", headers=hints).text), "Device").startswith("mobile, iOS 17.4")


def test_the_demo_asks_chromium_for_its_detailed_hints(demo: TestClient) -> None:
    assert "Sec-CH-UA-Platform-Version" in demo.get("/").headers["accept-ch"]
