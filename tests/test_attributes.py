"""The attribute vocabulary: built from a context and a profile; unknown values are missing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from personalize.context import Clock, Device, Geo, Signals, Source, VisitorContext
from personalize.profiles.pageviews import Hit, apply_hit
from personalize.profiles.profile import Profile
from personalize.rules import attributes
from personalize.rules.attributes import ATTRIBUTES, DAY, FAMILIES, build_attributes, lookup

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "data" / "attributes.yaml").read_text(encoding="utf-8")
)
_PARTS = {"geo": Geo, "device": Device, "source": Source, "clock": Clock, "signals": Signals}


def _context(spec: dict[str, Any]) -> VisitorContext:
    parts: dict[str, Any] = {}
    for name, cls in _PARTS.items():
        if name in spec:
            fields = dict(spec[name])
            if name == "signals":
                fields["languages"] = tuple(fields.get("languages", ()))
            parts[name] = cls(**fields)
    return VisitorContext(**parts, path=spec.get("path", "/"))


def _normal(value: Any) -> Any:
    return sorted(value) if isinstance(value, frozenset | tuple | list) else value


@pytest.mark.parametrize("case", CASES, ids=lambda c: str(c["id"]))
def test_build_attributes_table(case: dict[str, Any]) -> None:
    profile = Profile.from_dict(case["profile"]) if case["profile"] else None
    attrs = build_attributes(
        _context(case["context"]),
        profile,
        is_known=case["is_known"],
        now=float(case.get("now", 1_700_000_000)),
        learned=case.get("learned"),
    )
    got = {k: _normal(attrs[k]) for k in case["expect"] if k in attrs}
    assert got == {k: _normal(v) for k, v in case["expect"].items()}
    for name in case.get("absent", []):
        assert name not in attrs, name
    assert all(v is not None for v in attrs.values())


def test_table_ids_are_unique() -> None:
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids))


def test_every_built_attribute_is_in_the_vocabulary() -> None:
    profile = Profile(
        key="u:1",
        traits={"plan": "gold"},
        facts={
            "purchased": {"p1": 1.0},
            "custom": {"signup": {"count": 1, "last": 2.0}},
            "purchases": 1,
            "revenue": 9.0,
            "last_purchase_at": 1.0,
            "returns": 0,
            "last_return_at": 1.0,
            "open_tickets": 0,
            "last_ticket_at": 1.0,
        },
        stated={
            name: {"value": value, "ts": 5.0, "origin": "me"}
            for name, value in {
                "interest.shoes": "more",
                "interest.bags": "less",
                "promotions": "never",
                "language": "de",
                "location": True,
                "history": False,
                "segment.x": "not_me",
            }.items()
        },
    )
    for day in range(4):  # a routine: desktop in the morning
        apply_hit(profile, Hit(ts=(day - 5) * DAY, path="/", device_type="desktop", hour=9))
    apply_hit(profile, Hit(ts=10.0, path="/shoes", category="shoes", device_type="mobile"))
    apply_hit(profile, Hit(ts=10_000.0, path="/", source="g", campaign="c", device_type="tablet"))
    context = VisitorContext(
        geo=Geo(country="GB", region="ENG", city="x", continent="EU", time_zone="UTC"),
        device=Device(os="iOS", os_version="17.4", browser="Safari"),
        source=Source(source="g", medium="m", campaign="c", term="t", referrer_host="h"),
        signals=Signals(languages=("en",)),
    )
    attrs = build_attributes(
        context,
        profile,
        is_known=True,
        now=20_000.0,
        learned={"propensity": 0.5, "cluster": 1, "anomaly": 0.1, "anomalous": False},
    )
    assert set(ATTRIBUTES) - set(attrs) == set()
    assert attrs["unusual"] == 1.0 and attrs["unusual_why"].startswith("first visit")
    for name in attrs:
        assert lookup(name) is not None, name


def test_docstring_table_lists_the_vocabulary() -> None:
    doc = attributes.__doc__ or ""
    documented = set(re.findall(r"^([a-z][a-z0-9_.<>]*)\s{2,}", doc, re.MULTILINE))
    expected = set(ATTRIBUTES)
    expected |= {
        f"{p}<category>" if p == "affinity." else f"{p}<name>"
        for p in FAMILIES
        if p not in ("events.", "purchased_at.")
    }
    expected |= {"events.<name>.count", "events.<name>.last", "purchased_at.<product>"}
    assert documented - {"attribute"} == expected


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("traits.plan", "any"),
        ("affinity.shoes", "number"),
        ("purchased_at.sku-1", "timestamp"),
        ("events.app.install.count", "number"),
        ("events.x.last", "timestamp"),
    ],
)
def test_open_families(name: str, kind: str) -> None:
    found = lookup(name)
    assert found is not None and found.type == kind


@pytest.mark.parametrize(
    "name", ["traits.", "affinity.", "events.x", "events..count", "colour", "events.count"]
)
def test_unknown_names(name: str) -> None:
    assert lookup(name) is None


def test_unknown_attribute_suggests_family() -> None:
    message = attributes.unknown_attribute_message("affinities.shoes")
    assert message == "unknown attribute 'affinities.shoes' (did you mean 'affinity.shoes'?)"


def test_a_context_seen_again_gives_the_same_attributes_in_a_dict_of_their_own() -> None:
    """The context's part is remembered by the context object (the builder reuses it for
    requests alike): each request still gets its own dict, and a stated language or a
    profile changes only that request's."""
    context = VisitorContext(
        geo=Geo(country="GB"),
        device=Device(type="mobile", os="iOS"),
        signals=Signals(languages=("en-gb", "en")),
    )
    first = build_attributes(context, None, is_known=False, now=1_000.0)
    first["country"] = "changed by a careless caller"
    stated = Profile(key="v:1", stated={"language": {"value": "de", "ts": 1.0}})
    second = build_attributes(context, stated, is_known=True, now=2_000.0)
    third = build_attributes(context, None, is_known=False, now=3_000.0)
    assert (second["language"], second["known"], second["now"]) == ("de", True, 2_000.0)
    assert third == {**first, "country": "GB", "now": 3_000.0}
    assert third is not first and list(third) == list(first)
    other = build_attributes(VisitorContext(), None, is_known=False, now=3_000.0)
    assert "country" not in other and other["device_type"] == "other"
