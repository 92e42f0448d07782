"""The state service: increments batched after the response, reads cached with a short bound."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import pytest

from personalize.exceptions import StoreError, StoreUnavailableError
from personalize.services.state import MISSING, StateService
from personalize.stores.state import Increments
from personalize.stores.state_memory import MemoryStateStore
from personalize.stores.state_sqlite import SQLiteStateStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recording(MemoryStateStore):
    """A memory store that counts calls and can fail on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.increments: list[tuple[Increments, float | None, str | None]] = []
        self.reads: list[list[str]] = []
        self.fail_reads = False
        self.fail_after_write = 0  # increments that are applied and then reported as failed
        self.fail_before_write = 0

    async def increment(
        self, changes: Increments, *, ttl: float | None = None, batch_id: str | None = None
    ) -> dict[str, dict[str, float]]:
        self.increments.append((changes, ttl, batch_id))
        if self.fail_before_write:
            self.fail_before_write -= 1
            raise StoreUnavailableError("down")
        result = await super().increment(changes, ttl=ttl, batch_id=batch_id)
        if self.fail_after_write:
            self.fail_after_write -= 1
            raise StoreUnavailableError("timed out after the write")
        return result

    async def counters(self, keys: Sequence[str]) -> dict[str, dict[str, float]]:
        self.reads.append(list(keys))
        if self.fail_reads:
            raise StoreUnavailableError("down")
        return await super().counters(keys)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_many_adds_are_one_write_after_the_response() -> None:
    store = Recording()
    state = StateService(store, flush_interval=0)

    async def scenario() -> None:
        for _ in range(50):
            state.add("hero/a|*", "trials")
            state.add("hero/a|mobile/direct", "trials")
        state.add("cap:v1:hero", "views", ttl=60)
        assert store.increments == []  # nothing written during the page
        await asyncio.gather(*(state.settle() for _ in range(5)))  # five responses end
        assert len(store.increments) == 2  # one call per ttl, whoever settled first
        assert {ttl for _, ttl, _ in store.increments} == {None, 60.0}
        found = await store.counters(["hero/a|*", "cap:v1:hero"])
        assert found == {"hero/a|*": {"trials": 50.0}, "cap:v1:hero": {"views": 1.0}}
        assert state.pending == 0 and state.stats["written"] == 3

    run(scenario())


def test_a_worker_sees_its_own_adds_before_they_are_written() -> None:
    state = StateService(Recording(), flush_interval=0)

    async def scenario() -> None:
        assert state.cached("k") is None
        state.add("k", "n", 2)
        assert state.cached("k") == {"n": 2.0}
        assert (await state.counters(["k"]))["k"] == {"n": 2.0}
        await state.settle()
        state.add("k", "n", 1)
        assert (await state.counters(["k"]))["k"] == {"n": 3.0}  # written + buffered, once each
        await state.settle()
        assert state.cached("k") == {"n": 3.0}

    run(scenario())


def test_reads_are_cached_for_the_bound_and_then_see_other_workers() -> None:
    shared = Recording()
    clock = Clock()
    mine = StateService(shared, flush_interval=0, cache_ttl=1.0, clock=clock)
    theirs = StateService(shared, flush_interval=0)

    async def scenario() -> None:
        assert (await mine.counters(["k"]))["k"] == {}
        theirs.add("k", "n", 5)
        await theirs.settle()
        clock.now = 0.5
        assert (await mine.counters(["k"]))["k"] == {}  # cached, within the bound
        reads = len(shared.reads)
        clock.now = 1.6
        assert (await mine.counters(["k", "k"]))["k"] == {"n": 5.0}
        assert len(shared.reads) == reads + 1 and shared.reads[-1] == ["k"]

    run(scenario())


def test_a_write_whose_outcome_was_unknown_is_resent_and_counted_once() -> None:
    store = Recording()
    clock = Clock()
    state = StateService(store, flush_interval=0, retry_backoff=1.0, clock=clock)

    async def scenario() -> None:
        state.add("k", "n", 1)
        store.fail_after_write = 1
        await state.settle()
        assert state.stats["failed"] == 1 and state.pending == 1
        assert state.cached("k") == {"n": 1.0}
        await state.settle()  # within the back-off: nothing sent
        assert len(store.increments) == 1
        clock.now = 2.0
        await state.settle()
        assert len(store.increments) == 2
        assert store.increments[0][2] == store.increments[1][2]  # the same batch id
        assert await store.counters(["k"]) == {"k": {"n": 1.0}}
        assert (await state.counters(["k"]))["k"] == {"n": 1.0}

    run(scenario())


class Slow(Recording):
    """Each increment takes a moment, so that writes can overlap."""

    async def increment(
        self, changes: Increments, *, ttl: float | None = None, batch_id: str | None = None
    ) -> dict[str, dict[str, float]]:
        await asyncio.sleep(0.02)
        return await super().increment(changes, ttl=ttl, batch_id=batch_id)


