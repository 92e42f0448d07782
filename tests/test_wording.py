"""Plain words for visitors (personalize.content.wording): what made a rule apply, the labels
of the variants chosen among, the removals a visitor cares about; never ids or numbers."""

from __future__ import annotations

import random
from typing import Any

import pytest

from personalize.content.decisions import DecisionEngine
from personalize.content.library import ContentLibrary
from personalize.content.subject import Preview
from personalize.content.wording import arrival
from personalize.context.records import Device, Geo, Source, VisitorContext
from personalize.profiles.profile import Profile
from personalize.rules.attributes import build_attributes
from personalize.rules.segments import SegmentLibrary

SEGMENTS = SegmentLibrary.from_data(
    [
        {"name": "ad_phones", "description": "Arrived from a paid search ad on a phone",
         "rule": {"all": [
             {"attribute": "entry_channel", "operator": "eq", "value": "paid_search"},
             {"attribute": "device_type", "operator": "eq", "value": "mobile"}]}},
        {"name": "uk", "description": "UK", "rule": {"attribute": "country", "operator": "eq",
                                                     "value": "GB"}},
        {"name": "shoe_fans", "description": "Shoes",
         "rule": {"attribute": "affinity.shoes", "operator": "gte", "value": 2}},
        {"name": "buyers", "description": "Bought before, no open complaint",
         "rule": {"all": [{"attribute": "purchases", "operator": "gte", "value": 1},
                          {"none": [{"attribute": "open_tickets", "operator": "gt",
                                     "value": 0}]}]}},
        {"name": "learned", "description": "A learned group",
         "rule": {"attribute": "traits.plan", "operator": "eq", "value": "pro"}},
    ]
)  # fmt: skip
SLOTS = {
    "hero": {
        "description": "Big banner at the top",
        "variants": [
            {"id": "deal", "label": "The deal from your search", "html": "D"},
            {"id": "uk_free_delivery", "label": "Free delivery in the UK", "html": "U",
             "value": 2},
            {"id": "boots", "label": "Boot 7", "html": "B", "tags": {"products": ["boot-7"]}},
            {"id": "offer", "label": "10% off", "html": "O", "tags": {"campaign": True}},
            {"id": "pro", "html": "P"},
            {"id": "welcome", "html": "W"},
        ],
        "rules": [
            {"segment": "ad_phones", "variants": ["deal", "welcome"], "pin": "deal"},
            {"segment": "learned", "variants": ["pro"]},
            {"segment": "shoe_fans", "variants": ["boots", "welcome"]},
            {"segment": "buyers", "variants": ["offer", "welcome"]},
            {"segment": "uk", "variants": ["uk_free_delivery", "welcome"]},
        ],
        "default": ["welcome", "offer"],
    }
}  # fmt: skip
ENGINE = DecisionEngine(
    ContentLibrary.from_data(SLOTS, segments=SEGMENTS), segments=SEGMENTS, rng=random.Random(1)
)


def subject(
    *,
    country: str | None = None,
    device: Any = "desktop",
    channel: Any = "direct",
    source: str | None = None,
    facts: dict[str, Any] | None = None,
    affinities: dict[str, float] | None = None,
    traits: dict[str, Any] | None = None,
) -> Preview:
    context = VisitorContext(
        geo=Geo(country=country, country_name="United Kingdom") if country else None,
        device=Device(type=device),
        source=Source(channel=channel, source=source),
    )
    profile = Profile(key="v:x", facts=facts or {}, affinities=affinities or {},
                      traits=traits or {})  # fmt: skip
    attrs = build_attributes(context, profile, is_known=False, now=1_000_000.0)
    if channel != "direct":
        attrs["entry_channel"], attrs["entry_source"] = channel, source
    return Preview(attrs, profile, context)


def why(visitor: Preview) -> list[str]:
    decision = ENGINE.decide_sync(visitor, "hero")
    lines = ENGINE.plain_reasons(decision, visitor)
    for line in lines:
        for internal in ("rule", "p~", "_", "segment", "suppressed", "pinned", "0."):
            assert internal not in line, (internal, line)
    return lines


