"""The decision engine respects what visitors said about offers: never, sometimes (one a day,
kept for the visit that shows it), often; and offers not chosen by browsing history."""

from __future__ import annotations

from typing import Any

import pytest

from personalize.content.decisions import DecisionEngine
from personalize.content.library import ContentLibrary
from personalize.context import Clock, Device, Source, VisitorContext
from personalize.profiles.events import Event, apply_event
from personalize.profiles.pageviews import Hit, apply_hit
from personalize.profiles.preferences import check_preferences
from personalize.profiles.profile import Profile
from personalize.rules.segments import SegmentLibrary
from personalize.visitor import Visitor

NOW = 1_800_000_000.0
HOUR = 3600.0
SEGMENTS = SegmentLibrary.from_data(
    [
        {"name": "shoe_lovers", "description": "Shoes",
         "rule": {"attribute": "affinity.shoes", "operator": "gte", "value": 3}},
        {"name": "phones", "description": "Phones",
         "rule": {"attribute": "device_type", "operator": "eq", "value": "mobile"}},
    ]
)  # fmt: skip
SLOTS: dict[str, Any] = {
    "hero": {
        "variants": [
            {"id": "welcome", "html": "Welcome", "value": 1},
            {"id": "sale", "html": "Sale!", "value": 1000, "tags": {"campaign": True}},
        ],
        "default": ["welcome", "sale"],
    },
    "banner": {
        "variants": [
            {"id": "returns", "html": "Free returns", "value": 1},
            {"id": "code", "html": "10% off", "value": 1000, "tags": {"campaign": True}},
        ],
        "default": ["returns", "code"],
    },
    "shoes": {
        "variants": [
            {"id": "plain", "html": "Shop", "value": 1},
            {"id": "boot_deal", "html": "Boots -20%", "value": 1000, "tags": {"campaign": True}},
            {"id": "boot_news", "html": "New boots", "value": 500},
            {"id": "phone_deal", "html": "App deal", "value": 900, "tags": {"campaign": True}},
        ],
        "rules": [
            {"segment": "shoe_lovers", "variants": ["boot_deal", "boot_news"]},
            {"segment": "phones", "variants": ["phone_deal", "plain"]},
        ],
        "default": ["plain"],
    },
}


def engine(now: list[float]) -> DecisionEngine:
    library = ContentLibrary.from_data(SLOTS, segments=SEGMENTS)
    return DecisionEngine(library, segments=SEGMENTS, clock=lambda: now[0])


def visitor(
    said: dict[str, Any], *, ts: float = NOW, started: float = NOW, shoes: int = 0,
    device: str = "desktop", vid: str = "v1",
) -> Visitor:  # fmt: skip
    profile = Profile(key=f"v:{vid}")
    apply_hit(profile, Hit(ts=started, path="/"))
    for i in range(shoes):
        apply_hit(profile, Hit(ts=started + i, path="/shoes/x", category="shoes"))
    if said:
        statements = check_preferences({**said, "origin": "me"})
        apply_event(profile, Event("preference", "preference", started - 10, statements))
    context = VisitorContext(device=Device(type=device), source=Source(), clock=Clock(hour=12))  # type: ignore[arg-type]
    return Visitor(
        visitor_id=vid,
        user_id=None,
        context=context,
        is_new=False,
        stored=profile,
        hit=Hit(ts=ts, path="/", device_type=device),
    )


@pytest.mark.parametrize("said", [{}, {"promotions": "often"}])
def test_often_or_nothing_said_is_todays_behaviour(said: dict[str, Any]) -> None:
    e = engine([NOW])
    v = visitor(said)
    assert (e.decide_sync(v, "hero").variant, e.decide_sync(v, "banner").variant) == (
        "sale",
        "code",
    )


def test_never_removes_every_campaign_and_says_why() -> None:
    e = engine([NOW])
    hero = e.decide_sync(visitor({"promotions": "never"}), "hero")
    assert hero.variant == "welcome"
    assert hero.explanation.suppressed == (("sale", "you asked for no offers"),)
    assert "suppressed sale: you asked for no offers" in hero.explanation.lines()
    assert e.decide_sync(visitor({"promotions": "never"}), "banner").variant == "returns"


