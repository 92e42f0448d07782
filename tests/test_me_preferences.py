"""The visitor's say on /me: the preferences form, "not me", withdrawing, CSRF, visitors who
are not remembered, and preferences from other channels through the events API."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from personalize.middleware import PersonalizeMiddleware
from personalize.profiles.profile import Profile
from personalize.web.csrf import CsrfSigner
from tests.pages_app import PHONE, client, csrf_token, make, visitor_id

API_KEY = "preferences-api-key-0123456789abcdef"


@pytest.fixture
def pz(tmp_path: Path) -> PersonalizeMiddleware:
    return make(tmp_path, api_keys=[API_KEY])


def stored(pz: PersonalizeMiddleware, key: str) -> Profile | None:
    return asyncio.run(pz.personalizer.profiles.read(key))


def shopper(pz: PersonalizeMiddleware, *paths: str, **headers: str) -> tuple[TestClient, str]:
    c = client(pz, headers)
    vid = visitor_id(c.get(paths[0] if paths else "/").text)
    for path in paths[1:]:
        c.get(path)
    return c, vid


def post(c: TestClient, route: str, **data: str) -> Any:
    token = csrf_token(c.get("/_personalize/me").text)
    return c.post(f"/_personalize/me/{route}", data={"csrf_token": token, **data},
                  follow_redirects=False)  # fmt: skip


FORM = {"form": "preferences", "interest.shoes": "", "interest.bags": "", "language": ""}


def test_the_form_lists_the_sites_categories_and_works_without_javascript(
    pz: PersonalizeMiddleware,
) -> None:
    c, _ = shopper(pz, "/shoes/a")
    html = c.get("/_personalize/me").text
    section = html[html.index('id="your-say"') :]
    assert 'action="/_personalize/me/preferences"' in section and "<script" not in html
    for name in ("interest.shoes", "interest.bags", "promotions", "location", "history"):
        assert f'name="{name}"' in section
    assert 'name="csrf_token"' in section


def test_stating_preferences_stores_them_with_time_and_origin(pz: PersonalizeMiddleware) -> None:
    c, vid = shopper(pz, "/shoes/a", "/shoes/b", "/shoes/c")
    form = {**FORM, "interest.shoes": "less", "interest.bags": "more", "promotions": "never",
            "location": "off", "language": "fr-CH"}  # fmt: skip
    r = post(c, "preferences", **form)
    assert r.status_code == 303 and r.headers["location"] == "/_personalize/me?done=stated"
    profile = stored(pz, f"v:{vid}")
    assert profile is not None
    values = {name: entry["value"] for name, entry in profile.stated.items()}
    assert values == {"interest.shoes": "less", "interest.bags": "more",
                      "promotions": "never", "location": False, "language": "fr-ch"}  # fmt: skip
    assert {e["origin"] for e in profile.stated.values()} == {"me"}
    assert profile.affinities == {}  # the shoes it inferred are gone
    page = c.get(r.headers["location"]).text
    said = page[page.index('id="you-said"') :]
    assert "Show me less of shoes" in said and "Offers: never" in said
    assert "(you said so on " in said and ", on this page)" in said
    assert "what you told us now comes before" in page
    assert (
        c.get("/_personalize/me/export").json()["stored_profile"]["stated"]["promotions"]["value"]
        == "never"
    )
    # Saving the same again states nothing new: each statement keeps its real time.
    before = profile.stated
    again = post(c, "preferences", **form)
    assert again.headers["location"].endswith("done=unchanged")
    after = stored(pz, f"v:{vid}")
    assert after is not None and after.stated == before


def test_unticking_a_box_says_the_opposite_and_empty_fields_withdraw(
    pz: PersonalizeMiddleware,
) -> None:
    c, vid = shopper(pz, "/")
    post(c, "preferences", **{**FORM, "history": "off", "interest.bags": "more"})
    post(c, "preferences", **FORM)  # history unticked, bags back to "as usual"
    profile = stored(pz, f"v:{vid}")
    assert profile is not None
    assert profile.stated["history"]["value"] is True
    assert profile.stated["interest.bags"]["value"] is None


def test_not_me_drops_an_inferred_interest_and_a_segment_for_good(
    pz: PersonalizeMiddleware,
) -> None:
    c, vid = shopper(pz, "/shoes/a", "/shoes/b", **PHONE)
    page = c.get("/_personalize/me").text
    interests = page[page.index('id="interests"') : page.index('id="not-me"')]
    not_me = page[page.index('id="not-me"') : page.index('id="your-say"')]
    assert 'value="interest.shoes"' in interests and 'value="segment.mobile"' in not_me
    assert page.count('value="interest.shoes"') == 1 and page.count('value="segment.mobile"') == 1
    assert "<h1>On the go</h1>" in c.get("/").text  # the hero of the mobile segment
    assert post(c, "not-me", name="interest.shoes").headers["location"].endswith("done=not-me")
    assert post(c, "not-me", name="segment.mobile").status_code == 303
    c.get("/shoes/c")
    profile = stored(pz, f"v:{vid}")
    assert profile is not None and "shoes" not in profile.affinities
    assert profile.stated["segment.mobile"]["value"] == "not_me"
    assert "<h1>On the go</h1>" not in c.get("/").text  # no longer in the segment
    page = c.get("/_personalize/me").text
    not_me = page[page.index('id="not-me"') : page.index('id="you-said"')]
    assert '<span class="tag">mobile</span>' not in page and "segment.mobile" not in not_me
    assert 'value="interest.shoes"' not in page[: page.index('id="your-say"')]  # no "Not me" left
    assert "The group mobile is not me" in page[page.index('id="you-said"') :]
    # Withdrawn: the segment applies again.
    assert post(c, "withdraw", name="segment.mobile").headers["location"].endswith("withdrawn")
    assert "<h1>On the go</h1>" in c.get("/").text


@pytest.mark.parametrize(
    ("route", "data", "problem"),
    [
        ("preferences", {**FORM, "language": "Klingon please"}, "must be a language tag"),
        ("preferences", {**FORM, "interest.hats": "more"}, "unknown category 'hats'"),
        ("preferences", {**FORM, "promotions": "always"}, "must be one of never, sometimes"),
        ("not-me", {"name": "colour"}, "unknown preference"),
        ("not-me", {"name": "segment.<b>"}, "is not a segment name"),
    ],
)
def test_invalid_posts_are_refused_and_store_nothing(
    pz: PersonalizeMiddleware, route: str, data: dict[str, str], problem: str
) -> None:
    c, vid = shopper(pz, "/")
    r = post(c, route, **data)
    assert r.status_code == 422 and problem in r.text and "Not saved" in r.text
    profile = stored(pz, f"v:{vid}")
    assert profile is not None and profile.stated == {}


def test_posts_need_the_pages_token_and_this_site_as_origin(pz: PersonalizeMiddleware) -> None:
    c, vid = shopper(pz, "/")
    token = csrf_token(c.get("/_personalize/me").text)
    other, _ = shopper(pz, "/")
    other_token = csrf_token(other.get("/_personalize/me").text)
    attempts = [
        ({"csrf_token": "forged", **FORM, "promotions": "never"}, {}),
        ({"csrf_token": other_token, **FORM, "promotions": "never"}, {}),
        ({"csrf_token": token, **FORM, "promotions": "never"}, {"origin": "https://evil.test"}),
    ]
    for data, headers in attempts:
        r = c.post("/_personalize/me/preferences", data=data, headers=headers)
        assert r.status_code == 403
    assert c.post("/_personalize/me/not-me", data={"name": "segment.mobile"}).status_code == 403
    assert c.get("/_personalize/me/preferences").status_code == 405
    no_marker = c.post("/_personalize/me/preferences", data={"csrf_token": token})
    assert no_marker.status_code == 400
    profile = stored(pz, f"v:{vid}")
    assert profile is not None and profile.stated == {}


def test_a_visitor_who_is_not_remembered_is_told_why_and_cannot_state(
    pz: PersonalizeMiddleware,
) -> None:
    c = client(pz, {"sec-gpc": "1"})
    c.get("/shoes/a")
    page = c.get("/_personalize/me").text
    say = page[page.index('id="your-say"') :]
    assert "You cannot tell this site your preferences here" in say
    assert "Global Privacy Control" in say and "/me/preferences" not in page
    # Even with a valid token (there is none on the page), nothing can be kept.
    token = CsrfSigner(pz.personalizer.cookies.signing_secret, purpose="me").token("me:-")
    r = c.post(
        "/_personalize/me/preferences",
        data={"csrf_token": token, **FORM, "promotions": "never"},
        headers={"origin": "http://testserver"},
    )
    assert r.status_code == 409 and "nowhere to keep a preference" in r.text
    assert asyncio.run(pz.personalizer.profiles.store.keys()) == []


def test_preferences_said_before_login_follow_the_customer_to_other_devices(
    pz: PersonalizeMiddleware,
) -> None:
    phone, _ = shopper(pz, "/shoes/a", **PHONE)
    post(phone, "preferences", **{**FORM, "promotions": "sometimes"})
    phone.get("/login?user=ann")
    laptop, _ = shopper(pz, "/")
    laptop.get("/login?user=ann")
    page = laptop.get("/_personalize/me").text
    assert "Offers: sometimes (one a day at most)" in page
    assert 'value="sometimes" checked' in page


def events(c: TestClient, body: Any) -> Any:
    return c.post(
        "/_personalize/events",
        content=json.dumps(body),
        headers={"authorization": f"Bearer {API_KEY}", "content-type": "application/json"},
    )


def test_a_call_centre_sets_preferences_through_the_events_api(
    pz: PersonalizeMiddleware,
) -> None:
    c, vid = shopper(pz, "/bags/a")
    r = events(c, [
        {"type": "preference", "visitor_id": vid,
         "properties": {"promotions": "never", "interest.bags": "less", "origin": "call_centre"}},
        {"type": "preference", "user_id": "ann", "properties": {"history": False}},
    ])  # fmt: skip
    assert r.status_code == 202 and r.json() == {"accepted": 2}
    page = c.get("/_personalize/me").text
    assert "Offers: never" in page and "by call centre" in page
    ann = stored(pz, "u:ann")
    assert ann is not None and ann.stated["history"]["origin"] == "api"


def test_the_events_api_lists_every_problem_of_a_preference(pz: PersonalizeMiddleware) -> None:
    c, vid = shopper(pz, "/")
    r = events(c, [
        {"type": "preference", "visitor_id": vid, "properties": {"promotions": "never"}},
        {"type": "preference", "user_id": "ann",
         "properties": {"interest.hats": "more", "promotions": "loads", "location": "no"}},
        {"type": "preference", "user_id": "ann", "properties": {}},
    ])  # fmt: skip
    assert r.status_code == 422
    problems = r.json()["problems"]
    assert [p["index"] for p in problems] == [1, 2]
    message = problems[0]["error"]
    assert "unknown category 'hats' (the site's categories: bags, shoes)" in message
    assert "promotions: must be one of" in message
    assert "location: must be true, false or null" in message
    assert "at least one preference" in problems[1]["error"]
    profile = stored(pz, f"v:{vid}")
    assert profile is not None and profile.stated == {}  # nothing from a rejected batch


def test_the_learned_cluster_can_be_disowned(tmp_path: Path) -> None:
    from personalize.learning.runtime import LocalLearning, Visit

    class ClusterThree(LocalLearning):
        def scores(self, visitor: Visit) -> dict[str, Any]:
            return {"cluster": 3, "anomaly": 0.1}

    pz = make(tmp_path, learning=ClusterThree())
    c, _ = shopper(pz, "/")
    page = c.get("/_personalize/me").text
    not_me = page[page.index('id="not-me"') : page.index('id="your-say"')]
    assert "group 3" in not_me and 'value="cluster.3"' in not_me
    assert post(c, "not-me", name="cluster.3").status_code == 303
    page = c.get("/_personalize/me").text
    assert 'value="cluster.3"' not in page[page.index('id="not-me"') : page.index('id="you-said"')]
    assert "The group the site&#39;s model formed, 3, is not me" in page
    export = c.get("/_personalize/me/export").json()
    assert export["stored_profile"]["stated"]["cluster.3"]["value"] == "not_me"
