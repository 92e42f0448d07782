"""The state stores' change feed, and the state service using copies of decision state past
``cache_ttl`` while no other writer changed them (personalize/stores/state_feed.py)."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import pytest

from personalize.services.counters import FEED_TRUST
from personalize.services.state import StateService
from personalize.stores.state import StateStore
from personalize.stores.state_feed import FEED_MEMORY, MAX_ENTRIES, MemoryFeed, key_tag
from personalize.stores.state_memory import MemoryStateStore
from personalize.stores.state_sqlite import SQLiteStateStore
from tests.conftest import REDIS_URL


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "sqlite", "redis", "redis_cluster"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], StateStore]:
    """A factory of the store (called in the test's event loop: a Redis client is bound to
    the loop it was made in)."""
    if request.param == "memory":
        return MemoryStateStore
    if request.param == "redis":
        from personalize.stores.state_redis import RedisStateStore

        prefix = request.getfixturevalue("redis_prefix")
        return lambda: RedisStateStore(REDIS_URL, prefix=prefix)
    if request.param == "redis_cluster":  # a real cluster: 3 primaries, 3 replicas
        from personalize.stores.state_redis import RedisStateStore

        url = request.getfixturevalue("redis_cluster").url
        prefix = request.getfixturevalue("redis_cluster_prefix")
        return lambda: RedisStateStore(url, prefix=prefix)
    return lambda: SQLiteStateStore(tmp_path / "state.sqlite3")


# -- the stores' feed ----------------------------------------------------------------------


def test_every_write_is_in_the_feed_with_its_writer_and_tags(
    make_store: Callable[[], StateStore],
) -> None:
    async def scenario() -> None:
        feed_store = make_store()
        assert feed_store.has_feed
        await feed_store.put_blob("model", b"x")  # (blobs are not in the feed)
        start = (await feed_store.changes(None)).position
        await feed_store.increment({"caps:v:1": {"hero": 1.0}}, batch_id="w1-60#4")
        await feed_store.put_values({"pick:v:1|0|hero": b"a"}, ttl=60, writer="w2")
        await feed_store.put_values(
            {"pick:v:1|0|hero": b"b"}, ttl=60, only_if_absent=True, writer="w3"
        )  # kept the first: nothing written (Redis reports the attempt: a spare read)
        await feed_store.delete(["caps:v:1"])
        found = await feed_store.changes(start)
        assert found.position > start  # (consecutive on SQLite and in memory, not in Redis)
        entries = [e for e in found.entries or [] if e[0] != "w3"]
        # (A write that first ran a script on a Redis node adds its entry again after it.)
        entries = [e for i, e in enumerate(entries) if i == 0 or e != entries[i - 1]]
        assert entries == [
            ("w1-60", [key_tag("caps:v:1")]),
            ("w2", [key_tag("pick:v:1|0|hero")]),
            ("", [key_tag("caps:v:1")]),  # an erasure: anyone's
        ]
        assert (await feed_store.changes(found.position)).entries == []
        # A position from elsewhere (ahead of the feed) is not trusted.
        assert (await feed_store.changes(found.position + 5)).entries is None
        await feed_store.close()

    run(scenario())


def test_the_feed_keeps_no_key_so_an_erasure_leaves_none_in_it(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = SQLiteStateStore(path)
    run(store.increment({"caps:v:visitor-4711": {"hero": 1.0}}, batch_id="w#1"))
    run(store.delete(["caps:v:visitor-4711"]))
    run(store.close())
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT writer, tags FROM state_changes").fetchall()
    conn.close()
    assert len(rows) == 2 and all("4711" not in tags for _, tags in rows)
    assert b"visitor-4711" not in path.read_bytes()  # (secure_delete: not on disk either)


def test_a_reader_left_behind_is_told_it_lost_track(tmp_path: Path) -> None:
    clock = Clock(0.0)
    store = SQLiteStateStore(tmp_path / "state.sqlite3", clock=clock)

    async def scenario() -> None:
        await store.increment({"a": {"n": 1.0}})
        before = (await store.changes(None)).position
        await store.increment({"b": {"n": 1.0}})
        clock.now = FEED_MEMORY + 120.0  # the next write prunes (once a minute) the old entries
        store._last_prune = float("-inf")
        await store.increment({"c": {"n": 1.0}})
        assert (await store.changes(before)).entries is None  # "b" is gone from the feed
        now = (await store.changes(None)).position
        await store.increment({"d": {"n": 1.0}})
        assert (await store.changes(now)).entries == [("", [key_tag("d")])]
        await store.close()

    run(scenario())


def test_a_reader_behind_what_redis_trimmed_from_the_stream_lost_track(redis_prefix: str) -> None:
    import redis

    from personalize.stores.state_redis import RedisStateStore

    store = RedisStateStore(REDIS_URL, prefix=redis_prefix)

    async def scenario() -> None:
        start = (await store.changes(None)).position
        await store.put_values({"a": b"1"}, ttl=60, writer="w")
        assert (await store.changes(start)).entries == [("w", [key_tag("a")])]
        client = redis.Redis.from_url(REDIS_URL)
        with client.pipeline(transaction=False) as pipe:  # as 10,200 writes would
            for _ in range(MAX_ENTRIES + 200):
                pipe.xadd(store.feed_key, {"w": "x", "t": "1"}, maxlen=MAX_ENTRIES)
            pipe.execute()
        client.close()
        assert (await store.changes(start)).entries is None
        now = (await store.changes(None)).position
        await store.delete(["a"])
        assert (await store.changes(now)).entries == [("", [key_tag("a")])]
        await store.close()

    run(scenario())


def test_a_reader_too_far_behind_is_told_it_lost_track() -> None:
    store = MemoryStateStore()

    async def scenario() -> None:
        start = (await store.changes(None)).position
        for i in range(MAX_ENTRIES + 1):
            await store.put_values({f"k{i}": b"v"}, ttl=None)
        assert (await store.changes(start)).entries is None
        assert len((await store.changes(start + 1)).entries or []) == MAX_ENTRIES

    run(scenario())


def test_a_memory_feed_gives_each_position_once_over_many_trims_and_prunes() -> None:
    """Each read finds its tail by bisection: every position from the one asked for, in
    order, whatever was trimmed (past 2 x MAX_ENTRIES) or pruned (older than FEED_MEMORY)."""
    feed = MemoryFeed()
    seen: list[str] = []
    position = feed.read(None).position
    for i in range(2 * MAX_ENTRIES + 500):
        feed.log(f"w{i}", [f"k{i}"], now=float(i))
        if i % 997 == 0:
            found = feed.read(position)
            assert found.entries is not None
            seen += [writer for writer, _ in found.entries]
            position = found.position
        if i == MAX_ENTRIES:
            feed.prune(now=float(i) + FEED_MEMORY - 100)  # the oldest hundred go
    found = feed.read(position)
    seen += [writer for writer, _ in found.entries or []]
    assert seen == [f"w{i}" for i in range(2 * MAX_ENTRIES + 500)]
    assert feed.read(found.position).entries == []  # nothing new
    assert feed.read(found.position - 3).entries == [
        (f"w{i}", [key_tag(f"k{i}")]) for i in range(2 * MAX_ENTRIES + 497, 2 * MAX_ENTRIES + 500)
    ]
    assert feed.read(0).entries is None  # trimmed long ago: lost track


# -- the service: copies past cache_ttl --------------------------------------------------


class Counting(MemoryStateStore):
    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.reads: list[list[str]] = []
        self.feed_reads = 0

    async def read(
        self, counters: Sequence[str], values: Sequence[str]
    ) -> tuple[dict[str, dict[str, float]], dict[str, bytes]]:
        self.reads.append([*counters, *values])
        return await super().read(counters, values)

    async def changes(self, after: int | None) -> Any:
        self.feed_reads += 1
        return await super().changes(after)


def _two_workers(clock: Clock) -> tuple[Counting, StateService, StateService]:
    store = Counting(clock)
    return (
        store,
        StateService(store, flush_interval=0, cache_ttl=1.0, clock=clock),
        StateService(store, flush_interval=0, cache_ttl=1.0, clock=clock),
    )


def test_a_copy_nobody_else_changed_is_used_past_cache_ttl_without_a_read() -> None:
    clock = Clock()
    store, mine, _ = _two_workers(clock)

    async def scenario() -> None:
        await mine.prefetch(counters=["caps:v:1"], values=["pick:v:1|0|hero"])
        assert store.reads == [["caps:v:1", "pick:v:1|0|hero"]]
        for _ in range(1, 20):  # pages 5 s apart: each copy is far older than cache_ttl
            clock.now += 5.0
            await mine.prefetch(counters=["caps:v:1"], values=["pick:v:1|0|hero"])
        assert store.reads == [["caps:v:1", "pick:v:1|0|hero"]]  # never read again
        assert store.feed_reads == 20  # one small feed read per page instead
        assert mine.stats["feed_reads"] == 20

    run(scenario())


def test_what_another_worker_changed_is_read_before_the_next_page() -> None:
    clock = Clock()
    store, mine, theirs = _two_workers(clock)

    async def scenario() -> None:
        await mine.prefetch(counters=["caps:v:1"], values=["pick:v:1|0|hero"])
        clock.now += 5.0
        theirs.add("caps:v:1", "hero", 1.0, ttl=3600)
        theirs.put_value_soon("pick:v:1|0|hero", b"b\nrule", ttl=60, only_if_absent=True)
        await theirs.settle()
        clock.now += 5.0
        await mine.prefetch(counters=["caps:v:1"], values=["pick:v:1|0|hero"])
        assert store.reads[-1] == ["caps:v:1", "pick:v:1|0|hero"]
        assert mine.cached("caps:v:1") == {"hero": 1.0}
        assert mine.cached_value("pick:v:1|0|hero") == b"b\nrule"
        clock.now += 5.0  # and then, nothing new: no read
        reads = len(store.reads)
        await mine.prefetch(counters=["caps:v:1"], values=["pick:v:1|0|hero"])
        assert len(store.reads) == reads

    run(scenario())


def test_its_own_writes_do_not_make_a_worker_read_again() -> None:
    clock = Clock()
    store, mine, _ = _two_workers(clock)

    async def scenario() -> None:
        await mine.prefetch(counters=["caps:v:1"], values=["pick:v:1|0|hero"])
        for _ in range(6):  # six pages, each counting a view and keeping the pick
            clock.now += 5.0
            await mine.prefetch(counters=["caps:v:1"], values=["pick:v:1|0|hero"])
            mine.add("caps:v:1", "hero", 1.0, ttl=3600)
            mine.put_value_soon("pick:v:1|0|hero", b"a\nrule", ttl=60, only_if_absent=True)
            await mine.settle()
        assert len(store.reads) == 1
        assert mine.cached("caps:v:1") == {"hero": 6.0}

    run(scenario())


def test_a_copy_is_trusted_only_while_the_feed_is_read(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    store, mine, _ = _two_workers(clock)
    visitors = [f"caps:v:{i}" for i in range(50)]

    class Down(Exception):
        pass

    async def scenario() -> None:
        await mine.prefetch(counters=visitors)
        clock.now += 5.0
        original = store.changes
        tried = 0

        async def failing(after: int | None) -> Any:
            nonlocal tried
            tried += 1
            raise Down("the feed cannot be read")

        store.changes = failing  # type: ignore[method-assign]
        for key in visitors:  # 50 visitors' pages within a tenth of a second
            clock.now += 0.002
            await mine.prefetch(counters=[key])  # cannot tell: read, as without a feed
        assert len(store.reads) == 51 and tried == 1  # the feed is asked again 0.25 s later
        assert mine.stats["feed_failed"] == 1
        clock.now += 5.0
        await mine.prefetch(counters=visitors[:1])
        assert tried == 2 and len(store.reads) == 52
        failures = [r for r in caplog.records if "feed failed" in r.getMessage()]
        assert len(failures) == 1  # logged once, not per page
        store.changes = original  # type: ignore[method-assign]
        clock.now += 5.0
        reads = len(store.reads)
        await mine.prefetch(counters=visitors[:1])  # it answers again, from where it was:
        clock.now += 5.0  # what changed meanwhile would be reported; nothing did
        await mine.prefetch(counters=visitors[:1])
        assert len(store.reads) == reads
        assert any("answers again" in r.getMessage() for r in caplog.records)

    with caplog.at_level("INFO", logger="personalize.state"):
        run(scenario())


def test_a_copy_read_while_the_feed_reported_its_change_is_not_trusted() -> None:
    """The race: a read begins, another worker writes, the feed is read and reports it, the
    read (that may have missed the write) ends. Its copy lasts cache_ttl, not longer."""
    clock = Clock()
    store, mine, theirs = _two_workers(clock)

    async def scenario() -> None:
        await mine.poll_feed()
        clock.now += 1.0
        begun = clock.now  # a read of "caps:v:1" begins here and sees nothing
        clock.now += 0.001
        await theirs.store.increment({"caps:v:1": {"hero": 1.0}}, batch_id="theirs#1")
        await mine.poll_feed()  # reports the change
        mine._take_counters(["caps:v:1"], {}, mine._seq, begun)  # the read ends, late
        assert mine.cached("caps:v:1") == {}  # fresh for cache_ttl ...
        clock.now += 5.0
        await mine.prefetch(counters=["caps:v:1"])  # ... then read again
        assert store.reads[-1] == ["caps:v:1"] and mine.cached("caps:v:1") == {"hero": 1.0}

    run(scenario())


def test_no_copy_is_trusted_longer_than_feed_trust() -> None:
    clock = Clock()
    store, mine, _ = _two_workers(clock)

    async def scenario() -> None:
        await mine.prefetch(counters=["caps:v:1"])
        for _ in range(int(FEED_TRUST // 50) + 1):
            clock.now += 50.0
            await mine.prefetch(counters=["caps:v:1"])
        assert len(store.reads) == 2  # once more after FEED_TRUST seconds

    run(scenario())


def test_the_first_feed_read_trusts_only_copies_read_after_it() -> None:
    clock = Clock()
    _, mine, theirs = _two_workers(clock)

    async def scenario() -> None:
        await mine.counters(["caps:v:1"])  # read before the feed was ever read
        await theirs.store.increment({"caps:v:1": {"hero": 1.0}}, batch_id="theirs#1")
        clock.now += 5.0
        await mine.prefetch(counters=["caps:v:1"])
        assert mine.cached("caps:v:1") == {"hero": 1.0}

    run(scenario())


# -- several OS processes on one SQLite file ------------------------------------------------


def _open(where: tuple[str, str]) -> StateStore:
    if where[0] == "sqlite":
        return SQLiteStateStore(where[1])
    from personalize.stores.state_redis import RedisStateStore

    return RedisStateStore(REDIS_URL, prefix=where[1])


def _other_worker(where: tuple[str, str], ready: Any, go: Any) -> None:
    async def work() -> None:
        state = StateService(_open(where), flush_interval=0)
        ready.set()
        go.wait(30)
        state.add("caps:v:1", "hero", 1.0, ttl=3600)
        state.put_value_soon("pick:v:1|0.0|hero", b"theirs\nrule", ttl=60, only_if_absent=True)
        await state.settle()
        await state.aclose()

    asyncio.run(work())


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_worker_process_sees_what_another_process_wrote_before_its_next_page(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    where = (
        ("sqlite", str(tmp_path / "state.sqlite3"))
        if backend == "sqlite"
        else ("redis", request.getfixturevalue("redis_prefix"))
    )
    context = multiprocessing.get_context("spawn")
    ready, go = context.Event(), context.Event()
    other = context.Process(target=_other_worker, args=(where, ready, go))

    async def scenario() -> None:
        store = _open(where)
        mine = StateService(store, flush_interval=0, cache_ttl=0.2)
        keys = {"counters": ["caps:v:1"], "values": ["pick:v:1|0.0|hero"]}
        await mine.prefetch(**keys)
        await asyncio.sleep(0.5)  # older than cache_ttl: kept on the feed's word
        await mine.prefetch(**keys)
        assert mine.stats["reads"] == 1 and mine.cached("caps:v:1") == {}
        other.start()
        assert await asyncio.to_thread(ready.wait, 30)
        go.set()
        await asyncio.to_thread(other.join, 60)
        assert other.exitcode == 0
        await asyncio.sleep(0.3)
        await mine.prefetch(**keys)  # the next page: the feed says the other process wrote
        assert mine.stats["reads"] == 2
        assert mine.cached("caps:v:1") == {"hero": 1.0}
        assert mine.cached_value("pick:v:1|0.0|hero") == b"theirs\nrule"
        await mine.aclose()

    run(scenario())


def test_a_redis_stream_whose_trimming_cannot_be_seen_vouches_for_nothing() -> None:
    from personalize.stores.state_redis_feed import read_stream, stream_position

    entry = (b"2000-0", {b"w": b"w1", b"t": b"a"})
    redis6 = {"last-generated-id": b"2000-0", "length": 1}  # no max-deleted-entry-id
    assert read_stream(redis6, [entry], stream_position(b"1000-0")).entries is None
    redis7 = {**redis6, "max-deleted-entry-id": b"0-0"}
    assert read_stream(redis7, [entry], stream_position(b"1000-0")).entries == [("w1", [10])]
    trimmed = {**redis6, "max-deleted-entry-id": b"1500-0"}  # an entry after 1000-0 is gone
    assert read_stream(trimmed, [entry], stream_position(b"1000-0")).entries is None
    assert read_stream(RuntimeError("no such key"), [], 5).entries is None  # deleted


# -- through the middleware ------------------------------------------------------------------


def test_a_returning_visitors_pages_read_no_decision_state_and_the_metrics_show_the_feed(
    tmp_path: Path,
) -> None:
    import re
    import time

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from personalize import MemoryStore, PersonalizeMiddleware, get_visitor

    (tmp_path / "home.yaml").write_text(
        "slots:\n  hero:\n    variants:\n      - id: a\n        html: <h1>A</h1>\n"
        "      - id: b\n        html: <h1>B</h1>\n    default: [a, b]\n"
    )

    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse(str(get_visitor(request).decide_sync("hero").content))

    middleware = PersonalizeMiddleware(
        Starlette(routes=[Route("/", home)]),
        secret_key="s" * 32,
        store=MemoryStore(),
        content=tmp_path,
        state_cache_ttl=0.2,
        metrics_public=True,
    )
    store = middleware.personalizer.state.store
    reads: list[list[str]] = []
    read = store.read

    async def recorded(counters: Sequence[str], values: Sequence[str]) -> Any:
        reads.append([*counters, *values])
        return await read(counters, values)

    store.read = recorded  # type: ignore[method-assign]
    user_agent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"
    with TestClient(middleware, headers={"user-agent": user_agent}) as client:
        shown = {client.get("/").text for _ in range(2)}  # the first two pages: read, decide
        before = len(reads)
        for _ in range(5):  # five more, each after the copies' cache_ttl
            time.sleep(0.25)
            shown.add(client.get("/").text)
        assert len(reads) == before  # held: the feed says nobody else changed them
        assert len(shown) == 1  # the session's pick, all along
        text = client.get("/_personalize/metrics").text
    found = re.search(r'personalize_state_feed_reads_total\{result="ok"\} (\S+)', text)
    assert found is not None and float(found[1]) >= 5, text


def test_a_worker_keeps_the_decision_state_of_its_active_visitors() -> None:
    from personalize import MemoryStore, Personalizer
    from personalize.exceptions import ConfigurationError

    pz = Personalizer(secret_key="s" * 32, store=MemoryStore())
    assert pz.state._cache_size == 50_000  # ~10,000 visitors' caps and picks
    assert (
        Personalizer(
            secret_key="s" * 32, store=MemoryStore(), state_cache_size=500
        ).state._cache_size
        == 500
    )
    for bad in (0, 99, 10**8, 1.5, True, "1000"):
        with pytest.raises(ConfigurationError, match="state_cache_size"):
            Personalizer(secret_key="s" * 32, store=MemoryStore(), state_cache_size=bad)

    async def scenario() -> None:  # 8,000 visitors, two slots each: nothing evicted
        state = pz.state
        picks = [f"pick:v:{i}|0.0|{slot}" for i in range(8_000) for slot in ("hero", "banner")]
        await state.prefetch(counters=[f"caps:v:{i}" for i in range(8_000)], values=picks)
        reads = state.stats["reads"]
        await state.prefetch(values=picks)
        assert state.stats["reads"] == reads

    run(scenario())