def test_sometimes_is_one_offer_a_day_kept_for_the_visit_that_shows_it() -> None:
    now = [NOW]
    e = engine(now)
    said = {"promotions": "sometimes"}
    page1 = visitor(said, ts=NOW)
    assert e.decide_sync(page1, "hero").variant == "sale"  # the day's offer
    banner = e.decide_sync(page1, "banner")  # a second offer on the same page: no
    assert banner.variant == "returns"
    (why,) = [w for v, w in banner.explanation.suppressed if v == "code"]
    assert why.startswith("you asked for fewer offers: one a day at most (the next after ")
    now[0] = NOW + 600  # the next page of the same visit keeps its offer: no flicker
    page2 = visitor(said, ts=now[0], started=NOW)
    assert e.decide_sync(page2, "hero").variant == "sale"
    assert e.decide_sync(page2, "banner").variant == "returns"
    now[0] = NOW + 5 * HOUR  # a new visit the same day: no offer anywhere
    later = visitor(said, ts=now[0], started=now[0])
    assert e.decide_sync(later, "hero").variant == "welcome"
    assert e.decide_sync(later, "banner").variant == "returns"
    now[0] = NOW + 30 * HOUR  # a day after the last one shown: one again
    tomorrow = visitor(said, ts=now[0], started=now[0])
    assert e.decide_sync(tomorrow, "hero").variant == "sale"
    assert e.decide_sync(tomorrow, "banner").variant == "returns"
    # Another visitor who said nothing is not affected by this one's cap.
    assert e.decide_sync(visitor({}, ts=now[0], vid="v2"), "banner").variant == "code"


def test_without_history_no_offer_is_chosen_by_browsing() -> None:
    e = engine([NOW])
    lover = e.decide_sync(visitor({}, shoes=4), "shoes")  # the offer may show (a draw picks)
    assert lover.explanation.suppressed == ()
    assert "shoes/boot_deal" in [score.arm for score in lover.explanation.scores]
    said = e.decide_sync(visitor({"history": False}, shoes=4, vid="v2"), "shoes")
    # The shoe rule still picks the variants; only its offer is left out.
    assert said.variant == "boot_news"
    assert said.explanation.suppressed == (
        ("boot_deal", "you asked us not to use your browsing history for offers"),
    )
    # An offer chosen by the context of this request (a phone) is not browsing history.
    phone = e.decide_sync(visitor({"history": False}, device="mobile", vid="v3"), "shoes")
    assert phone.variant == "phone_deal"


def test_segments_said_not_to_be_me_are_not_used() -> None:
    e = engine([NOW])
    said = {"segment.shoe_lovers": "not_me"}
    v = visitor(said, shoes=4)
    assert "shoe_lovers" not in v.segment_names
    assert e.decide_sync(v, "shoes").variant == "plain"
    assert e.decide_sync(visitor(said, shoes=4, vid="v2"), "shoes").explanation.rule.startswith(
        "no rule matched"
    )


def test_a_visit_keeps_its_pick_until_what_the_visitor_said_changes_the_choice() -> None:
    slots = {"strip": {"variants": [
        {"id": "returns", "html": "Free returns", "value": 1000},
        {"id": "code", "html": "10% off", "value": 1, "tags": {"campaign": True}}],
        "default": ["returns", "code"]}}  # fmt: skip
    e = DecisionEngine(ContentLibrary.from_data(slots), clock=lambda: NOW)
    first = e.decide_sync(visitor({}), "strip")
    assert first.variant == "returns" and first.explanation.suppressed == ()
    assert e.decide_sync(visitor({}, ts=NOW + 60), "strip") is first  # the visit's pick
    said = e.decide_sync(visitor({"promotions": "never"}, ts=NOW + 120), "strip")
    assert said.variant == "returns"  # the same content, now with the visitor's reason
    assert said.explanation.suppressed == (("code", "you asked for no offers"),)
    assert e.decide_sync(visitor({"promotions": "never"}, ts=NOW + 180), "strip") is said
