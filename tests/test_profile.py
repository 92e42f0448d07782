from __future__ import annotations

import dataclasses
import json

import pytest

from personalize import CategoryMap, Hit, Profile
from personalize.profiles.pageviews import apply_hit, hit_view
from personalize.profiles.profile import MAX_SESSIONS


def test_first_hit_opens_a_session_with_its_entry_source() -> None:
    p = Profile(key="v:a")
    apply_hit(
        p,
        Hit(
            ts=100.0,
            path="/landing",
            channel="paid_search",
            source="google",
            medium="cpc",
            campaign="spring",
            term="boots",
            device_type="mobile",
        ),
    )
    s = p.current_session
    assert s is not None
    assert (p.visits, p.page_views, p.first_seen, p.last_seen) == (1, 1, 100.0, 100.0)
    assert (s.channel, s.source, s.medium, s.campaign, s.term) == (
        "paid_search",
        "google",
        "cpc",
        "spring",
        "boots",
    )
    assert (s.landing_page, s.device_type, s.page_views) == ("/landing", "mobile", 1)


@pytest.mark.parametrize(
    ("gap", "visits"),
    [(0, 1), (60, 1), (30 * 60, 1), (30 * 60 + 1, 2), (24 * 3600, 2)],
)
def test_thirty_minutes_of_inactivity_open_a_new_session(gap: int, visits: int) -> None:
    p = Profile(key="v:a")
    apply_hit(p, Hit(ts=0.0, path="/"))
    apply_hit(p, Hit(ts=float(gap), path="/next", channel="internal"))
    assert p.visits == visits
    assert p.page_views == 2


def test_inactivity_is_measured_from_the_last_hit_not_the_session_start() -> None:
    p = Profile(key="v:a")
    for minute in range(0, 120, 20):  # a page every 20 minutes for two hours
        apply_hit(p, Hit(ts=minute * 60.0, path="/"))
    assert p.visits == 1


def test_internal_hit_after_a_pause_counts_as_direct_and_mid_session_source_is_kept() -> None:
    p = Profile(key="v:a")
    apply_hit(p, Hit(ts=0.0, path="/a", channel="email", source="newsletter"))
    apply_hit(p, Hit(ts=10.0, path="/b", channel="organic_social", source="facebook"))
    assert p.visits == 1 and p.sessions[0].channel == "email"
    apply_hit(p, Hit(ts=5000.0, path="/c", channel="internal", source="example.com"))
    assert p.visits == 2
    assert (p.sessions[1].channel, p.sessions[1].source) == ("direct", None)


def test_affinities_and_bounded_session_history() -> None:
    p = Profile(key="v:a")
    for i in range(MAX_SESSIONS + 5):
        apply_hit(p, Hit(ts=i * 10_000.0, path=f"/p{i}", category="shoes" if i % 2 else "bags"))
    assert p.visits == MAX_SESSIONS + 5
    assert len(p.sessions) == MAX_SESSIONS
    assert p.sessions[-1].landing_page == f"/p{MAX_SESSIONS + 4}"
    assert p.affinities == {"bags": 13.0, "shoes": 12.0}
    assert p.top_affinities(1) == [("bags", 13.0)]


def test_out_of_order_hits_keep_first_and_last_seen_right() -> None:
    p = Profile(key="v:a")
    apply_hit(p, Hit(ts=100.0, path="/"))
    apply_hit(p, Hit(ts=50.0, path="/"))
    assert (p.first_seen, p.last_seen) == (50.0, 100.0)


def test_json_round_trip() -> None:
    p = Profile(key="v:a", traits={"plan": "gold"})
    apply_hit(p, Hit(ts=1.0, path="/x", category="c", channel="email"))
    again = Profile.from_dict(json.loads(json.dumps(p.to_dict())))
    assert again == p
    assert Hit.from_dict(Hit(ts=1.0, path="/").to_dict()) == Hit(ts=1.0, path="/")


