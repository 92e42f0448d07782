"""One contract, every state store: the same cases run against memory, SQLite and Redis."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from personalize import MemoryStore, Personalizer, SQLiteStore
from personalize.exceptions import StoreUnavailableError
from personalize.stores.state import StateStore
from personalize.stores.state_memory import MemoryStateStore
from personalize.stores.state_sqlite import SQLiteStateStore
from tests.conftest import REDIS_URL

StateFactory = Callable[..., StateStore]  # (options: for the Redis stores alone)
SECRET = "change-me-to-32-random-characters"


@pytest.fixture(params=["memory", "sqlite", "redis", "redis_cluster"])
def make_state(request: pytest.FixtureRequest, tmp_path: Path) -> StateFactory:
    """A factory of state stores that all see the same data (one per thread or loop)."""
    if request.param == "memory":
        shared = MemoryStateStore()
        return lambda **options: shared
    if request.param == "redis":
        from personalize.stores.state_redis import RedisStateStore

        prefix = request.getfixturevalue("redis_prefix")
        return lambda **options: RedisStateStore(REDIS_URL, prefix=prefix, **options)
    if request.param == "redis_cluster":  # a real cluster: 3 primaries, 3 replicas
        from personalize.stores.state_redis import RedisStateStore

        url = request.getfixturevalue("redis_cluster").url  # redis+cluster://h:p,h:p,.../
        prefix = request.getfixturevalue("redis_cluster_prefix")
        return lambda **options: RedisStateStore(url, prefix=prefix, **options)
    return lambda **options: SQLiteStateStore(tmp_path / "state.sqlite3")


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_increments_add_up_and_return_every_field(make_state: StateFactory) -> None:
    async def scenario() -> None:
        store = make_state()
        assert await store.counters(["a|*"]) == {}
        first = await store.increment({"a|*": {"trials": 1, "rewards": 0.5}, "b|*": {"trials": 2}})
        assert first == {"a|*": {"trials": 1.0, "rewards": 0.5}, "b|*": {"trials": 2.0}}
        again = await store.increment({"a|*": {"trials": 2, "value": -1.25}})
        assert again == {"a|*": {"trials": 3.0, "rewards": 0.5, "value": -1.25}}
        found = await store.counters(["a|*", "b|*", "none", "a|*"])
        assert found == {
            "a|*": {"trials": 3.0, "rewards": 0.5, "value": -1.25},
            "b|*": {"trials": 2.0},
        }
        assert await store.increment({}) == {}
        await store.close()

    run(scenario())


def test_concurrent_increments_from_many_threads_lose_nothing(make_state: StateFactory) -> None:
    """Each thread has its own store object and event loop, as separate workers would."""

    def worker() -> None:
        async def add() -> None:
            store = make_state()
            for _ in range(40):
                await store.increment({"hot": {"n": 1, "half": 0.5}, "cold": {"n": 1}})
            await store.close()

        asyncio.run(add())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    async def check() -> None:
        store = make_state()
        assert await store.counters(["hot", "cold"]) == {
            "hot": {"n": 160.0, "half": 80.0},
            "cold": {"n": 160.0},
        }
        await store.close()

    run(check())


def test_a_batch_sent_twice_is_added_once(make_state: StateFactory) -> None:
    async def scenario() -> None:
        store = make_state()
        for _ in range(3):
            result = await store.increment({"k": {"n": 2}, "j": {"n": 1}}, batch_id="b1")
        assert result == {"k": {"n": 2.0}, "j": {"n": 1.0}}
        await store.increment({"k": {"n": 2}}, batch_id="b2")
        # Many batches later, the first id is still remembered for this key.
        for i in range(10):
            await store.increment({"k": {"n": 1}}, batch_id=f"x{i}")
        await store.increment({"k": {"n": 100}}, batch_id="b1")
        assert await store.counters(["k", "j"]) == {"k": {"n": 14.0}, "j": {"n": 1.0}}
        await store.close()

    run(scenario())


def test_an_ordered_batch_sent_again_after_many_later_ones_is_added_once(
    make_state: StateFactory,
) -> None:
    """A hot counter (a bandit arm's, written by every worker every few milliseconds) sees
    hundreds of batches between a batch whose outcome was unknown and its resend."""

    async def scenario() -> None:
        store = make_state()
        await store.increment({"arm": {"n": 1}}, batch_id="w1#1")
        for n in range(200):  # another worker, and later batches of the first
            await store.increment({"arm": {"n": 1}}, batch_id=f"w2#{n}")
        await store.increment({"arm": {"n": 1}}, batch_id="w1#2")
        await store.increment({"arm": {"n": 100}}, batch_id="w1#1")  # sent again: not added
        await store.increment({"arm": {"n": 100}}, batch_id="w2#150")
        await store.increment({"arm": {"n": 1}}, batch_id="w1#3")
        assert await store.counters(["arm"]) == {"arm": {"n": 203.0}}
        await store.close()

    run(scenario())


# Long enough for the calls before the first check on a loaded machine (a Redis Cluster's
# take a few round trips each: 0.3 s was once too short with the CPUs busy), short enough
# to wait out.
SHORT_TTL = 1.0


def test_counters_expire_together_and_start_again(make_state: StateFactory) -> None:
    async def scenario() -> None:
        store = make_state()
        try:
            await store.increment({"cap": {"views": 1}}, ttl=SHORT_TTL)
            await store.increment({"cap": {"clicks": 1}})  # no ttl: the key's expiry stays
            await store.increment({"keep": {"n": 1}})
            assert await store.counters(["cap"]) == {"cap": {"views": 1.0, "clicks": 1.0}}
            await asyncio.sleep(SHORT_TTL + 0.25)
            assert await store.counters(["cap", "keep"]) == {"keep": {"n": 1.0}}
            assert await store.increment({"cap": {"views": 1}}, ttl=60) == {"cap": {"views": 1.0}}
        finally:  # (a failed check must not leave connections for the next test's loop)
            await store.close()

    run(scenario())


def test_values_expire_and_only_if_absent_keeps_the_first(make_state: StateFactory) -> None:
    async def scenario() -> None:
        store = make_state()
        try:
            assert await store.values(["pick"]) == {}
            first = await store.put_values({"pick": b"a"}, ttl=SHORT_TTL, only_if_absent=True)
            assert first == {"pick": b"a"}
            assert await store.put_values(
                {"pick": b"b", "other": b"o"}, ttl=60, only_if_absent=True
            ) == {
                "pick": b"a",
                "other": b"o",
            }
            found = await store.values(["pick", "other", "none"])
            assert found == {"pick": b"a", "other": b"o"}
            await asyncio.sleep(SHORT_TTL + 0.25)
            assert await store.values(["pick"]) == {}
            again = await store.put_values({"pick": b"c"}, ttl=60, only_if_absent=True)
            assert again == {"pick": b"c"}
            assert await store.put_values({"pick": b"d"}, ttl=None) == {"pick": b"d"}
            assert await store.values(["pick"]) == {"pick": b"d"}
        finally:
            await store.close()

    run(scenario())


def test_racing_puts_of_a_pick_all_agree_on_one(make_state: StateFactory) -> None:
    picks: list[bytes] = []

    def worker(choice: bytes) -> None:
        async def put() -> None:
            # Six clients starting at once on six threads (one GIL): a cluster client's
            # start (topology, COMMAND) outlasted the 0.5 s default on a loaded machine.
            # This is about agreeing on one pick, not about latency.
            store = make_state(timeout=5.0)
            stored = await store.put_values({"s:pick": choice}, ttl=60, only_if_absent=True)
            picks.append(stored["s:pick"])
            await store.close()

        asyncio.run(put())

    threads = [threading.Thread(target=worker, args=(f"v{i}".encode(),)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(picks) == 6 and len(set(picks)) == 1


def test_delete_removes_counters_and_values(make_state: StateFactory) -> None:
    async def scenario() -> None:
        store = make_state()
        await store.increment({"a": {"n": 1}})
        await store.put_values({"a": b"x", "b": b"y"}, ttl=60)
        assert await store.delete(["a", "b", "c"]) == 2
        assert await store.counters(["a"]) == {} and await store.values(["a", "b"]) == {}
        assert await store.delete(["a"]) == 0
        await store.close()

    run(scenario())


ODD_PREFIX = "pick:u:b*b?[x]\\{y}|"  # glob characters and hash-tag braces, taken literally


def test_keys_lists_every_live_key_under_a_prefix_and_nothing_else(
    make_state: StateFactory,
) -> None:
    async def scenario() -> None:
        store = make_state()
        under = [ODD_PREFIX + "1.5|hero", ODD_PREFIX + "2.5|nav"]
        await store.put_values(dict.fromkeys(under, b"v"), ttl=60)
        await store.increment({ODD_PREFIX + "c": {"n": 1}})
        others = ["pick:u:bXb?[x]\\{y}|1|hero", "pick:u:b*b?[x]\\{y}", "pick:u:b*b?[x]\\{y}}"]
        await store.put_values(dict.fromkeys(others, b"v"), ttl=60)
        await store.put_values({ODD_PREFIX + "gone": b"v"}, ttl=0.05)
        await asyncio.sleep(0.1)
        assert sorted(await store.keys(ODD_PREFIX)) == sorted([*under, ODD_PREFIX + "c"])
        assert await store.keys("nothing:") == []
        await store.delete(await store.keys(ODD_PREFIX))
        assert await store.keys(ODD_PREFIX) == []
        assert len(await store.values(others)) == 3
        await store.close()

    run(scenario())


def test_keys_scans_every_primary_of_a_redis_cluster(redis_cluster: Any) -> None:
    from personalize.stores.state_redis import RedisStateStore

    async def scenario() -> None:
        client = redis_cluster.async_client()
        store = RedisStateStore(redis_cluster.url, client=client, prefix="test-keys:")
        wanted = [f"pick:v:{i}|1.0|hero" for i in range(40)]  # spread over every slot range
        await store.put_values(dict.fromkeys(wanted, b"v"), ttl=60)
        try:
            assert sorted(await store.keys("pick:v:")) == sorted(wanted)
            assert await store.delete(wanted) == 40
            assert await store.keys("pick:") == []
        finally:
            await store.delete(wanted)
            await client.aclose()

    run(scenario())


def test_scripts_flushed_from_every_node_are_sent_again_once(
    redis_cluster: Any, redis_cluster_prefix: str
) -> None:
    """A node that lost its script cache (a restart, a failover to a fresh replica) answers
    NOSCRIPT: the increment is sent again with the script's text and counts once."""
    from personalize.stores.state_redis import RedisStateStore

    async def scenario() -> None:
        client = redis_cluster.async_client()  # a client of the caller's: not closed by the store
        store = RedisStateStore(redis_cluster.url, client=client, prefix=redis_cluster_prefix)
        keys = [f"arm/{i}|*" for i in range(30)]  # on every primary
        await store.increment({key: {"n": 1} for key in keys}, batch_id="b1")
        assert await store.put_blob("model", b"v1") == 1
        for node in redis_cluster.running_nodes():
            node.command("SCRIPT", "FLUSH")
        again = await store.increment({key: {"n": 1} for key in keys}, batch_id="b2")
        assert again == {key: {"n": 2.0} for key in keys}
        assert await store.increment({keys[0]: {"n": 1}}, batch_id="b2") == {keys[0]: {"n": 2.0}}
        assert await store.put_blob("model", b"v2") == 2
        assert await store.get_blob("model", 1) == (1, b"v1")
        await store.close()
        assert await client.ping()  # still open: the store did not own it
        await client.aclose()

    run(scenario())


def test_a_redis_cluster_url_needs_host_and_port() -> None:
    from personalize.stores.state_redis import RedisStateStore

    for url in ("redis+cluster://", "redis+cluster://node", "redis+cluster://h:0,h:1/"):
        with pytest.raises(ValueError, match="host:port"):
            RedisStateStore(url)


def test_blobs_are_versioned_and_only_the_newest_are_kept(make_state: StateFactory) -> None:
    async def scenario() -> None:
        store = make_state()
        assert await store.get_blob("model") is None
        big = bytes(range(256)) * 4096  # 1 MiB, every byte value
        versions = [await store.put_blob("model", b"v%d" % i, keep=2) for i in range(1, 4)]
        assert versions == [1, 2, 3]
        assert await store.get_blob("model") == (3, b"v3")
        assert await store.get_blob("model", 2) == (2, b"v2")
        assert await store.get_blob("model", 1) is None  # only two kept
        assert await store.put_blob("model", big) == 4
        assert await store.get_blob("model") == (4, big)
        assert await store.get_blob("other") is None
        await store.close()

    run(scenario())


@pytest.mark.parametrize("key", ["{tag}", "}x{", "naïve/ünï|*", "a\nb", "k" * 512, "~x"])
def test_odd_keys_are_kept_apart(make_state: StateFactory, key: str) -> None:
    async def scenario() -> None:
        store = make_state()
        await store.increment({key: {"n": 1}, "plain": {"n": 5}})
        await store.put_values({key: b"\x00\xff"}, ttl=60)
        assert await store.counters([key]) == {key: {"n": 1.0}}
        assert await store.values([key]) == {key: b"\x00\xff"}
        await store.close()

    run(scenario())


BAD_INCREMENTS: list[Any] = [
    {"": {"n": 1}},
    {"k" * 513: {"n": 1}},
    {"k": {"n": float("nan")}},
    {"k": {"n": float("inf")}},
    {"k": {"n": 1e300}},
    {"k": {"n": True}},
    {"k": {"n": "1"}},
    {"k": {"~b": 1}},
    {"k": {"": 1}},
    {3: {"n": 1}},
]


@pytest.mark.parametrize("changes", BAD_INCREMENTS)
def test_absurd_increments_are_refused_before_anything_is_written(
    make_state: StateFactory, changes: Any
) -> None:
    async def scenario() -> None:
        store = make_state()
        with pytest.raises(ValueError):
            await store.increment({"good": {"n": 1}, **changes})
        assert await store.counters(["good"]) == {}
        await store.close()

    run(scenario())


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), 1e12, "5", True])
def test_bad_ttls_and_values_are_refused(make_state: StateFactory, ttl: Any) -> None:
    async def scenario() -> None:
        store = make_state()
        with pytest.raises(ValueError):
            await store.put_values({"k": b"v"}, ttl=ttl)
        with pytest.raises(ValueError):
            await store.increment({"k": {"n": 1}}, ttl=ttl)
        with pytest.raises(ValueError):
            await store.put_values({"k": "text"}, ttl=60)  # type: ignore[dict-item]
        with pytest.raises(ValueError):
            await store.put_values({"k": b"x" * 70_000}, ttl=60)
        with pytest.raises(ValueError):
            await store.put_blob("m", b"x", keep=0)
        assert await store.values(["k"]) == {} and await store.counters(["k"]) == {}
        await store.close()

    run(scenario())