def test_writes_go_one_at_a_time_in_order_and_a_failed_one_goes_again_first() -> None:
    """A flush that overlaps the write after a response waits for it; a batch whose outcome
    was unknown goes again before the newer one (ordered ids: a store may skip a batch below
    the last one of its writer it applied, so a later batch must never overtake it)."""
    store = Slow()
    state = StateService(store, flush_interval=0, retry_backoff=0.0)

    async def scenario() -> None:
        state.add("k", "n", 1)
        store.fail_after_write = 1  # the first write lands, but is reported as failed
        settling = asyncio.create_task(state.settle())
        await asyncio.sleep(0.005)  # that write is under way ...
        state.add("k", "n", 10)
        await state.flush()  # ... and the flush of the next add waits for it
        await settling
        ids = [batch_id for _, _, batch_id in store.increments]
        assert len(ids) == 3 and ids[0] == ids[1] != ids[2]
        writer, _, first = ids[0].rpartition("#")
        assert ids[2] == f"{writer}#{int(first) + 1}"
        assert await store.counters(["k"]) == {"k": {"n": 11.0}}

    run(scenario())


def test_an_unreachable_store_costs_no_page_and_loses_no_increment() -> None:
    store = Recording()
    clock = Clock()
    state = StateService(store, flush_interval=0, cache_ttl=1.0, clock=clock)

    async def scenario() -> None:
        store.increments.clear()
        await store.increment({"k": {"n": 10}})
        assert (await state.counters(["k"]))["k"] == {"n": 10.0}
        store.fail_reads = True
        store.fail_before_write = 1
        state.add("k", "n", 1)
        await state.settle()
        clock.now = 5.0
        # Stale but known, plus what is buffered: no exception for the page.
        assert (await state.counters(["k", "new"])) == {"k": {"n": 11.0}, "new": {}}
        assert state.stats["read_failed"] == 1
        store.fail_reads = False
        await state.settle()
        assert await store.counters(["k"]) == {"k": {"n": 11.0}}

    run(scenario())


def test_flush_raises_and_keeps_what_it_cannot_write() -> None:
    store = Recording()
    state = StateService(store, flush_interval=0)

    async def scenario() -> None:
        state.add("k", "n", 1)
        store.fail_before_write = 1
        with pytest.raises(StoreError):
            await state.flush()
        assert state.pending == 1
        await state.flush()
        assert await store.counters(["k"]) == {"k": {"n": 1.0}}

    run(scenario())


def test_the_buffer_is_bounded_and_counts_what_it_drops(caplog: pytest.LogCaptureFixture) -> None:
    state = StateService(Recording(), flush_interval=0, max_pending=10)
    for i in range(25):
        state.add(f"k{i}", "n")
    assert state.pending == 10 and state.stats["dropped"] == 15
    assert state.cached("k0") is None and state.cached("k24") == {"n": 1.0}
    assert "dropped" in caplog.text


def test_values_are_put_now_and_cached_for_the_bound() -> None:
    shared = MemoryStateStore()
    clock = Clock()
    mine = StateService(shared, cache_ttl=1.0, clock=clock)
    theirs = StateService(shared)

    async def scenario() -> None:
        assert await mine.value("pick") is None
        assert await theirs.put_value("pick", b"b", ttl=60, only_if_absent=True) == b"b"
        assert await mine.value("pick") is None  # cached "none", within the bound
        clock.now = 1.5
        assert await mine.put_value("pick", b"a", ttl=60, only_if_absent=True) == b"b"
        assert await mine.value("pick") == b"b"

    run(scenario())


def test_delete_drops_buffered_increments_too() -> None:
    store = Recording()
    state = StateService(store, flush_interval=0)

    async def scenario() -> None:
        state.add("k", "n")
        await state.put_value("k", b"x", ttl=60)
        await state.delete(["k"])
        await state.settle()
        assert await store.counters(["k"]) == {} and await state.value("k") is None

    run(scenario())


def test_blobs_pass_through() -> None:
    state = StateService(MemoryStateStore())

    async def scenario() -> None:
        assert await state.put_blob("m", b"one") == 1
        assert await state.get_blob("m") == (1, b"one")

    run(scenario())


def test_aclose_writes_what_is_buffered(tmp_path: Path) -> None:
    async def scenario() -> None:
        state = StateService(SQLiteStateStore(tmp_path / "s.sqlite3"), flush_interval=10)
        state.add("k", "n", 3)
        await state.aclose()
        again = SQLiteStateStore(tmp_path / "s.sqlite3")
        assert await again.counters(["k"]) == {"k": {"n": 3.0}}
        await again.close()

    run(scenario())


