"""The visitor's own page: what is stored and why, export, opt-out, opt-in, erase, and that it
only ever shows the requesting visitor's own data."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from personalize.middleware import PersonalizeMiddleware
from tests.pages_app import PHONE, client, csrf_token, make, visitor_id

ORIGIN = {"origin": "http://testserver"}


@pytest.fixture
def pz(tmp_path: Path) -> PersonalizeMiddleware:
    return make(tmp_path)


def keys(pz: PersonalizeMiddleware) -> list[str]:
    return sorted(asyncio.run(pz.personalizer.profiles.store.keys()))


def shopper(pz: PersonalizeMiddleware, path: str, **headers: str) -> tuple[TestClient, str]:
    c = client(pz, headers)
    vid = visitor_id(c.get(path, headers={"referer": "https://www.google.com/"}).text)
    c.get(path)
    return c, vid


def test_me_shows_what_is_stored_and_where_it_came_from(pz: PersonalizeMiddleware) -> None:
    c, _ = shopper(pz, "/shoes/red-sneaker")
    r = c.get("/_personalize/me")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "private, no-store"
    assert "Vary" in r.headers or "vary" in r.headers
    html = r.text
    assert "1 visit and 2 page views" in html
    assert "organic search" in html and "google" in html and "/shoes/red-sneaker" in html
    assert "shoes: 2" in html
    assert "IP address" in html and "never stored" in html
    assert "Windows" in html  # the device record
    assert "Big screen deals" not in html  # variant content is not shown, only its name and why
    # Groups by the editors' descriptions, with the reasons; parts of the page in plain words.
    assert "Big screens" in html and "device is desktop" in html
    assert ">desktop_users<" not in html and "Not me: desktop_users" not in html
    assert '<td data-label="part of the page">Top banner</td>' in html
    assert '<td data-label="shows you">Welcome</td>' in html
    assert "Our standard choice here: nothing about your visit changed it." in html
    for internal in ("no rule matched", "p~", "drew", ".yaml", ">welcome<", ">plain<"):
        assert internal not in html, internal  # engine internals stay in the editor UI
    assert "testclient" not in html  # the client address appears nowhere
    # A way back to the site, in a header.
    assert '<header class="top">' in html and '<a href="/">← Back to the site</a>' in html


def test_me_does_not_count_as_a_view_nor_teach_the_model(pz: PersonalizeMiddleware) -> None:
    assert pz.personalizer.decisions is not None
    c, vid = shopper(pz, "/")
    before = pz.personalizer.decisions.policy.store.snapshot()  # type: ignore[attr-defined]
    stored = asyncio.run(pz.personalizer.profiles.store.get(f"v:{vid}"))
    assert stored is not None
    c.get("/_personalize/me")
    c.get("/_personalize/me/export")
    assert pz.personalizer.decisions.policy.store.snapshot() == before  # type: ignore[attr-defined]
    after = asyncio.run(pz.personalizer.profiles.store.get(f"v:{vid}"))
    assert after is not None and after.page_views == stored.page_views


def test_two_visitors_each_see_only_their_own_data(pz: PersonalizeMiddleware) -> None:
    ann, ann_id = shopper(pz, "/shoes/red")
    bob, bob_id = shopper(pz, "/bags/tote", **PHONE)
    ann_page = ann.get("/_personalize/me").text
    bob_page = bob.get("/_personalize/me").text
    # Every page lists the site's categories (to state interests); counts are one's own.
    assert "shoes: 2" in ann_page and "bags:" not in ann_page
    assert "bags: 2" in bob_page and "shoes:" not in bob_page
    assert ann_id not in bob_page and bob_id not in ann_page


@pytest.mark.parametrize(
    "query",
    [
        "?visitor_id={other}",
        "?id={other}",
        "?user=zed-customer-17",
        "?user_id=zed-customer-17",
        "?key=v:{other}",
        "?profile=v:{other}",
        "?visitor_id={other}&user_id=zed-customer-17&key=u:zed-customer-17",
    ],
)
def test_parameters_never_select_another_profile(pz: PersonalizeMiddleware, query: str) -> None:
    ann, ann_id = shopper(pz, "/shoes/red")
    ann.get("/login?user=zed-customer-17")
    bob, bob_id = shopper(pz, "/bags/tote")
    q = query.format(other=ann_id)
    page = bob.get("/_personalize/me" + q).text
    assert "bags: 2" in page and "shoes:" not in page and "zed-customer-17" not in page
    export = bob.get("/_personalize/me/export" + q).json()
    assert export["stored_profile"]["key"] == f"v:{bob_id}"
    assert export["user_id"] is None
    # Nothing on the page changes anyone's data either: the form posts ignore them too.
    token = csrf_token(page)
    bob.post("/_personalize/me/erase" + q, data={"csrf_token": token, "confirm": "yes"})
    assert "u:zed-customer-17" in keys(pz)
    assert f"v:{bob_id}" not in keys(pz)


def test_export_is_a_json_download_of_everything(pz: PersonalizeMiddleware) -> None:
    c, vid = shopper(pz, "/shoes/red")
    r = c.get("/_personalize/me/export")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["cache-control"] == "private, no-store"
    data = json.loads(r.text)
    assert data["remembered"] is True and data["visitor_id"] == vid
    assert data["stored_profile"]["key"] == f"v:{vid}"
    assert data["stored_profile"]["affinities"] == {"shoes": 2.0}
    assert data["this_request"]["device"]["type"] == "desktop"
    assert {s["segment"] for s in data["segments"]} == {"desktop_users"}
    assert data["slots"]["hero"]["why"]["rule"] == "no rule matched: the default variants"
    assert "testclient" not in r.text


def test_opt_out_needs_csrf_then_erases_and_stays_out(pz: PersonalizeMiddleware) -> None:
    c, vid = shopper(pz, "/shoes/red")
    assert f"v:{vid}" in keys(pz)
    page = c.get("/_personalize/me").text
    for bad in (
        {"other": "field"},
        {"csrf_token": "forged"},
        {"csrf_token": csrf_token(page) + "x"},
    ):
        assert c.post("/_personalize/me/opt-out", data=bad).status_code == 403
    assert f"v:{vid}" in keys(pz)
    evil = c.post(
        "/_personalize/me/opt-out",
        data={"csrf_token": csrf_token(page)},
        headers={"origin": "https://evil.example"},
    )
    assert evil.status_code == 403 and f"v:{vid}" in keys(pz)
    r = c.post(
        "/_personalize/me/opt-out", data={"csrf_token": csrf_token(page)}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"] == "/_personalize/me?done=opted-out"
    assert keys(pz) == []
    c.get("/shoes/blue")
    assert keys(pz) == []  # context-only for good
    after = c.get(r.headers["location"]).text
    assert "Nothing is stored about you" in after and "you opted out" in after
    assert "nothing about you is stored any more" in after


def test_opt_in_after_opting_out(pz: PersonalizeMiddleware) -> None:
    c, _ = shopper(pz, "/")
    token = csrf_token(c.get("/_personalize/me").text)
    c.post("/_personalize/me/opt-out", data={"csrf_token": token})
    page = c.get("/_personalize/me").text
    token = csrf_token(page)
    # Without an id there is nothing secret to bind the token to: the origin must be said.
    assert c.post("/_personalize/me/opt-in", data={"csrf_token": token}).status_code == 403
    r = c.post(
        "/_personalize/me/opt-in",
        data={"csrf_token": token},
        headers=ORIGIN,
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].endswith("done=opted-in")
    vid = visitor_id(c.get("/bags/x").text)
    assert keys(pz) == [f"v:{vid}"]


def test_erase_needs_confirmation_and_csrf(pz: PersonalizeMiddleware) -> None:
    c, vid = shopper(pz, "/shoes/red")
    c.get("/login?user=ann")
    assert keys(pz) == ["u:ann", f"v:{vid}"]  # the tombstone of the merged anonymous id
    token = csrf_token(c.get("/_personalize/me").text)
    other, _ = shopper(pz, "/")
    other_token = csrf_token(other.get("/_personalize/me").text)
    assert (
        c.post(
            "/_personalize/me/erase", data={"csrf_token": other_token, "confirm": "yes"}
        ).status_code
        == 403
    )
    unconfirmed = c.post("/_personalize/me/erase", data={"csrf_token": token})
    assert unconfirmed.status_code == 400 and "confirm" in unconfirmed.text
    assert "u:ann" in keys(pz)
    r = c.post(
        "/_personalize/me/erase",
        data={"csrf_token": token, "confirm": "yes"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "pz_visitor=" in r.headers["set-cookie"]
    assert "u:ann" not in keys(pz) and f"v:{vid}" not in keys(pz)
    page = c.get(r.headers["location"]).text
    assert "everything stored about you has been erased" in page
    assert "Nothing yet" in page and "u:ann" not in page


def test_context_only_visitor_sees_that_nothing_is_stored(pz: PersonalizeMiddleware) -> None:
    c = client(pz, {"sec-gpc": "1"})
    c.get("/shoes/red")
    r = c.get("/_personalize/me")
    assert r.status_code == 200
    assert "Nothing is stored about you" in r.text and "Global Privacy Control" in r.text
    assert "/me/opt-in" not in r.text and "/me/erase" not in r.text
    assert "Big screens" in r.text  # still personalized from the request alone
    assert keys(pz) == []
    export = c.get("/_personalize/me/export").json()
    assert export["remembered"] is False and export["stored_profile"] is None


def test_consent_required_visitor_can_opt_in(tmp_path: Path) -> None:
    pz = make(tmp_path, consent="required")
    c = client(pz)
    c.get("/")
    page = c.get("/_personalize/me").text
    assert "you have not agreed to be remembered" in page
    r = c.post(
        "/_personalize/me/opt-in",
        data={"csrf_token": csrf_token(page)},
        headers={"referer": "http://testserver/_personalize/me"},
    )
    assert r.status_code == 200
    c.get("/")
    assert len(keys(pz)) == 1


def test_phone_visitor_reasons(pz: PersonalizeMiddleware) -> None:
    c, _ = shopper(pz, "/", **PHONE)
    html = c.get("/_personalize/me").text
    assert "Phones" in html and "device is mobile" in html  # the group, and why
    assert '<td data-label="shows you">Phone</td>' in html
    assert "Shown because you are on a phone." in html
    assert "home.yaml" not in html  # no server paths for visitors
    exported = c.get("/_personalize/me/export")
    assert "home.yaml" not in exported.text
    hero = exported.json()["slots"]["hero"]
    assert hero["in_words"] == ["Shown because you are on a phone."]
    assert hero["why"]["rule"] == "the rule for segment mobile"  # and the engine's record
    assert "this visit\n  began when you found us through Google search." in html


def test_me_for_a_first_time_visitor(pz: PersonalizeMiddleware) -> None:
    r = client(pz).get("/_personalize/me")
    assert r.status_code == 200 and "Nothing yet" in r.text


def test_wrong_methods(pz: PersonalizeMiddleware) -> None:
    c = client(pz)
    assert c.get("/_personalize/me/erase").status_code == 405
    assert c.post("/_personalize/me", data={}).status_code == 405


def test_me_shows_the_usual_visits_and_how_unusual_this_one_is(tmp_path: Path) -> None:
    import time

    now = [time.time()]  # ahead of real time only: cookies are signed with the real time
    pz = make(tmp_path, clock=lambda: now[0])
    c = client(pz)
    for _ in range(4):  # four visits from this desktop browser, a day apart (same time of day)
        c.get("/")
        now[0] += 24 * 3600
    first = c.get("/_personalize/me").text
    # Three past visits (the fourth is this one), older ones weighing a little less.
    assert "Your usual visits" in first and "<li>Device: mostly desktop</li>" in first
    assert "This visit is like your usual ones." in first and "first visit" not in first
    assert "2.9" not in first and "%" not in first  # the numbers are for the editor UI
    # The same person, now on a phone (the browser's cookie, another user agent).
    phone = c.get("/_personalize/me", headers=PHONE).text
    assert "first visit from a mobile" in phone and "usually desktop" in phone
    norms = json.loads(c.get("/_personalize/me/export").text)["stored_profile"]["norms"]
    assert norms["device"] == {"desktop": 2.9109} and norms["channel"] == {"direct": 2.9109}


def test_not_me_forgets_the_usual_visits_and_stops_counting_them(tmp_path: Path) -> None:
    import time

    now = [time.time()]  # ahead of real time only, and events may not be dated after tomorrow
    pz = make(tmp_path, clock=lambda: now[0])
    c = client(pz)
    for _ in range(2):  # two visits an hour apart: the first is counted
        c.get("/")
        now[0] += 3600
    page = c.get("/_personalize/me").text
    assert "<li>Device: mostly desktop</li>" in page and 'value="norms"' in page
    said = c.post("/_personalize/me/not-me", data={"csrf_token": csrf_token(page), "name": "norms"})
    assert said.status_code == 200 and "Noted: the site will not use that" in said.text
    for _ in range(3):
        now[0] += 3600
        c.get("/")
    after = c.get("/_personalize/me").text
    assert "nothing is counted" in after and 'id="unusual"' not in after
    assert "Device: mostly" not in after
    assert "do not compare my visits with my usual ones" in after
    export = json.loads(c.get("/_personalize/me/export").text)["stored_profile"]
    assert export["norms"] == {} and export["stated"]["norms"]["value"] == "not_me"
