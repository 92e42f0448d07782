"""One bad profile never stops the store: what cannot be read, folded or encoded is set aside
(quarantined, logged, erased with its profile) and compaction goes on for the rest."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from personalize import Profile, SQLiteStore
from personalize.profiles.events import validate_event
from personalize.profiles.pageviews import Hit
from personalize.stores.base import ProfileStore
from tests.conftest import REDIS_URL
from tests.test_events import make_client, order, post

# What an earlier version wrote after two orders of 1e308: an infinite revenue, as null.
POISONED = Profile(key="u:ann", user_id="ann", facts={"purchases": 2, "revenue": None})


@pytest.fixture(params=["sqlite", "redis", "redis_cluster"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProfileStore]:
    if request.param == "redis_cluster":
        from personalize.stores.redis import RedisStore

        url = request.getfixturevalue("redis_cluster").url
        prefix = request.getfixturevalue("redis_cluster_prefix")
        yield RedisStore(url, prefix=prefix, invalidation=False, log_limit=1)
    elif request.param == "redis":
        from personalize.stores.redis import RedisStore

        prefix = request.getfixturevalue("redis_prefix")
        yield RedisStore(REDIS_URL, prefix=prefix, invalidation=False, log_limit=1)
    else:
        yield SQLiteStore(tmp_path / "p.sqlite3", compact_after=1)


def write_raw(store: ProfileStore, key: str, data: bytes) -> None:
    """Put ``data`` under ``key`` as the backend keeps a profile, bypassing every check."""
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute(  # updated now: an anonymous profile not written for long expires
                "INSERT OR REPLACE INTO profiles (key, data, updated, merged) VALUES (?, ?, ?, 0)",
                (key, data, time.time()),
            )
        return
    import redis
    from redis.cluster import RedisCluster

    from personalize.stores.redis import RedisStore
    from personalize.stores.redis_support import cluster_nodes

    assert isinstance(store, RedisStore)
    if store.cluster:
        host, port = cluster_nodes(store.url)[0]
        client: redis.Redis | RedisCluster = RedisCluster(host=host, port=port)
    else:
        client = redis.Redis.from_url(REDIS_URL)
    client.hset(store.redis_key(key), mapping={"d": data, "n": 1})
    client.close()


def test_a_poisoned_profile_is_quarantined_and_the_others_are_folded(
    store: ProfileStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The report: with revenue stored as null, the next order made every compaction fail
    (and the events API answer 503 for events it had stored)."""
    with make_client(store) as client:
        assert client.portal is not None
        call = client.portal.call
        call(store.get, "nobody")  # the file or connection exists
        write_raw(store, "u:ann", POISONED.to_json())
        with caplog.at_level(logging.ERROR, logger="personalize"):
            r = post(client, [order("o3", ["boots"], 80), {**order("b1", ["hat"], 9),
                                                             "user_id": "bob"}])  # fmt: skip
            assert r.status_code == 202, r.text
            now = validate_event("custom", {}, name="x").ts
            hit = Hit(ts=now, path="/shoes", category="shoes")
            call(store.apply_changes, {"u:ann": [hit], "u:bob": [hit]})
        bob = call(store.get, "u:bob")
        assert bob is not None and (bob.facts["revenue"], bob.page_views) == (9.0, 1)
        ann = call(store.get, "u:ann")
        assert ann is not None and ann.page_views == 1  # page views still fold
        assert ann.facts["purchases"] == 2  # the order that cannot be added is set aside
        records = call(store.quarantined, "u:ann")
        assert len(records) == 1 and "TypeError" in records[0]["reason"]
        assert [c[0]["e"]["properties"]["order_id"] for c in records[0]["changes"]] == ["o3"]
        assert any("quarantined" in r.getMessage() and "u:ann" in r.getMessage()
                   for r in caplog.records)  # fmt: skip
        assert call(store.quarantined, "u:bob") == []
        # A later order for ann is set aside too, and answered 202 (it is stored).
        assert post(client, order("o4", ["socks"], 5)).status_code == 202
        call(store.apply_changes, {"u:ann": [hit]})  # (Redis folds a log of two entries)
        assert len(call(store.quarantined, "u:ann")) == 2
        assert call(store.get, "u:ann").page_views == 2
        # Erasing ann erases what was set aside.
        call(store.erase, "u:ann")
        assert call(store.quarantined, "u:ann") == []
        call(store.close)


def test_a_profile_that_cannot_be_read_is_set_aside_and_starts_afresh(
    store: ProfileStore,
) -> None:
    async def run() -> None:
        await store.get("nobody")
        write_raw(store, "v:cy", b'{"key": "v:cy", "visits": tru')
        assert await store.get("v:cy") is None  # a read leaves it out
        for ts in (1.7e9, 1.7e9 + 1):  # (Redis folds a log of two entries)
            await store.apply_changes({"v:cy": [Hit(ts, "/")], "v:dee": [Hit(ts, "/")]})
        cy, dee = await store.get("v:cy"), await store.get("v:dee")
        assert cy is not None and cy.page_views == 2
        assert dee is not None and dee.page_views == 2
        (record,) = await store.quarantined("v:cy")  # (page views never create a u: key)
        assert record["profile"] == '{"key": "v:cy", "visits": tru'
        await store.close()

    asyncio.run(run())


def test_sqlite_compaction_goes_on_past_a_bad_profile(tmp_path: Path) -> None:
    """Many profiles in one compaction, one of them poisoned: every other one is folded."""

    async def run() -> None:
        store = SQLiteStore(tmp_path / "p.sqlite3", compact_after=10**9)
        await store.get("nobody")
        write_raw(store, "u:ann", POISONED.to_json())
        event = validate_event("order", {"order_id": "o", "products": ["p"], "value": 1})
        await store.apply_changes({f"u:{i}": [event] for i in range(300)} | {"u:ann": [event]})
        assert await store.compact() == 301
        with sqlite3.connect(store.path) as conn:
            assert conn.execute("SELECT count(*) FROM log").fetchone() == (0,)
            rows = conn.execute("SELECT key, data FROM quarantine").fetchall()
        assert [key for key, _ in rows] == ["u:ann"]
        assert orjson.loads(rows[0][1])["changes"][0][0]["e"]["name"] == "order"
        for i in (0, 299):
            p = await store.get(f"u:{i}")
            assert p is not None and p.facts["revenue"] == 1.0
        await store.close()

    asyncio.run(run())


def test_the_memory_store_sets_aside_in_the_process_and_erases_with_the_profile(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from personalize import MemoryStore

    async def run() -> None:
        store = MemoryStore()
        store._data["u:ann"] = POISONED.to_json()
        event = validate_event("order", {"order_id": "o", "products": ["p"], "value": 1})
        with caplog.at_level(logging.ERROR, logger="personalize"):
            await store.apply_changes({"u:ann": [event, Hit(event.ts, "/")]})
        ann = await store.get("u:ann")
        assert ann is not None and (ann.page_views, ann.facts["purchases"]) == (1, 2)
        (record,) = await store.quarantined("u:ann")
        assert "TypeError" in record["reason"] and "quarantined" in caplog.text
        assert await store.erase("u:ann") == ["u:ann"]
        assert await store.quarantined("u:ann") == []

    asyncio.run(run())
