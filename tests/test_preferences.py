"""Stated preferences as profile data: validation, the newest statement wins, what they do to
inferred facts (interests, countries), merging at login, and the change log's round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from personalize import (
    EventError,
    Hit,
    MemoryStore,
    PersonalizeMiddleware,
    Profile,
    SQLiteStore,
    get_visitor,
    identify,
)
from personalize.profiles.changes import decode_change, encode_change, fold_changes
from personalize.profiles.events import apply_event, parse_event, validate_event
from personalize.profiles.merge import merge_profiles
from personalize.profiles.pageviews import apply_hit
from personalize.profiles.preferences import (
    MAX_STATED,
    check_preferences,
    location_used,
    stated_language,
    stated_value,
)
from personalize.profiles.profile import copy_for_page_view, copy_profile
from personalize.stores.base import ProfileStore
from tests.apps import BROWSER, SECRET
from tests.conftest import REDIS_URL

NOW = 1_700_000_000.0
API_KEY = "preferences-api-key-0123456789abcdef"
CATEGORIES = ("shoes", "bags", "outdoor")


def said(profile: Profile, ts: float, origin: str = "me", **prefs: Any) -> None:
    props = {k.replace("__", "."): v for k, v in prefs.items()}
    apply_event(profile, validate_event("preference", {**props, "origin": origin}, ts=ts))


def browsed(profile: Profile, ts: float, category: str | None, country: str | None = "GB") -> None:
    apply_hit(profile, Hit(ts=ts, path=f"/{category}/x", category=category, country=country))


@pytest.mark.parametrize(
    ("properties", "problem"),
    [
        ({}, "at least one preference"),
        ({"origin": "me"}, "at least one preference"),
        ({"promotions": "rarely"}, "promotions: must be one of never, sometimes, often"),
        ({"promotions": 3}, "promotions: must be one of"),
        ({"location": "no"}, "location: must be true, false or null"),
        ({"history": 0}, "history: must be true, false or null"),
        ({"language": "english please"}, "language: must be a language tag"),
        ({"language": "x" * 40}, "language: must be a language tag"),
        ({"interest.hats": "more"}, "unknown category 'hats' (the site's categories: bags, "),
        ({"interest.shoes": "lots"}, "interest.shoes: must be one of more, less"),
        ({"interest.": "more"}, "interest.: unknown preference"),
        ({"segment.Shoe Lovers": "not_me"}, "is not a segment name"),
        ({"segment.shoe_lovers": "yes"}, "must be one of not_me"),
        ({"cluster.<script>": "not_me"}, "is not a cluster name"),
        ({"colour": "red"}, "colour: unknown preference (known: promotions, language"),
        ({"promotions": "never", "origin": "Call Centre!"}, "origin must be a lower-case name"),
        ({f"interest.c{i}": "more" for i in range(60)}, "at most 50 preferences"),
    ],
)
def test_invalid_preferences_say_what_is_wrong(properties: dict[str, Any], problem: str) -> None:
    categories = CATEGORIES if any(k.startswith("interest.") for k in properties) else ()
    if len(properties) > 50:
        categories = ()
    with pytest.raises(EventError) as caught:
        check_preferences(properties, categories=categories)
    assert problem in str(caught.value)


def test_every_problem_of_one_event_is_listed() -> None:
    with pytest.raises(EventError) as caught:
        check_preferences({"promotions": "x", "location": "x", "colour": "x"})
    assert str(caught.value).count(";") == 2


def test_values_are_normalised_and_null_withdraws() -> None:
    checked = check_preferences(
        {"promotions": " Sometimes ", "language": "FR-ch", "interest.shoes": None},
        categories=CATEGORIES,
        origin="call_centre",
    )
    assert checked == {
        "promotions": "sometimes",
        "language": "fr-ch",
        "interest.shoes": None,
        "origin": "call_centre",
    }
    # Without the site's categories, any safe name is a category.
    assert check_preferences({"interest.garden-2": "more"})["interest.garden-2"] == "more"


def test_the_events_api_form_of_a_preference_says_where_it_came_from() -> None:
    payload = {"type": "preference", "user_id": "ann", "ts": NOW,
               "properties": {"promotions": "never"}}  # fmt: skip
    key, event = parse_event(payload, categories=CATEGORIES)
    assert (key, event.kind, event.properties) == (
        "u:ann",
        "preference",
        {"promotions": "never", "origin": "api"},
    )
    payload["properties"] = {"promotions": "never", "origin": "call_centre"}
    assert parse_event(payload)[1].properties["origin"] == "call_centre"
    with pytest.raises(EventError, match="unknown category"):
        parse_event({**payload, "properties": {"interest.hats": "less"}}, categories=CATEGORIES)


def test_the_newest_statement_wins_whatever_the_order_they_arrive_in() -> None:
    p = Profile(key="v:1")
    said(p, NOW, promotions="never")
    said(p, NOW - 60, promotions="often", origin="api")  # said earlier, arrived later
    assert stated_value(p.stated, "promotions") == "never"
    assert p.stated["promotions"] == {"value": "never", "ts": NOW, "origin": "me"}
    said(p, NOW + 60, promotions=None)  # withdrawn: the withdrawal is kept with its time
    assert stated_value(p.stated, "promotions") is None
    assert p.stated["promotions"]["ts"] == NOW + 60
    same = Profile(key="v:1")
    said(same, NOW + 60, promotions=None)
    said(same, NOW, promotions="never")
    said(same, NOW - 60, promotions="often", origin="api")
    assert same.stated == p.stated


def test_a_preference_is_not_an_event_in_the_history_and_applies_once() -> None:
    p = Profile(key="v:1")
    event = validate_event("preference", {"language": "de", "origin": "me"}, ts=NOW)
    apply_event(p, event)
    apply_event(p, event)
    assert p.events == [] and p.facts == {} and stated_language(p) == "de"


def test_less_of_a_category_drops_its_interest_for_good() -> None:
    p = Profile(key="v:1")
    for i in range(3):
        browsed(p, NOW + i, "shoes")
    browsed(p, NOW + 5, "bags")
    said(p, NOW + 10, interest__shoes="less")
    assert p.affinities == {"bags": 1.0}
    browsed(p, NOW + 20, "shoes")  # later page views of shoes add nothing
    assert p.affinities == {"bags": 1.0} and p.page_views == 5
    said(p, NOW + 30, interest__shoes=None)  # withdrawn: counting starts again from zero
    browsed(p, NOW + 40, "shoes")
    assert p.affinities == {"bags": 1.0, "shoes": 1.0}


def test_without_location_visits_keep_no_country() -> None:
    p = Profile(key="v:1")
    browsed(p, NOW, "shoes", country="GB")
    browsed(p, NOW + 3600, "bags", country="FR")
    view = copy_for_page_view(p)  # what a page holds while the statement arrives
    changed = copy_profile(p)
    said(changed, NOW + 3700, location=False)
    assert not location_used(changed)
    assert [s.country for s in changed.sessions] == [None, None]
    assert [s.country for s in view.sessions] == ["GB", "FR"]  # copies are not changed under it
    browsed(changed, NOW + 9000, "shoes", country="DE")
    assert changed.sessions[-1].country is None
    said(changed, NOW + 9100, location=True)
    browsed(changed, NOW + 20000, "shoes", country="DE")
    assert changed.sessions[-1].country == "DE"


def test_statements_merge_at_login_newest_per_preference() -> None:
    phone = Profile(key="v:phone")
    for i in range(4):
        browsed(phone, NOW + i, "shoes")
    said(phone, NOW + 100, promotions="never", interest__outdoor="more")
    known = Profile(key="u:ann", user_id="ann")
    browsed(known, NOW - 5000, "shoes")
    said(known, NOW - 4000, interest__shoes="less", promotions="often", language="fr")
    merge_profiles(known, phone)
    assert stated_value(known.stated, "promotions") == "never"  # the phone said it later
    assert stated_value(known.stated, "language") == "fr"
    assert stated_value(known.stated, "interest.outdoor") == "more"
    # "less shoes" (said on the laptop) holds for the shoes the phone looked at too.
    assert "shoes" not in known.affinities
    assert known.stated["interest.shoes"]["origin"] == "me"


def test_merging_is_the_same_in_either_direction() -> None:
    a, b = Profile(key="u:a"), Profile(key="v:b")
    said(a, NOW, promotions="never", language="en")
    said(b, NOW + 1, promotions="sometimes")
    said(b, NOW - 1, language="de")
    left, right = copy_profile(a), copy_profile(b)
    merge_profiles(left, b)
    merge_profiles(right, a)
    assert left.stated == right.stated
    assert stated_value(left.stated, "promotions") == "sometimes"
    assert stated_value(left.stated, "language") == "en"


def test_statements_round_trip_through_json_and_the_change_log() -> None:
    p = Profile(key="v:1")
    said(p, NOW, promotions="sometimes", location=False)
    assert Profile.from_json(p.to_json()) == p
    assert Profile.from_dict(json.loads(p.to_json())) == p
    older = Profile(key="v:old").to_json().replace(b',"stated":{}', b"")  # an earlier version
    assert b"stated" not in older and Profile.from_json(older).stated == {}
    event = validate_event("preference", {"history": False, "origin": "me"}, ts=NOW)
    assert decode_change(encode_change(event)) == event
    logged = Profile(key="v:1")
    fold_changes(logged, [decode_change(encode_change(event))])
    assert stated_value(logged.stated, "history") is False


def test_statements_per_profile_are_bounded_dropping_withdrawn_ones_first() -> None:
    p = Profile(key="v:1")
    said(p, NOW, interest__keep="less")
    for i in range(MAX_STATED + 10):
        said(p, NOW + i + 1, **{f"interest__c{i}": None if i < 20 else "more"})
    assert len(p.stated) == MAX_STATED
    assert stated_value(p.stated, "interest.keep") == "less"
    assert "interest.c0" not in p.stated and "interest.c209" in p.stated


# -- through every store: the events API, the change log, a login, erasure -----------------------


@pytest.fixture(params=["memory", "sqlite", "redis"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> ProfileStore:
    if request.param == "redis":
        from personalize.stores.redis import RedisStore

        return RedisStore(REDIS_URL, prefix=request.getfixturevalue("redis_prefix"))
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "p.sqlite3")
    return MemoryStore()


async def _page(request: Request) -> Response:
    return HTMLResponse(str(get_visitor(request).id))  # HTML: a page view


async def _login(request: Request) -> Response:
    await identify(request, "ann")
    return PlainTextResponse("in")


async def _forget(request: Request) -> Response:
    return PlainTextResponse(",".join(await get_visitor(request).forget()))


def test_statements_reach_every_store_merge_at_login_and_are_erased(
    any_store: ProfileStore,
) -> None:
    store = any_store
    app = Starlette(routes=[Route("/", _page), Route("/shoes/{x}", _page),
                            Route("/login", _login), Route("/forget", _forget)])  # fmt: skip
    pz = PersonalizeMiddleware(app, secret_key=SECRET, store=store, api_keys=[API_KEY],
                               categories={"/shoes/*": "shoes"}, flush_interval=0)  # fmt: skip
    with TestClient(pz, headers=BROWSER) as c:  # one event loop for the store's connections
        assert c.portal is not None
        vid = c.get("/shoes/a").text
        c.get("/shoes/b")
        r = c.post(
            "/_personalize/events",
            json={"type": "preference", "visitor_id": vid,
                  "properties": {"interest.shoes": "less", "promotions": "sometimes"}},
            headers={"authorization": f"Bearer {API_KEY}"},
        )  # fmt: skip
        assert r.status_code == 202
        c.get("/shoes/c")  # after the statement: adds nothing to shoes
        c.get("/login")
        c.get("/shoes/d")
        c.portal.call(pz.personalizer.profiles.flush)
        ann = c.portal.call(store.get, "u:ann")
        assert ann is not None and ann.page_views == 4
        assert stated_value(ann.stated, "promotions") == "sometimes"
        assert ann.stated["interest.shoes"]["origin"] == "api"
        assert "shoes" not in ann.affinities
        removed = c.get("/forget").text.split(",")
        assert "u:ann" in removed
        assert c.portal.call(store.get, "u:ann") is None
        c.portal.call(store.close)