def test_sqlite_state_survives_a_new_store_on_the_same_file(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "p.sqlite3"
        first = SQLiteStateStore(path)
        await first.increment({"a|*": {"trials": 3}})
        await first.put_blob("model", b"snap")
        await first.close()
        second = SQLiteStateStore(path)
        assert await second.counters(["a|*"]) == {"a|*": {"trials": 3.0}}
        assert await second.get_blob("model") == (1, b"snap")
        await second.close()

    run(scenario())


def test_the_default_state_store_is_on_the_profile_stores_backend(tmp_path: Path) -> None:
    sqlite = Personalizer(secret_key=SECRET, store=SQLiteStore(tmp_path / "p.sqlite3"))
    state = sqlite.state.store
    assert isinstance(state, SQLiteStateStore) and state.path == tmp_path / "p.sqlite3"
    memory = Personalizer(secret_key=SECRET, store=MemoryStore())
    assert isinstance(memory.state.store, MemoryStateStore)
    chosen = MemoryStateStore()
    explicit = Personalizer(
        secret_key=SECRET, store=SQLiteStore(tmp_path / "q.sqlite3"), state_store=chosen
    )
    assert explicit.state.store is chosen
    for p in (sqlite, memory, explicit):
        asyncio.run(p.aclose())


def test_the_default_state_store_of_redis_shares_its_server_and_prefix(redis_prefix: str) -> None:
    from personalize.stores.redis import RedisStore
    from personalize.stores.state_redis import RedisStateStore

    async def scenario() -> None:
        personalizer = Personalizer(
            secret_key=SECRET, store=RedisStore(REDIS_URL, prefix=redis_prefix)
        )
        state = personalizer.state.store
        assert isinstance(state, RedisStateStore) and state.prefix == redis_prefix
        await state.increment({"a": {"n": 1}})
        await personalizer.aclose()  # closes the shared client once, after the state store
        other = RedisStateStore(REDIS_URL, prefix=redis_prefix)
        assert await other.counters(["a"]) == {"a": {"n": 1.0}}
        await other.close()

    run(scenario())


def test_an_unreachable_redis_fails_fast_with_store_unavailable() -> None:
    from personalize.stores.state_redis import RedisStateStore

    async def scenario() -> None:
        store = RedisStateStore("redis://127.0.0.1:1/0", timeout=0.2)
        with pytest.raises(StoreUnavailableError):
            await store.increment({"a": {"n": 1}})
        started = time.perf_counter()
        with pytest.raises(StoreUnavailableError):
            await store.counters(["a"])  # the circuit is open: no new connection attempt
        assert time.perf_counter() - started < 0.05
        await store.close()

    run(scenario())


def test_read_answers_counters_and_values_together(make_state: StateFactory) -> None:
    """What a page reads before it decides (caps and session picks), in one call: the same
    answers as ``counters`` and ``values`` apart."""

    async def scenario() -> None:
        store = make_state()
        await store.increment({"caps:v:1": {"hero/a": 2.0}, "arm:hero/a|*": {"trials": 1}})
        await store.put_values({"pick:v:1|1.0|hero": b"a\nrule"}, ttl=60)
        counters = ["caps:v:1", "none", "arm:hero/a|*", "caps:v:1"]
        values = ["pick:v:1|1.0|hero", "pick:v:1|1.0|banner"]
        together = await store.read(counters, values)
        assert together == (await store.counters(counters), await store.values(values))
        assert together[0]["caps:v:1"] == {"hero/a": 2.0}
        assert together[1] == {"pick:v:1|1.0|hero": b"a\nrule"}
        assert await store.read([], values) == ({}, together[1])
        assert await store.read(counters, []) == (together[0], {})
        await store.close()

    run(scenario())


def test_sqlite_writes_go_on_after_an_erasure_whatever_the_garbage_collector_does(
    tmp_path: Path,
) -> None:
    """An erasure's WAL checkpoint once left its cursor unread: whenever that cursor outlived
    the call (a reference cycle, the collector late), the next COMMIT failed with "SQL
    statements in progress" and left the connection inside a transaction, so every later
    write failed too (a flaky test under load). The collector off makes it happen each time."""

    async def scenario() -> None:
        store = SQLiteStateStore(tmp_path / "state.sqlite3")
        gc.disable()
        try:
            for _ in range(20):
                await store.increment({"a": {"n": 1}})
                assert await store.delete(["a"]) == 1
                await store.increment({"b": {"n": 1}})
                assert await store.counters(["a"]) == {}
        finally:
            gc.enable()
        await store.close()

    run(scenario())
