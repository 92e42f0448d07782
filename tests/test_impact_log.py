"""The impact log: exposures and attributed outcomes in the state store, on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

import pytest

from personalize.services import impact
from personalize.services.impact import Exposure, ImpactLog, day_of
from personalize.services.impact_records import day_key
from personalize.stores.state import StateStore
from personalize.stores.state_memory import MemoryStateStore
from personalize.stores.state_sqlite import SQLiteStateStore
from tests.conftest import REDIS_URL

StateFactory = Callable[[], StateStore]
DAY = 86_400.0
T0 = 1_790_000_000.0  # a day's start is not needed: every event below falls on one UTC day


@pytest.fixture(params=["memory", "sqlite", "redis", "redis_cluster"])
def make_state(request: pytest.FixtureRequest, tmp_path: Path) -> StateFactory:
    if request.param == "memory":
        shared = MemoryStateStore()
        return lambda: shared
    if request.param == "redis":
        from personalize.stores.state_redis import RedisStateStore

        prefix = request.getfixturevalue("redis_prefix")
        return lambda: RedisStateStore(REDIS_URL, prefix=prefix)
    if request.param == "redis_cluster":  # a real cluster: 3 primaries, 3 replicas
        from personalize.stores.state_redis import RedisStateStore

        url = request.getfixturevalue("redis_cluster").url  # redis+cluster://h:p,h:p,.../
        prefix = request.getfixturevalue("redis_cluster_prefix")
        return lambda: RedisStateStore(url, prefix=prefix)
    return lambda: SQLiteStateStore(tmp_path / "state.sqlite3")


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def exposure(unit: str, arm: str = "personalized", ts: float = T0, slot: str = "hero") -> Exposure:
    return Exposure(unit, slot, "a", arm, arm, "uk", ts)  # type: ignore[arg-type]


async def totals(log: ImpactLog, now: float = T0) -> dict[str, float]:
    """Every daily field summed over the days read."""
    out: dict[str, float] = {}
    for _, fields in await log.daily(now + DAY, days=30):
        for name, amount in fields.items():
            out[name] = out.get(name, 0.0) + amount
    return out


def test_exposures_count_visitors_once_and_outcomes_in_the_window(
    make_state: StateFactory,
) -> None:
    async def scenario() -> None:
        store = make_state()
        log = ImpactLog(store, window=DAY, flush_interval=0)
        log.exposed(exposure("v:1"))
        log.exposed(exposure("v:1", ts=T0 + 60))  # again: still one visitor
        log.exposed(exposure("v:2", "holdout"))
        log.exposed(exposure("v:3"))
        log.converted("v:1", 10.0, T0 + 120)
        assert await log.flush()
        log.converted("v:1", 30.0, T0 + 600)  # a second order of the same visitor, later batch
        log.converted("v:2", 5.0, T0 + 300)
        log.converted("v:3", 99.0, T0 + 2 * DAY)  # after the window: counts for nothing
        log.converted("v:4", 7.0, T0 + 300)  # never exposed
        await log.settle()
        assert log.pending == 0
        found = await totals(log)
        for scope in ("site", "slot/hero", "segment/hero/uk"):
            assert found[f"{scope}|personalized|visitors"] == 2
            assert found[f"{scope}|holdout|visitors"] == 1
            assert found[f"{scope}|personalized|converted"] == 1  # v:1 once, v:3 too late
            assert found[f"{scope}|personalized|value"] == 40.0
            assert found[f"{scope}|personalized|value_sq"] == 1600.0  # (10 + 30)², not 10² + 30²
            assert found[f"{scope}|holdout|value_sq"] == 25.0
        assert log.stats["exposures"] == 4 and log.stats["outcomes"] == 5
        await store.close()

    run(scenario())


def test_an_order_reported_twice_counts_once(make_state: StateFactory) -> None:
    async def scenario() -> None:
        store = make_state()
        log = ImpactLog(store, window=DAY, flush_interval=0)
        log.exposed(exposure("u:ann"))
        log.converted("u:ann", 20.0, T0 + 10, ref="o-1")
        log.converted("u:ann", 20.0, T0 + 10, ref="o-1")  # twice in one batch
        await log.flush()
        log.converted("u:ann", 20.0, T0 + 20, ref="o-1")  # a retried events API call
        log.converted("u:ann", 5.0, T0 + 30, ref="o-2")
        await log.flush()
        found = await totals(log)
        assert found["site|personalized|value"] == 25.0
        assert found["site|personalized|converted"] == 1
        await store.close()

    run(scenario())


def test_forget_erases_a_visitors_keys_and_buffer_and_keeps_the_daily_sums(
    make_state: StateFactory,
) -> None:
    async def scenario() -> None:
        store = make_state()
        log = ImpactLog(store, window=DAY, flush_interval=0)
        for unit in ("u:ann", "v:anon", "u:ann}:o:x", "u:ann|b"):  # odd ids stay apart
            log.exposed(exposure(unit))
            log.converted(unit, 20.0, T0 + 10, ref="o-1")
        await log.flush()
        log.converted("u:ann", 5.0, T0 + 30, ref="o-2")  # still buffered at the erasure
        before = await totals(log)
        assert await log.forget(["u:ann", "v:anon"]) == 6
        assert log.pending == 0
        keys = set(await store.keys("pz:impact:{"))
        for unit in ("u:ann}:o:x", "u:ann|b"):
            assert {f"pz:impact:{{{unit}}}:{k}" for k in ("n", "x", "o:o-1")} <= keys
        assert len(keys) == 6
        assert await totals(log) == before  # the aggregate counts name no one
        await store.close()

    run(scenario())


def test_a_visitors_keys_share_one_slot_of_a_redis_cluster(
    redis_cluster: Any, redis_cluster_prefix: str
) -> None:
    """Counters, exposure times and orders of one visitor are hash-tagged to one slot (one
    node holds all of a visitor's impact); different visitors spread over the primaries."""
    from redis.crc import key_slot

    from personalize.stores.state_redis import RedisStateStore

    async def scenario() -> None:
        store = RedisStateStore(redis_cluster.url, prefix=redis_cluster_prefix)
        log = ImpactLog(store, window=DAY, flush_interval=0)
        units = [f"v:{i}" for i in range(24)]
        for unit in units:
            log.exposed(exposure(unit))
            log.converted(unit, 2.0, T0 + 10, ref="o-1")
        assert await log.flush()
        slots: dict[str, set[int]] = {}
        with redis_cluster.client() as client:
            for raw in client.scan_iter(match=f"{redis_cluster_prefix}*", count=1000):
                key = raw.decode()
                if "pz:impact:{v:" in key:
                    unit = key.split("pz:impact:{", 1)[1].split("}", 1)[0]
                    slots.setdefault(unit, set()).add(key_slot(raw))
        assert sorted(slots) == sorted(units)
        assert all(len(found) == 1 for found in slots.values())  # :n, :x and :o:o-1 together
        owners = {redis_cluster.primary_for_key(f"{{pz:impact:{{{u}}}") for u in units}
        assert len(owners) == 3  # and the visitors are spread over every primary
        assert (await totals(log))["site|personalized|value"] == 48.0
        assert await log.forget(units[:5]) == 15
        await store.close()

    run(scenario())


def test_days_are_kept_apart_and_read_oldest_first(make_state: StateFactory) -> None:
    async def scenario() -> None:
        store = make_state()
        log = ImpactLog(store, window=7 * DAY, flush_interval=0)
        log.exposed(exposure("v:1", ts=T0))
        log.exposed(exposure("v:2", ts=T0 + 2 * DAY))
        log.converted("v:1", 3.0, T0 + 2 * DAY + 5)
        await log.flush()
        days = await log.daily(T0 + 2 * DAY, days=5)
        assert [d for d, _ in days] == [day_of(T0), day_of(T0 + 2 * DAY)]
        assert days[0][1] == {f"{s}|personalized|visitors": 1.0 for s in _scopes()}
        assert days[1][1]["site|personalized|visitors"] == 1.0
        assert days[1][1]["site|personalized|value"] == 3.0
        assert await log.daily(T0 + 2 * DAY, days=1) == days[1:]
        await store.close()

    run(scenario())


def _scopes() -> tuple[str, ...]:
    return ("site", "slot/hero", "segment/hero/uk")


class FlakyStore(MemoryStateStore):
    """Applies an increment, then fails as if the answer was lost (a timeout), ``fails`` times."""

    def __init__(self, fails: int) -> None:
        super().__init__()
        self.fails = fails

    async def increment(
        self,
        changes: Mapping[str, Mapping[str, float]],
        *,
        ttl: float | None = None,
        batch_id: str | None = None,
    ) -> dict[str, dict[str, float]]:
        result = await super().increment(changes, ttl=ttl, batch_id=batch_id)
        if self.fails:
            self.fails -= 1
            raise ConnectionError("timed out")
        return result


def test_a_write_whose_answer_was_lost_is_retried_without_counting_twice() -> None:
    async def scenario() -> None:
        store = FlakyStore(fails=2)
        log = ImpactLog(store, window=DAY, flush_interval=0)
        log.exposed(exposure("v:1"))
        log.converted("v:1", 10.0, T0 + 5)
        assert not await log.flush()  # never raises: the visitor's page does not wait on it
        assert log.pending == 2 and log.stats["failed"] == 1
        log.exposed(exposure("v:2"))  # arrives meanwhile: written after the retried batch
        assert not await log.flush()
        assert await log.flush()
        found = await totals(log)
        assert found["site|personalized|visitors"] == 2
        assert found["site|personalized|converted"] == 1
        assert found["site|personalized|value"] == 10.0
        assert found["site|personalized|value_sq"] == 100.0

    run(scenario())


class LosesTheDailyAnswer:
    """A store whose next increment of daily sums is applied and then reported as failed."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.lost = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def increment(self, changes: Any, **options: Any) -> dict[str, dict[str, float]]:
        result: dict[str, dict[str, float]] = await self.store.increment(changes, **options)
        if not self.lost and any(key.startswith(day_key("")) for key in changes):
            self.lost = True
            raise ConnectionError("timed out after the write")
        return result


def test_daily_sums_resent_after_other_workers_many_batches_count_once(
    make_state: StateFactory,
) -> None:
    """The daily sums are hot counters: every worker adds to them each interval. A batch of
    one worker whose answer was lost is sent again after the others wrote many batches."""

    async def scenario() -> None:
        store = make_state()
        first = ImpactLog(LosesTheDailyAnswer(store), window=DAY, flush_interval=0)
        other = ImpactLog(store, window=DAY, flush_interval=0)
        first.exposed(exposure("v:first"))
        assert not await first.flush()
        for n in range(40):
            other.exposed(exposure(f"v:other{n}"))
            assert await other.flush()
        assert await first.flush()  # sent again: its daily sums were added already
        assert (await totals(other))["site|personalized|visitors"] == 41
        await store.close()

    run(scenario())


def test_the_buffer_is_bounded_and_counts_what_it_drops() -> None:
    class Down(MemoryStateStore):
        async def values(self, keys: Any) -> dict[str, bytes]:
            raise ConnectionError("store away")

    async def scenario() -> None:
        log = ImpactLog(Down(), max_pending=100, flush_interval=0)
        for i in range(250):
            log.exposed(exposure(f"v:{i}"))
        assert log.pending == 100 and log.stats["dropped"] == 150
        assert not await log.flush()
        await log.aclose()  # logs what is lost; never raises

    run(scenario())


def test_absurd_values_count_as_conversions_without_value() -> None:
    async def scenario() -> None:
        log = ImpactLog(MemoryStateStore(), window=DAY, flush_interval=0)
        for i, value in enumerate((float("nan"), -5.0, 1e12, float("inf"))):
            log.exposed(exposure(f"v:{i}"))
            log.converted(f"v:{i}", value, T0 + 1)
        log.converted("", 3.0, T0)  # no profile key: nothing to attribute to
        log.exposed(Exposure("", "hero", "a", "holdout", "holdout", "uk", T0))
        await log.flush()
        found = await totals(log)
        assert found["site|personalized|converted"] == 4
        assert "site|personalized|value" not in found
        assert "site|holdout|visitors" not in found

    run(scenario())


def test_unreadable_exposure_times_are_no_exposure() -> None:
    async def scenario() -> None:
        store = MemoryStateStore()
        await store.put_values({"pz:impact:{v:1}:x": b"\xff not json"}, ttl=60)
        log = ImpactLog(store, window=DAY, flush_interval=0)
        log.converted("v:1", 3.0, T0)
        await log.flush()
        assert await totals(log) == {}
        log.exposed(exposure("v:1", ts=T0 + 10))
        log.converted("v:1", 3.0, T0 + 20)
        await log.flush()
        assert (await totals(log))["site|personalized|value"] == 3.0

    run(scenario())


def test_a_failed_write_is_sent_again_without_a_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(impact, "RETRY_AFTER", 0.05)

    async def scenario() -> None:
        store = FlakyStore(fails=1)
        log = ImpactLog(store, window=DAY, flush_interval=0)
        log.exposed(exposure("v:1"))
        await log.settle()  # after the last response: the write fails
        assert log.pending == 1 and log.stats["failed"] == 1
        for _ in range(100):  # no settle() or flush() from here on
            if not log.pending:
                break
            await asyncio.sleep(0.01)
        assert log.pending == 0
        assert (await totals(log))["site|personalized|visitors"] == 1
        await log.aclose()

    run(scenario())