def test_a_pinned_rule_says_what_about_the_visitor_made_it_apply() -> None:
    visitor = subject(device="mobile", channel="paid_search", source="google")
    assert why(visitor) == ["Shown because you arrived from a Google ad and you are on a phone."]


def test_a_country_rule_names_the_country_and_the_choice() -> None:
    assert why(subject(country="GB")) == [
        "Shown because you are browsing from the United Kingdom.",
        "Our pick for you among: Free delivery in the UK and Welcome.",
    ]


def test_interest_and_orders_in_words() -> None:
    shoes = why(subject(affinities={"shoes": 3.0}))
    assert shoes[0] == "Shown because you have been looking at shoes."
    buyer = why(subject(facts={"purchases": 2}))
    assert buyer[0] == "Shown because you have ordered from us before."  # not the ticket part


def test_removals_a_visitor_cares_about() -> None:
    bought = subject(affinities={"shoes": 3.0}, facts={"purchased": {"boot-7": 999_000.0}})
    assert why(bought) == [
        "Shown because you have been looking at shoes.",
        "Not shown: Boot 7, because you bought it recently.",
    ]
    ticket = why(subject(facts={"open_tickets": 1}))
    assert ticket == [
        "Our standard choice here: nothing about your visit changed it.",
        "We hold back offers while your support request is open.",
    ]


def test_the_default_among_several_and_a_rule_without_words() -> None:
    assert why(subject()) == ["Our pick for you among: Welcome and 10% off."]
    assert why(subject(traits={"plan": "pro"})) == ["Chosen for visitors like you."]


@pytest.mark.parametrize(
    ("channel", "source", "expected"),
    [
        ("organic_search", "bing", "you found us through Bing search"),
        ("email", "newsletter", "you came from our Newsletter email"),
        ("email", "gmail", "you followed a link in an email you read in Gmail"),
        ("email", "yahoo-mail", "you followed a link in an email you read in Yahoo Mail"),
        (
            "email",
            "webmail.orange.fr",
            "you followed a link in an email you read in webmail.orange.fr",
        ),
        ("ai_assistant", "chatgpt", "ChatGPT sent you here"),
        ("ai_assistant", "claude", "Claude sent you here"),
        ("ai_assistant", None, "an AI assistant sent you here"),
        ("display", "google", "you clicked a banner ad"),
        ("organic_search", "brave", "you found us through Brave search"),
        ("referral", "blog.example.org", "you followed a link on blog.example.org"),
        ("paid_social", None, "you arrived from an ad on social media"),
        ("direct", None, "you came straight to the site"),
    ],
)
def test_every_arrival_has_words(channel: str, source: str | None, expected: str) -> None:
    assert arrival(channel, source) == expected


def test_every_channel_has_words() -> None:
    from typing import get_args

    from personalize.context.records import Channel

    assert all(arrival(channel) for channel in get_args(Channel))
    assert arrival("carrier_pigeon") is None


def test_nothing_shown_says_so_with_the_removals() -> None:
    engine = DecisionEngine(ContentLibrary.from_data({"tip": {
        "variants": [{"id": "boots", "label": "Boot 7", "html": "B",
                      "tags": {"products": ["boot-7"]}}],
        "default": ["boots"]}}))  # fmt: skip
    visitor = subject(facts={"purchased": {"boot-7": 999_000.0}})
    decision = engine.decide_sync(visitor, "tip")
    assert decision.variant is None and decision.html == ""
    assert engine.plain_reasons(decision, visitor) == [
        "Nothing is shown here for you right now.",
        "Not shown: Boot 7, because you bought it recently.",
    ]


def test_what_the_visitor_said_is_their_reason() -> None:
    from personalize.content.explanation import Explanation
    from personalize.content.wording import plain_reasons

    said = {"stated.interest": frozenset({"outdoor"}), "top_category": "outdoor",
            "stated.promotions": "never"}  # fmt: skip
    why = Explanation("rule at a.yaml:3: condition", attributes=frozenset({"top_category"}),
                      suppressed=(("sale", "you asked for no offers"),))  # fmt: skip
    assert plain_reasons("tent", why, None, said) == [
        "Shown because you told us you are interested in outdoor.",
        "You asked for no offers.",
    ]
