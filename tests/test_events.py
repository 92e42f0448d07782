"""Events from other channels: validation, facts, merging, the API and visitor.track."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from personalize import (
    EventError,
    MemoryStore,
    PersonalizeMiddleware,
    Profile,
    SQLiteStore,
    StoreUnavailableError,
    get_visitor,
)
from personalize.profiles.events import apply_event, parse_event, validate_event
from personalize.profiles.merge import merge_profiles
from personalize.stores.base import ProfileStore
from tests.apps import SECRET
from tests.conftest import REDIS_URL

API_KEY = "events-api-key-0123456789abcdef"
NOW = time.time()


def order(order_id: str, products: list[str], value: float = 10.0, **extra: Any) -> dict[str, Any]:
    return {
        "type": "order",
        "user_id": "ann",
        "ts": NOW - 100,
        "properties": {"order_id": order_id, "products": products, "value": value},
        **extra,
    }


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "JSON object"),
        ({"type": "order"}, "exactly one of user_id or visitor_id"),
        ({"type": "order", "user_id": "a", "visitor_id": "b"}, "exactly one"),
        ({"user_id": "a"}, "type is required"),
        ({"type": "refund", "user_id": "a"}, "type must be one of"),
        ({"type": "order", "user_id": "a", "properties": []}, "properties must be an object"),
        ({"type": "order", "user_id": "a", "properties": {}}, "order_id"),
        (
            {"type": "order", "user_id": "a", "properties": {"order_id": "o", "products": []}},
            "products",
        ),
        (
            {
                "type": "order",
                "user_id": "a",
                "properties": {"order_id": "o", "products": ["p"], "value": -1},
            },
            "value",
        ),
        (
            {
                "type": "order",
                "user_id": "a",
                "properties": {"order_id": "o", "products": ["p"], "value": float("nan")},
            },
            "value",
        ),
        ({"type": "ticket", "user_id": "a", "properties": {"ticket_id": "t"}}, "status"),
        ({"type": "custom", "user_id": "a"}, "name must start"),
        ({"type": "custom", "name": "9lives", "user_id": "a"}, "name must start"),
        ({"type": "custom", "name": "x", "user_id": "a", "ts": "yesterday"}, "ISO 8601"),
        ({"type": "custom", "name": "x", "user_id": "a", "ts": "2026-01-01T00:00:00"}, "offset"),
        ({"type": "custom", "name": "x", "user_id": "a", "ts": 5}, "between"),
        ({"type": "custom", "name": "x", "user_id": "a", "ts": True}, "ts must be"),
        ({"type": "custom", "name": "x", "user_id": "", "ts": None}, "user_id: refusing"),
        ({"type": "custom", "name": "x", "user_id": "a\nb"}, "user_id: .* control"),
        ({"type": "custom", "name": "x", "user_id": "a", "extra": 1}, "unknown fields: extra"),
        (
            {"type": "custom", "name": "x", "user_id": "a", "properties": {"b": "x" * 5000}},
            "exceed",
        ),
    ],
)
def test_invalid_events_say_what_is_wrong(payload: Any, message: str) -> None:
    with pytest.raises(EventError, match=message):
        parse_event(payload)


def test_facts_from_orders_returns_tickets_and_custom_events() -> None:
    p = Profile(key="u:ann")
    for payload in (
        order("o1", ["boots"], 80),
        order("o1", ["boots"], 80),  # the same order again: counted once
        order("o2", ["socks", "laces"], 5.5),
        {
            "type": "return",
            "user_id": "ann",
            "properties": {"order_id": "o1", "products": ["boots"]},
        },
        {"type": "ticket", "user_id": "ann", "properties": {"ticket_id": "t1", "status": "open"}},
        {"type": "ticket", "user_id": "ann", "properties": {"ticket_id": "t2", "status": "open"}},
        {"type": "custom", "name": "newsletter_signup", "user_id": "ann"},
    ):
        apply_event(p, parse_event(payload)[1])
    f = p.facts
    assert (f["purchases"], f["revenue"], f["returns"], f["open_tickets"]) == (2, 85.5, 1, 2)
    assert set(f["purchased"]) == {"boots", "socks", "laces"}
    assert f["custom"]["newsletter_signup"]["count"] == 1
    closed = validate_event("ticket", {"ticket_id": "t1", "status": "closed"})
    apply_event(p, closed)
    assert p.facts["open_tickets"] == 1
    # A late, older status update does not reopen the ticket.
    apply_event(p, validate_event("ticket", {"ticket_id": "t1", "status": "open"}, ts=NOW - 50))
    assert p.facts["open_tickets"] == 1


def test_merging_facts_counts_each_order_once() -> None:
    known, anon = Profile(key="u:ann"), Profile(key="v:x")
    apply_event(known, parse_event(order("o1", ["a"], 10))[1])
    apply_event(anon, parse_event(order("o1", ["a"], 10))[1])
    apply_event(anon, parse_event(order("o2", ["b"], 7))[1])
    merge_profiles(known, anon)
    assert (known.facts["purchases"], known.facts["revenue"]) == (2, 17.0)
    assert set(known.facts["purchased"]) == {"a", "b"}


def make_client(store: MemoryStore, **options: Any) -> TestClient:
    async def home(request: Request) -> Response:
        v = get_visitor(request)
        return HTMLResponse(f"<p>{v.id}|{json.dumps(v.profile.facts, sort_keys=True)}</p>")

    async def buy(request: Request) -> Response:
        await get_visitor(request).track("order", {"order_id": "w1", "products": ["hat"]})
        return JSONResponse(get_visitor(request).profile.facts)

    async def bad_track(request: Request) -> Response:
        try:
            await get_visitor(request).track("9bad", {})
        except EventError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({})

    app = Starlette(routes=[Route("/", home), Route("/buy", buy), Route("/bad", bad_track)])
    options.setdefault("api_keys", [API_KEY])
    pz = PersonalizeMiddleware(app, secret_key=SECRET, store=store, flush_interval=0, **options)
    client = TestClient(pz)
    client.headers["user-agent"] = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"
    return client


def post(client: TestClient, body: Any, key: str | None = API_KEY, **kw: Any) -> Any:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/_personalize/events", content=data, headers=headers, **kw)


def test_events_api_authenticates_and_validates() -> None:
    store = MemoryStore()
    client = make_client(store)
    assert post(client, order("o1", ["p"]), key=None).status_code == 401
    assert post(client, order("o1", ["p"]), key="wrong-key-0123456789abcdef").status_code == 401
    assert client.get("/_personalize/events").status_code == 405
    assert post(client, b"{not json").status_code == 400
    r = client.post(
        "/_personalize/events",
        content=b"{}",
        headers={"authorization": f"Bearer {API_KEY}", "content-type": "text/plain"},
    )
    assert r.status_code == 415
    r = post(client, [order("o1", ["p"]), {"type": "nope", "user_id": "ann"}])
    assert r.status_code == 422
    assert r.json()["problems"] == [{"index": 1, "error": r.json()["problems"][0]["error"]}]
    assert asyncio.run(store.keys()) == []  # nothing stored from a rejected batch
    assert post(client, []).status_code == 422
    assert post(client, [order(f"o{i}", ["p"]) for i in range(1001)]).status_code == 413


def test_events_api_disabled_without_keys() -> None:
    client = make_client(MemoryStore(), api_keys=[])
    assert post(client, order("o1", ["p"])).status_code == 403


@pytest.fixture(params=["memory", "sqlite", "redis"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> ProfileStore:
    if request.param == "redis":
        from personalize.stores.redis import RedisStore

        return RedisStore(REDIS_URL, prefix=request.getfixturevalue("redis_prefix"))
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "p.sqlite3")
    return MemoryStore()


def test_events_land_on_profiles_for_users_and_visitors(any_store: ProfileStore) -> None:
    """On every store, also those that only log the events and return no profile: the
    visitor's next page reads them, not the profile cached before they arrived."""
    store = any_store
    with make_client(store) as client:  # one event loop for the store's connections
        visitor_id = client.get("/").text.removeprefix("<p>").split("|")[0]
        r = post(
            client,
            [
                order("o1", ["boots"], 80),
                {
                    "type": "ticket",
                    "visitor_id": visitor_id,
                    "properties": {"ticket_id": "t9", "status": "open"},
                },
            ],
        )
        assert r.status_code == 202 and r.json() == {"accepted": 2}
        assert client.portal is not None
        ann = client.portal.call(store.get, "u:ann")
        assert ann is not None and ann.facts["purchases"] == 1
        # The visitor's very next page sees the ticket.
        page = client.get("/").text.removeprefix("<p>").removesuffix("</p>")
        assert json.loads(page.split("|")[1])["open_tickets"] == 1
        client.portal.call(store.close)


def test_track_in_app_is_seen_by_the_same_request_and_stored() -> None:
    store = MemoryStore()
    client = make_client(store)
    client.get("/")
    assert client.get("/buy").json()["purchases"] == 1
    assert client.get("/buy").json()["purchases"] == 1  # same order id: counted once
    r = client.get("/bad")
    assert r.status_code == 400 and "name must start" in r.json()["error"]
    keys = asyncio.run(store.keys())
    p = asyncio.run(store.get(keys[0]))
    assert p is not None and p.facts["purchased"] == {"hat": p.facts["last_purchase_at"]}


def test_events_api_answers_503_when_the_store_is_down() -> None:
    class Down(MemoryStore):
        async def update_many(self, mutations: Any) -> Any:
            raise StoreUnavailableError("down")

    client = make_client(Down())
    r = post(client, order("o1", ["p"]))
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
