"""Numbers and text that enter a profile: finite, bounded, storable; refused with a 422 that
names the field, never a 503 that makes a sender retry a bad event forever."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest

from personalize import EventError, IdentityError, MemoryStore, Profile, SQLiteStore
from personalize.profiles.bounds import MAX_AMOUNT, MAX_TOTAL, problem_in
from personalize.profiles.events import apply_event, parse_event, validate_event
from personalize.profiles.merge import merge_profiles
from personalize.services.profiles import check_traits
from personalize.stores.base import ProfileStore
from tests.conftest import REDIS_URL
from tests.test_events import NOW, make_client, order, post


@pytest.fixture(params=["sqlite", "redis"])
def durable_store(request: pytest.FixtureRequest, tmp_path: Path) -> ProfileStore:
    """The stores that keep a change log and compact it; every write compacts at once."""
    if request.param == "redis":
        from personalize.stores.redis import RedisStore

        prefix = request.getfixturevalue("redis_prefix")
        return RedisStore(REDIS_URL, prefix=prefix, invalidation=False, log_limit=1)
    return SQLiteStore(tmp_path / "p.sqlite3", compact_after=1)


def test_two_huge_orders_are_refused_and_the_store_stays_healthy(
    durable_store: ProfileStore,
) -> None:
    """The report: two orders of 1e308 were accepted, revenue became infinite, was stored as
    null, and every later order broke compaction (503 for events that were stored)."""
    store = durable_store
    with make_client(store) as client:
        for order_id in ("big1", "big2"):
            r = post(client, order(order_id, ["yacht"], 1e308))
            assert r.status_code == 422, r.text
            assert "properties.value" in r.json()["problems"][0]["error"]
        assert post(client, order("o3", ["boots"], 80)).status_code == 202
        assert post(client, order("o4", ["socks"], 5)).status_code == 202
        assert client.portal is not None
        ann = client.portal.call(store.get, "u:ann")
        assert ann is not None
        assert (ann.facts["purchases"], ann.facts["revenue"]) == (2, 85.0)
        assert client.portal.call(store.quarantined, "u:ann") == []
        client.portal.call(store.close)


def test_an_order_that_would_take_revenue_past_its_bound_is_refused() -> None:
    store = MemoryStore()
    client = make_client(store)
    full = [order(f"o{i}", ["gold"], MAX_AMOUNT) for i in range(int(MAX_TOTAL / MAX_AMOUNT))]
    assert post(client, full).status_code == 202  # exactly at the bound
    assert post(client, full[-2:]).status_code == 202  # orders it holds count once
    r = post(client, [order("x", ["pin"], 1), order("more", ["gold"], 1)])
    assert r.status_code == 422
    assert r.json()["problems"] == [
        {"index": 0, "error": f"properties.value: the profile's revenue would pass {MAX_TOTAL:.0f}"}
    ]
    ann = asyncio.run(store.get("u:ann"))
    assert ann is not None and ann.facts["revenue"] == MAX_TOTAL


def test_sums_saturate_where_two_writers_race_past_the_bound() -> None:
    """The API refuses an overflowing order, but two senders at once (or a login merging two
    big profiles) may still meet the bound: the sum stays finite and bounded."""
    known, anon = Profile(key="u:ann"), Profile(key="v:x")
    for i in range(int(MAX_TOTAL / MAX_AMOUNT)):
        apply_event(known, validate_event("order", _props(f"k{i}", MAX_AMOUNT)))
        apply_event(anon, validate_event("order", _props(f"a{i}", MAX_AMOUNT)))
    merge_profiles(known, anon)
    assert known.facts["revenue"] == MAX_TOTAL
    apply_event(known, validate_event("order", _props("one-more", MAX_AMOUNT)))
    assert known.facts["revenue"] == MAX_TOTAL and known.facts["purchases"] == 2001


def _props(order_id: str, value: float) -> dict[str, Any]:
    return {"order_id": order_id, "products": ["p"], "value": value}


@pytest.mark.parametrize(
    ("body", "index", "message"),
    [
        # JSON parsers read 1e999 as infinity, and Python's reads NaN and Infinity literals.
        (b'{"type":"custom","name":"x","user_id":"ann","properties":{"n":1e999}}', 0, "n must"),
        (b'[{"type":"custom","name":"x","user_id":"ann","properties":{"n":[NaN]}}]', 0, "n[0]"),
        (
            b'{"type":"order","user_id":"ann","properties":'
            b'{"order_id":"o","products":["p"],"value":-Infinity}}',
            0,
            "properties.value",
        ),
        (
            b'{"type":"custom","name":"x","user_id":"ann","properties":{"id":12345678901234567890}}',
            0,
            "2**53",
        ),
        # A lone surrogate, anywhere: no store can write it as UTF-8.
        (b'{"type":"custom","name":"x","user_id":"\\ud800"}', 0, "user_id"),
        (b'{"type":"custom","name":"x","visitor_id":"\\udc00x"}', 0, "visitor_id"),
        (b'{"type":"custom","name":"x","user_id":"ann","properties":{"t":"\\ud800"}}', 0, "t is"),
        (b'{"type":"custom","name":"x","user_id":"ann","properties":{"\\ud800":1}}', 0, "key"),
        (
            b'{"type":"order","user_id":"ann","properties":'
            b'{"order_id":"o","products":["\\udfff"],"value":1}}',
            0,
            "products",
        ),
        # The ids a login refuses: placeholders and control characters (C0, DEL, C1).
        (
            b'[{"type":"custom","name":"x","user_id":"ann"},{"type":"custom","name":"x",'
            b'"user_id":"null"}]',
            1,
            "placeholder",
        ),
        (b'{"type":"custom","name":"x","visitor_id":"undefined"}', 0, "placeholder"),
        (b'{"type":"custom","name":"x","user_id":"a\\u0000b"}', 0, "control"),
        (b'{"type":"custom","name":"x","user_id":"a\\u0085b"}', 0, "control"),
        (b'{"type":"custom","name":"x","user_id":"a\\u007fb"}', 0, "control"),
        (
            b'{"type":"ticket","user_id":"ann","properties":'
            b'{"ticket_id":"t\\u009b","status":"open"}}',
            0,
            "ticket_id",
        ),
    ],
)
def test_malformed_events_are_a_422_listing_them_never_a_503(
    tmp_path: Path, body: bytes, index: int, message: str
) -> None:
    store = SQLiteStore(tmp_path / "p.sqlite3", compact_after=1)
    with make_client(store) as client:
        r = post(client, body)
        assert r.status_code == 422, r.text
        problems = r.json()["problems"]
        assert [p["index"] for p in problems] == [index]
        assert message in problems[0]["error"]
        assert client.portal is not None
        assert client.portal.call(store.keys) == []  # nothing stored
        client.portal.call(store.close)


def test_a_body_that_is_not_utf8_json_is_a_400() -> None:
    client = make_client(MemoryStore())
    latin1 = json.dumps(order("o1", ["café"]), ensure_ascii=False).encode("latin-1")
    r = post(client, latin1)
    assert r.status_code == 400 and "UTF-8" in r.json()["error"]
    utf16 = json.dumps(order("o1", ["p"])).encode("utf-16")  # json.loads would guess it
    assert post(client, utf16).status_code == 400


def test_traits_and_tracked_events_hold_finite_numbers_only() -> None:
    for traits, message in [
        ({"score": math.inf}, "traits.score must be a finite number"),
        ({"tags": ["a", math.nan]}, "traits.tags[1]"),
        ({"big": 2**64}, "2**53"),
        ({"name": "\udc80"}, "lone surrogate"),
        ({"when": object()}, "JSON data"),
        ({1: "x"}, "not text"),
    ]:
        with pytest.raises(IdentityError, match=message.replace("[", r"\[").replace("*", r"\*")):
            check_traits(traits)
    check_traits({"plan": "pro", "seats": 12, "ratio": 0.5, "tags": ["a"], "x": None})
    with pytest.raises(EventError, match=r"properties\.value"):
        validate_event("order", _props("o", math.inf))
    with pytest.raises(EventError, match=r"properties\.value"):
        validate_event("order", _props("o", MAX_AMOUNT * 2))


def test_problem_in_walks_every_level_to_a_bounded_depth() -> None:
    deep: Any = 1
    for _ in range(9):
        deep = [deep]
    assert problem_in(deep, "p") is not None and "nested deeper" in str(problem_in(deep, "p"))
    assert problem_in({"a": [{"b": (1, 2.5, "x", None, True)}]}, "p") is None
    assert parse_event(order("o1", ["p"], 0))[1].properties["value"] == 0.0
    assert NOW > 0
