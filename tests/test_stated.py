"""Stated preferences beat inference on the request path: no geo (nor its clock) for a visitor
who said not to use their location, their language first, and learning features that never
see an interest they disowned."""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from personalize import EventError, MemoryStore, PersonalizeMiddleware, get_visitor
from personalize.context.builder import ContextBuilder
from personalize.context.records import Clock, Geo, Signals, VisitorContext
from personalize.learning.features import session_features
from personalize.profiles.events import apply_event, validate_event
from personalize.profiles.pageviews import Hit, apply_hit
from personalize.profiles.profile import Profile
from tests.apps import BROWSER, SECRET
from tests.conftest import shared_data_path

LONDON = {"x-forwarded-for": "81.2.69.142"}  # London, GB, Europe/London in MaxMind's test data
NOW = 1_700_000_000.0


def test_the_context_as_the_visitor_asked() -> None:
    builder = ContextBuilder(site_time_zone="America/New_York")
    context = VisitorContext(
        geo=Geo(country="GB", time_zone="Europe/London"),
        clock=Clock(time_zone="Europe/London", hour=12),
        signals=Signals(languages=("en-gb", "en", "fr")),
    )
    same = builder.as_stated(context, NOW, use_geo=True, language=None)
    assert same is context  # nothing said: nothing built
    assert builder.as_stated(context, NOW, use_geo=True, language="en-gb") is context
    quiet = builder.as_stated(context, NOW, use_geo=False, language="fr")
    assert quiet.geo is None
    assert quiet.clock.time_zone == "America/New_York"  # the site's clock, not the visitor's
    assert quiet.signals.languages == ("fr", "en-gb", "en")
    assert (quiet.device, quiet.source, quiet.path) == (context.device, context.source, "/")


async def page(request: Request) -> Response:
    visitor = get_visitor(request)
    geo = visitor.context.geo
    return JSONResponse(
        {
            "id": visitor.id,
            "country": geo.country if geo else None,
            "zone": visitor.context.clock.time_zone,
            "language": visitor.context.signals.language,
            "attrs_country": visitor.attributes.get("country"),
            "sessions": [s.country for s in visitor.profile.sessions],
        }
    )


async def say(request: Request) -> Response:
    try:
        await get_visitor(request).track("preference", await request.json())
    except EventError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"ok": True})


def app(**options: object) -> PersonalizeMiddleware:
    routes = [Route("/", page), Route("/say", say, methods=["POST"])]
    options.setdefault("flush_interval", 0)
    return PersonalizeMiddleware(
        Starlette(routes=routes),
        secret_key=SECRET,
        store=MemoryStore(),
        categories={"/shoes/*": "shoes"},
        **options,  # type: ignore[arg-type]
    )


def test_location_not_used_means_no_geo_for_that_visitor_only() -> None:
    db = shared_data_path("maxmind-test-db", "test-data", "GeoIP2-City-Test.mmdb")
    pz = app(geoip_db=str(db), trusted_proxies=["10.0.0.1"], site_time_zone="UTC")
    proxy = ("10.0.0.1", 5000)
    with (
        TestClient(pz, headers={**BROWSER, **LONDON}, client=proxy) as c,
        TestClient(pz, headers={**BROWSER, **LONDON}, client=proxy) as other,
    ):
        first = c.get("/").json()
        assert (first["country"], first["zone"], first["attrs_country"]) == (
            "GB",
            "Europe/London",
            "GB",
        )
        assert c.post("/say", json={"location": False}).json() == {"ok": True}
        after = c.get("/").json()
        assert (after["country"], after["zone"], after["attrs_country"]) == (None, "UTC", None)
        assert after["sessions"] == [None]  # the country of the earlier visit is forgotten
        assert other.get("/").json()["country"] == "GB"  # nobody else is affected
        c.post("/say", json={"location": True})
        assert c.get("/").json()["country"] == "GB"


def test_a_chosen_language_beats_accept_language() -> None:
    with TestClient(app(), headers={**BROWSER, "accept-language": "de-DE, de;q=0.9"}) as c:
        assert c.get("/").json()["language"] == "de"
        c.post("/say", json={"language": "pt-BR"})
        assert c.get("/").json()["language"] == "pt"


def test_in_app_preferences_are_validated_like_the_apis() -> None:
    with TestClient(app(), headers=BROWSER) as c:
        c.get("/")
        r = c.post("/say", json={"interest.hats": "less"})
        assert r.status_code == 400 and "unknown category 'hats'" in r.json()["error"]
        assert c.post("/say", json={"interest.shoes": "less", "promotions": "never"}).json() == {
            "ok": True
        }


@pytest.mark.parametrize("when", ["before", "after"])
def test_learning_never_sees_a_disowned_interest(when: str) -> None:
    p = Profile(key="v:1")
    event = validate_event("preference", {"interest.shoes": "less", "origin": "me"}, ts=NOW)
    if when == "before":
        apply_event(p, event)
    for i in range(3):
        apply_hit(p, Hit(ts=NOW + i, path="/shoes/x", category="shoes", country="GB"))
    apply_hit(p, Hit(ts=NOW + 5, path="/bags/x", category="bags"))
    if when == "after":
        apply_event(p, event)
    x = session_features(VisitorContext(), p, now=NOW + 10)
    assert (x["category"], x["affinity_share"]) == ("bags", 1.0)
    assert json.loads(p.to_json())["affinities"] == {"bags": 1.0}


# What is not browsing history: this request's own context, what the shop's other systems sent
# (orders, returns, tickets), being logged in, and the clock.
NOT_HISTORY = {
    *("anonymous", "known", "now", "dnt", "gpc", "language", "languages", "path", "touch"),
    *("browser", "device_type", "os", "os_version", "campaign", "channel", "medium", "source"),
    *("term", "referrer_host", "city", "continent", "country", "region", "time_zone"),
    *("daypart", "hour", "minute", "weekday", "weekend"),
    *("purchased", "purchases", "revenue", "last_purchase_at", "days_since_last_purchase"),
    *("returns", "last_return_at", "open_tickets", "last_ticket_at"),
}


def test_every_attribute_is_classed_as_browsing_history_or_not() -> None:
    """A new attribute must be put on one side, or "don't use my history" could miss it."""
    from personalize.rules.stated import HISTORY
    from personalize.rules.vocabulary import ATTRIBUTES

    unclassed = {
        name for name in ATTRIBUTES
        if name not in HISTORY and name not in NOT_HISTORY and not name.startswith("stated.")
    }  # fmt: skip
    assert unclassed == set() and not HISTORY & NOT_HISTORY
    from personalize.rules.stated import history_blind

    seen = {"unusual": 0.9, "unusual_why": "first visit from a mobile", "anomalous": True}
    assert history_blind({**seen, "country": "GB"}) == {"country": "GB"}