@pytest.mark.parametrize(
    ("path", "category"),
    [
        ("/shoes", "shoes"),
        ("/shoes/", "shoes"),
        ("/shoes/red/42", "shoes"),
        ("/shoesx", None),
        ("/bags/tote", "bags"),
        ("/sale/shoes", "sale"),
        ("/", None),
        ("", None),
        ("/\udcff\n", None),
    ],
)
def test_category_map_first_match_wins(path: str, category: str | None) -> None:
    cats = CategoryMap(
        {
            "/sale/*": "sale",
            "/shoes": "shoes",
            "/shoes/*": "shoes",
            "/bags/*": "bags",
            "/*/shoes": "never",
        }
    )
    assert cats.category(path) == category
    assert CategoryMap().category(path) is None


def _history() -> Profile:
    """A profile with several sessions, devices, affinities and norms."""
    p = Profile(key="v:h1")
    ts = 1_700_000_000.0
    for day in range(12):
        for page in range(3):
            apply_hit(
                p,
                Hit(
                    ts=ts + day * 86_400 + page * 60,
                    path=f"/p{page}",
                    category=("shoes", "bags", None)[page],
                    device_id=f"d{day % 11}",  # more devices than are kept
                    device_type="mobile",
                    channel="organic_search" if page == 0 else "internal",
                    hour=day % 24,
                ),
            )
    return p


@pytest.mark.parametrize(
    "hit",
    [
        Hit(ts=1_700_000_000.0 + 11 * 86_400 + 600, path="/x", category="shoes", device_id="d0"),
        Hit(ts=1_700_000_000.0 + 11 * 86_400 + 600, path="/x", device_id="new-device"),
        Hit(ts=1_700_000_000.0 + 30 * 86_400, path="/x", category="hats", device_id="d3"),
        Hit(ts=1_700_000_000.0 + 30 * 86_400, path="/x"),  # a new session, no device
        Hit(ts=1_600_000_000.0, path="/old", category="bags", device_id="d1"),  # out of order
    ],
)
def test_hit_view_folds_like_apply_hit_and_never_changes_its_source(hit: Hit) -> None:
    source = _history()
    source.revoked = ["an-old-login-cookie"]
    expected = source.copy()
    apply_hit(expected, hit)
    before = source.to_json()
    view = hit_view(source, hit)
    assert view == expected
    folded = {"first_seen", "last_seen", "visits", "page_views", "affinities", "sessions"}
    for f in dataclasses.fields(Profile):  # every other field carried over, as it was
        if f.name not in folded | {"devices", "norms"}:
            assert getattr(view, f.name) == getattr(source, f.name), f.name
    assert source.to_json() == before  # nothing shared was changed
    # The next page view, folded into the view, leaves both earlier profiles alone too.
    later = hit_view(view, Hit(ts=hit.ts + 5, path="/y", category="shoes", device_id="d2"))
    assert source.to_json() == before and view == expected and later.page_views == 38


def test_new_profile_is_the_dataclass_default() -> None:
    """new_profile builds positionally: a field added or moved must not shift."""
    from personalize.profiles.profile import new_profile

    for user_id in (None, "ann"):
        made, default = new_profile("v:x", user_id), Profile(key="v:x", user_id=user_id)
        assert made == default and 0 <= made.cookie_epoch < 2**31
        assert made.sessions is not new_profile("v:x").sessions  # fresh containers


def test_made_records_equal_the_class_call() -> None:
    """make_profile, make_session and make_hit take every field in field order."""
    from personalize.profiles.pageviews import make_hit
    from personalize.profiles.profile import SessionRecord, make_profile, make_session

    profile = Profile(key="v:x", visits=2, affinities={"a": 1.0})
    values = [getattr(profile, f.name) for f in dataclasses.fields(Profile)]
    assert make_profile(*values) == profile and type(make_profile(*values)) is Profile
    session = SessionRecord(1.0, 2.0, 3, "email", id="i", hour=4)
    values = [getattr(session, f.name) for f in dataclasses.fields(SessionRecord)]
    assert make_session(*values) == session
    hit = Hit(1.0, "/x", "email", device_id="d", hour=3)
    made = make_hit(*[getattr(hit, f.name) for f in dataclasses.fields(Hit)])
    assert made == hit and hash(made) == hash(hit) and type(made) is Hit
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.path = "/y"  # type: ignore[misc]