def test_bad_adds_are_refused_at_once() -> None:
    state = StateService(MemoryStateStore())
    with pytest.raises(ValueError):
        state.add("k", "n", float("nan"))
    with pytest.raises(ValueError):
        state.add("", "n")
    with pytest.raises(ValueError):
        state.add("k", "n", ttl=-1)
    assert state.pending == 0


def test_a_read_older_than_a_write_does_not_replace_it() -> None:
    """A read that started before this worker's write finished must not cache the counters
    from before that write over the ones the write returned."""

    class SlowReads(MemoryStateStore):
        def __init__(self) -> None:
            super().__init__()
            self.gate = asyncio.Event()

        async def counters(self, keys: Sequence[str]) -> dict[str, dict[str, float]]:
            found = await super().counters(keys)
            await self.gate.wait()
            return found

    async def scenario() -> None:
        store = SlowReads()
        state = StateService(store, flush_interval=0)
        reading = asyncio.create_task(state.counters(["k"]))
        await asyncio.sleep(0)
        state.add("k", "n", 1)
        await state.settle()
        store.gate.set()
        assert (await reading)["k"] == {"n": 1.0}
        assert state.cached("k") == {"n": 1.0}

    asyncio.run(scenario())


def test_values_put_soon_are_seen_at_once_and_written_after_the_response() -> None:
    store = MemoryStateStore()
    state = StateService(store, flush_interval=0)

    async def scenario() -> None:
        assert state.cached_value("pick") is MISSING
        state.put_value_soon("pick", b"a", ttl=60, only_if_absent=True)
        assert state.cached_value("pick") == b"a"
        assert await store.values(["pick"]) == {}
        await state.settle()
        assert await store.values(["pick"]) == {"pick": b"a"}

    run(scenario())


def test_a_pick_put_soon_loses_to_the_one_another_worker_wrote_first() -> None:
    store = MemoryStateStore()
    mine, theirs = StateService(store, flush_interval=0), StateService(store, flush_interval=0)

    async def scenario() -> None:
        mine.put_value_soon("pick", b"mine", ttl=60, only_if_absent=True)
        await theirs.put_value("pick", b"theirs", ttl=60, only_if_absent=True)
        await mine.settle()
        assert mine.cached_value("pick") == b"theirs"
        mine.put_value_soon("pick", b"again", ttl=60, only_if_absent=True)
        assert mine.cached_value("pick") == b"theirs"  # a known value wins over a new first pick

    run(scenario())


def test_what_was_asked_from_memory_is_read_after_the_response() -> None:
    store = Recording()
    clock = Clock()
    state = StateService(store, flush_interval=0, cache_ttl=1.0, clock=clock)

    async def scenario() -> None:
        await store.increment({"arm": {"trials": 4}})
        await store.put_values({"pick": b"a"}, ttl=60)
        assert state.cached("arm") is None and state.cached_value("pick") is MISSING
        await state.settle()  # a response ends: the keys asked for are read
        assert state.cached("arm") == {"trials": 4.0} and state.cached_value("pick") == b"a"
        reads = len(store.reads)
        await state.settle()
        assert len(store.reads) == reads  # fresh now: nothing to read

    run(scenario())


class WithoutFeed(Recording):
    """As a store that keeps no change feed (Redis): copies last ``cache_ttl``."""

    has_feed = False


def test_prefetch_reads_only_what_is_missing_or_stale() -> None:
    store = WithoutFeed()  # (with a feed: tests/test_state_feed.py)
    clock = Clock()
    state = StateService(store, cache_ttl=1.0, clock=clock)

    async def scenario() -> None:
        await state.prefetch(counters=["a", "b"], values=["v"])
        assert store.reads == [["a", "b"]]
        await state.prefetch(counters=["a", "b", "c"])
        assert store.reads[-1] == ["c"]
        clock.now = 2.0
        await state.prefetch(counters=["a"])
        assert store.reads[-1] == ["a"]

    run(scenario())


def test_a_failed_write_is_sent_again_after_the_back_off_without_a_request() -> None:
    """The last response before the visitors left saw its write fail: nothing else comes to
    call settle(), so the service does, once the back-off is over."""
    store = Recording()
    state = StateService(store, flush_interval=0, retry_backoff=0.05)

    async def scenario() -> None:
        state.add("k", "n", 1)
        state.put_value_soon("pick:v|1.0|hero", b"a", ttl=60)
        store.fail_before_write = 1
        await state.settle()
        assert state.stats["failed"] == 1 and state.pending == 1
        for _ in range(100):  # no settle() from here on
            if not state.pending:
                break
            await asyncio.sleep(0.01)
        assert state.pending == 0 and len(store.increments) == 2
        assert await store.counters(["k"]) == {"k": {"n": 1.0}}
        assert await store.values(["pick:v|1.0|hero"]) == {"pick:v|1.0|hero": b"a"}
        await state.aclose()

    run(scenario())
