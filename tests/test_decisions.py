"""The decision engine: mapping order, defaults, every suppression, pins, no flicker, errors."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from markupsafe import Markup

from personalize.content.decisions import Decision, DecisionEngine
from personalize.content.library import ContentLibrary
from personalize.context import Clock, Device, Source, VisitorContext
from personalize.profiles.pageviews import Hit
from personalize.profiles.profile import Profile
from personalize.rules.segments import SegmentLibrary
from personalize.visitor import Visitor

NOW = 1_800_000_000.0
DAY = 86_400.0
SEGMENTS = SegmentLibrary.from_data(
    [
        {"name": "uk_visitors", "description": "UK",
         "rule": {"attribute": "country", "operator": "eq", "value": "GB"}},
        {"name": "mobile", "description": "Phones",
         "rule": {"attribute": "device_type", "operator": "eq", "value": "mobile"}},
    ]
)  # fmt: skip
HERO: dict[str, Any] = {
    "variants": [
        {"id": "welcome", "html": "<h1>Welcome</h1>"},
        {"id": "uk", "html": "<h1>Hello UK</h1>"},
        {"id": "phone", "html": "<h1>On the go</h1>"},
        {"id": "evening", "html": "<h1>Evening</h1>", "schedule": {"hours": [18, 23]}},
    ],
    "rules": [
        {"segment": "mobile", "when": {"attribute": "hour", "operator": "gte", "value": 18},
         "variants": ["evening"]},
        {"segment": "uk_visitors", "variants": ["uk"]},
        {"segment": "mobile", "variants": ["phone"]},
    ],
    "default": ["welcome"],
}  # fmt: skip
OFFER: dict[str, Any] = {
    "variants": [
        {"id": "plain", "html": "Shop", "value": 1},
        {"id": "boots", "html": "Boots!", "value": 50, "tags": {"products": ["boots-42"]}},
        {"id": "sale", "html": "Sale!", "value": 40, "tags": {"campaign": True}},
    ],
    "default": ["plain", "boots", "sale"],
}


def visitor(
    vid: str | None = "v1",
    *,
    device: str = "desktop",
    country: str | None = None,
    hour: int = 12,
    facts: dict[str, Any] | None = None,
    started: float = NOW,
    ts: float = NOW,
) -> Visitor:
    from personalize.context import Geo

    geo = Geo(country=country) if country else None
    context = VisitorContext(
        geo=geo,
        device=Device(type=device),
        source=Source(),
        clock=Clock(hour=hour),  # type: ignore[arg-type]
    )
    profile = Profile(key=f"v:{vid}", facts=facts or {})
    if started != ts:
        from personalize.profiles.pageviews import apply_hit

        apply_hit(profile, Hit(ts=started, path="/"))
    hit = Hit(ts=ts, path="/", device_type=device)
    return Visitor(
        visitor_id=vid, user_id=None, context=context, is_new=False, stored=profile, hit=hit
    )


def engine(slots: dict[str, Any], **options: Any) -> DecisionEngine:
    library = ContentLibrary.from_data(slots, segments=SEGMENTS)
    return DecisionEngine(
        library, segments=SEGMENTS, rng=random.Random(7), clock=lambda: NOW, **options
    )


def test_first_matching_rule_wins_and_default_otherwise() -> None:
    e = engine({"hero": HERO})
    assert e.decide_sync(visitor(), "hero").variant == "welcome"
    assert e.decide_sync(visitor("v2", country="GB"), "hero").variant == "uk"
    d = e.decide_sync(visitor("v3", country="GB", device="mobile"), "hero")
    assert d.variant == "uk"  # uk_visitors comes before the plain mobile rule
    assert (
        d.explanation.rule.startswith("rule at <data>:")
        and "segment uk_visitors" in d.explanation.rule
    )
    assert d.explanation.reasons == ("country is GB",)
    d = e.decide_sync(visitor("v4", country="GB", device="mobile", hour=20), "hero")
    assert d.variant == "evening"  # segment and condition, first in order
    assert "local hour 20" in " ".join(d.explanation.reasons)
    assert e.decide_sync(visitor("v5", device="mobile"), "hero").variant == "phone"


def test_decision_html_carries_the_id_for_the_beacon() -> None:
    d = engine({"hero": HERO}).decide_sync(visitor(), "hero")
    assert d.decision_id.startswith("hero.welcome.desktop/direct.")
    assert str(d.html) == (
        f'<div data-pz-slot="hero" data-pz-decision="{d.decision_id}"><h1>Welcome</h1></div>'
    )
    assert d.__html__() == str(d.html)
    assert d.to_dict()["why"]["rule"] == "no rule matched: the default variants"


def test_schedule_suppresses_outside_the_window() -> None:
    e = engine({"hero": {**HERO, "rules": [{"segment": "mobile", "variants": ["evening"]}]}})
    d = e.decide_sync(visitor(device="mobile", hour=9), "hero")
    assert d.variant is None and str(d.html) == ""
    assert d.explanation.suppressed[0][0] == "evening"
    assert (
        "outside its schedule (18:00-23:59; local time Mon 09:00 UTC)"
        in d.explanation.suppressed[0][1]
    )
    assert d.explanation.note == "every allowed variant was suppressed"


def test_recent_purchase_suppresses_the_product_per_slot_or_globally() -> None:
    bought = {"purchased": {"boots-42": NOW - 3 * DAY}}
    e = engine({"offer": OFFER})
    d = e.decide_sync(visitor(facts=bought), "offer")
    assert (
        "boots",
        "promotes boots-42, bought 3 days ago (within 30 days)",
    ) in d.explanation.suppressed
    assert d.variant == "sale"
    e = engine({"offer": {**OFFER, "suppress_purchased_days": 2}})
    assert e.decide_sync(visitor(facts=bought), "offer").explanation.suppressed == ()
    e = engine({"offer": OFFER}, suppress_purchased_days=1)
    d = e.decide_sync(visitor(facts=bought), "offer")  # boots may show (which wins is a draw)
    assert d.explanation.suppressed == () and "offer/boots" in [s.arm for s in d.explanation.scores]


def test_open_ticket_excludes_campaigns() -> None:
    e = engine({"offer": {**OFFER, "default": ["plain", "sale"]}})
    d = e.decide_sync(visitor(facts={"open_tickets": 1}), "offer")
    assert d.variant == "plain"
    assert d.explanation.suppressed == (
        ("sale", "a campaign, and the visitor has an open support ticket"),
    )
    assert e.decide_sync(visitor("v2", facts={"open_tickets": 0}), "offer").variant == "sale"


def test_frequency_cap_rests_a_variant_seen_without_a_click() -> None:
    now = [NOW]
    slot = {**OFFER, "default": ["boots", "plain"], "cap": {"views": 2, "rest_hours": 24}}
    e = DecisionEngine(ContentLibrary.from_data({"offer": slot}), clock=lambda: now[0])
    first = e.decide_sync(visitor(ts=NOW), "offer")
    assert first.variant == "boots"
    again = e.decide_sync(visitor(ts=NOW), "offer")  # the same page asks twice: one view
    assert again == first
    second = e.decide_sync(visitor(ts=NOW + 60, started=NOW), "offer")
    assert second.variant == "boots"  # second view: now it rests
    third = e.decide_sync(visitor(ts=NOW + 120, started=NOW), "offer")
    assert third.variant == "plain"
    assert third.explanation.suppressed[0][0] == "boots"
    assert "frequency cap" in third.explanation.suppressed[0][1]
    now[0] = NOW + 25 * 3600  # rested
    assert e.decide_sync(visitor(ts=now[0], started=NOW), "offer").variant == "boots"


def test_a_click_resets_the_frequency_cap() -> None:
    slot = {**OFFER, "default": ["boots", "plain"], "cap": {"views": 2, "rest_hours": 24}}
    e = DecisionEngine(ContentLibrary.from_data({"offer": slot}), clock=lambda: NOW)
    d = e.decide_sync(visitor(ts=NOW), "offer")
    assert (
        e.record(d.decision_id, "click", visitor_key="v:v1")
        == "rewarded offer/boots in desktop/direct"
    )
    assert e.record(d.decision_id, "click", visitor_key="v:v1") == "already counted"
    e.decide_sync(visitor(ts=NOW + 60, started=NOW), "offer")
    assert e.decide_sync(visitor(ts=NOW + 120, started=NOW), "offer").variant == "boots"


def test_pins_win_when_allowed_and_yield_to_suppression() -> None:
    slot = {**OFFER, "pin": "plain"}
    e = engine({"offer": slot})
    d = e.decide_sync(visitor(), "offer")
    assert (d.variant, d.explanation.pinned) == ("plain", "plain")
    assert "pinned by the editors: plain" in d.explanation.lines()
    rule = {"segment": "uk_visitors", "variants": ["plain", "sale"], "pin": "sale"}
    rule_pin = {**OFFER, "pin": "plain", "rules": [rule]}
    e = engine({"offer": rule_pin})
    assert e.decide_sync(visitor(country="GB"), "offer").variant == "sale"
    d = e.decide_sync(visitor("v2", country="GB", facts={"open_tickets": 2}), "offer")
    assert d.variant == "plain" and d.explanation.note == "pin sale was suppressed"


def test_same_visitor_same_session_same_decision() -> None:
    e = engine({"offer": OFFER})
    first = e.decide_sync(visitor(), "offer")
    for minutes in range(1, 20):
        later = visitor(ts=NOW + 60 * minutes, started=NOW)
        assert e.decide_sync(later, "offer") is first
    other = engine({"offer": OFFER}).decide_sync(visitor(), "offer")
    assert other.variant == first.variant  # a fresh worker with the same seed agrees


def test_expected_values_are_compared_in_the_explanation() -> None:
    d = engine({"offer": OFFER}).decide_sync(visitor(), "offer")
    scores = d.to_dict()["why"]["scores"]
    assert {s["variant"] for s in scores} == {"plain", "boots", "sale"}
    assert scores == sorted(scores, key=lambda s: -s["score"])
    assert any("x value 50" in line for line in d.explanation.lines())


def test_bots_get_the_best_mean_without_an_id() -> None:
    d = engine({"offer": OFFER}).decide_sync(visitor(None), "offer")
    assert d.variant == "boots" and d.decision_id == ""  # highest value, nothing learnt yet


def test_unknown_slot_and_render_errors_give_empty_decisions(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "slots:\n  hero:\n    variants: [{id: a, template: a.html}]\n    default: [a]\n"
    )
    (tmp_path / "a.html").write_text("{{ 1 / 0 }}")
    e = DecisionEngine(tmp_path)
    d = e.decide_sync(visitor(), "nope")
    assert d.variant is None and "unknown slot 'nope' (slots: hero)" in d.explanation.note
    d = e.decide_sync(visitor(), "hero")
    assert d.variant is None and "ZeroDivisionError" in d.explanation.note


def test_templates_see_the_visitor(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "slots:\n  hero:\n    variants: [{id: a, template: a.html}]\n    default: [a]\n"
    )
    (tmp_path / "a.html").write_text(
        "{{ attributes.country }} {{ profile.facts.purchases }} {{ segments|join(',') }}"
        "{{ profile.traits.name }}"
    )
    e = DecisionEngine(tmp_path, segments=SEGMENTS)
    d = e.decide_sync(visitor(country="GB", facts={"purchases": 2}), "hero")
    assert str(d.content) == "GB 2 uk_visitors"


def test_rewards_need_a_signed_id() -> None:
    import pytest

    e = engine({"offer": OFFER})
    d = e.decide_sync(visitor(), "offer")
    forged = d.decision_id.rsplit(".", 1)[0] + ".0000000000000000"
    with pytest.raises(ValueError, match="not signed"):
        e.record(forged, "click")
    with pytest.raises(ValueError, match="not a decision id"):
        e.record("x", "click")
    assert e.record(d.decision_id, "conversion", value=12.0).startswith("counted conversion")


def test_a_decisions_html_escapes_slot_and_id_and_keeps_the_contents_markup() -> None:
    decided = Decision('he"ro', "v1", Markup("<h1>Hi</h1>"), "id<1>&")
    html = decided.html
    assert isinstance(html, Markup)
    assert (
        html
        == '<div data-pz-slot="he&#34;ro" data-pz-decision="id&lt;1&gt;&amp;"><h1>Hi</h1></div>'
    )
    unsafe = Decision("hero", "v1", "<script>", "id")  # type: ignore[arg-type]  # plain text
    assert "&lt;script&gt;" in unsafe.html
    assert Decision("hero", None, Markup("<b>x</b>"), "").html == ""


def test_a_slot_is_matched_once_for_visitors_alike_and_again_for_the_rest() -> None:
    """Matches remembers each slot's rule by the values its mapping reads (hour, country,
    device type, the segments a visitor said are not them): what it answers is what the rules
    say, value by value and type by type; a slot that reads an age is matched every time."""
    from personalize.content.mapping import Matches, Members, first_rule
    from personalize.rules.stated import NOT_ME

    slot = ContentLibrary.from_data({"hero": HERO}, segments=SEGMENTS).slots["hero"]
    matches = Matches(SEGMENTS, SEGMENTS.installed, 1)
    cases = [
        {"device_type": "mobile", "hour": 20, "country": "GB"},
        {"device_type": "mobile", "hour": 20, "country": "GB", "visits": 9},  # (not read)
        {"device_type": "mobile", "hour": 9, "country": "GB"},
        {"device_type": "mobile", "hour": 9.0, "country": "FR"},
        {"device_type": "mobile", "hour": True, "country": "FR"},  # True is no hour
        {"device_type": "mobile", "hour": 20, NOT_ME: frozenset({"mobile"})},
        {"device_type": "desktop", "hour": [20]},  # not a key: matched, not remembered
        {},
    ]
    for _ in range(2):
        for attrs in cases:
            expected = first_rule(slot, attrs, Members(None, SEGMENTS, attrs))
            assert matches.rule(slot, attrs, Members(None, SEGMENTS, attrs)) is expected
    assert len(matches._found) == len(cases) - 2  # the unread attribute, the list
    aged = ContentLibrary.from_data({"hero": {**HERO, "rules": [
        {"when": {"attribute": "last_purchase_at", "operator": "within_days", "value": 7},
         "variants": ["uk"]}]}}).slots["hero"]  # fmt: skip
    bought = {"last_purchase_at": NOW - 3 * DAY}
    matches = Matches(SEGMENTS, SEGMENTS.installed, 2)  # (new content: a new version)
    for now, variant in ((NOW, ("uk",)), (NOW + 30 * DAY, ("welcome",))):
        attrs = {**bought, "now": now}
        rule = matches.rule(aged, attrs, Members(None, SEGMENTS, attrs))
        assert (rule.variants if rule is not None else aged.default) == variant
