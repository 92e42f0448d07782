"""Per-visitor norms: the visitor's usual context in the profile, and how unusual a visit is for
this visitor (not for the population)."""

from __future__ import annotations

from personalize.profiles.merge import merge_profiles
from personalize.profiles.norms import MAX_VALUES, unusualness
from personalize.profiles.pageviews import Hit, apply_hit
from personalize.profiles.profile import Profile

DAY = 86_400.0


def _visit(profile: Profile, day: float, **context: object) -> None:
    apply_hit(profile, Hit(ts=day * DAY, path="/", **context))  # type: ignore[arg-type]
    apply_hit(profile, Hit(ts=day * DAY + 60, path="/p", channel="internal"))


def test_a_regular_visitor_on_her_phone_in_the_evening_is_unusual_her_routine_is_not() -> None:
    usual = {"device_type": "desktop", "hour": 9, "channel": "direct", "country": "GB"}
    ann = Profile(key="v:ann")
    for day in range(6):
        _visit(ann, day, **usual)
    _visit(ann, 7, **usual)
    score, reasons = unusualness(ann) or (None, ())
    assert score is not None and score < 0.2 and reasons == ()
    _visit(ann, 8, device_type="mobile", hour=20, channel="organic_social", country="GB")
    score, reasons = unusualness(ann) or (None, ())
    assert score == 1.0
    assert reasons == (
        "first visit from a mobile, via organic social, in the evening; usually desktop, via "
        "direct, in the morning",
    )


def test_a_routine_rare_for_everyone_is_the_usual_for_its_visitor() -> None:
    owl = Profile(key="v:owl")
    for day in range(5):
        _visit(owl, day, device_type="tablet", hour=3, channel="email", country="IS")
    score, _ = unusualness(owl) or (None, ())
    assert score is not None and score < 0.25  # 4 past sessions: the smoothing leaves 0.21


def test_no_norm_without_history_and_norms_stay_compact() -> None:
    new = Profile(key="v:new")
    _visit(new, 0, device_type="mobile", hour=12)
    assert unusualness(new) is None  # a first visit is nobody's exception
    globetrotter = Profile(key="v:g")
    for day in range(40):
        _visit(globetrotter, day, country=f"C{day}", device_type="desktop", hour=10)
    assert len(globetrotter.norms["country"]) == MAX_VALUES
    assert sum(globetrotter.norms["device"].values()) < 40  # older sessions weigh less
    assert Profile.from_json(globetrotter.to_json()).norms == globetrotter.norms
    assert Profile.from_dict(globetrotter.to_dict()).norms == globetrotter.norms


def test_login_merges_norms_and_counts_the_anonymous_visit() -> None:
    known = Profile(key="u:ann")
    for day in range(4):
        _visit(known, day, device_type="desktop", hour=9)
    anon = Profile(key="v:x")
    _visit(anon, 5, device_type="mobile", hour=20)
    merge_profiles(known, anon)
    # The known profile's last session is counted now; the anonymous one is the current visit.
    assert known.norms["device"] == {"desktop": 3.8236}  # 4 sessions, older ones weigh less
    assert known.current_session is not None and known.current_session.device_type == "mobile"
    score, reasons = unusualness(known) or (None, ())
    assert score == 1.0 and reasons[0].startswith("first visit from a mobile")
