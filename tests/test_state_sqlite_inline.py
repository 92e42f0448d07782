"""The SQLite state store reads a page's caps and picks on the caller's thread when SQLite
can answer at once, and on its own thread otherwise (a lock, a write of its own queued)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from personalize.exceptions import StoreError
from personalize.stores.state_sqlite import SQLiteStateStore

COUNTERS = ["caps:v:1", "caps:v:2"]
VALUES = ["pick:v:1|1.0|hero", "pick:v:1|1.0|banner"]


def _count_thread_calls(store: SQLiteStateStore) -> list[str]:
    calls: list[str] = []
    submit = store._executor.submit

    def counting(fn: Any, *args: Any) -> Any:
        calls.append(getattr(fn, "__name__", "?"))
        return submit(fn, *args)

    store._executor.submit = counting  # type: ignore[method-assign]
    return calls


def test_a_page_read_is_answered_inline_as_the_thread_would(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStateStore(tmp_path / "s.sqlite3")
        await store.increment({"caps:v:1": {"hero/a": 2.0, "hero/a!": 5.0}})
        await store.put_values({VALUES[0]: b"a\nrule"}, ttl=60)
        await store.put_values({"pick:gone": b"x"}, ttl=0.01)
        await asyncio.sleep(0.02)
        calls = _count_thread_calls(store)
        inline = await store.read(COUNTERS, [*VALUES, "pick:gone"])
        assert calls == []  # no trip to the thread
        assert inline == ({"caps:v:1": {"hero/a": 2.0, "hero/a!": 5.0}}, {VALUES[0]: b"a\nrule"})
        apart = (await store.counters(COUNTERS), await store.values([*VALUES, "pick:gone"]))
        assert inline == apart and len(calls) == 2
        await store.close()
        with pytest.raises(StoreError, match="closed"):
            await store.read(COUNTERS, VALUES)

    asyncio.run(scenario())


def test_a_read_never_overtakes_a_write_of_this_process(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStateStore(tmp_path / "s.sqlite3")
        await store.increment({"caps:v:1": {"n": 1.0}})
        write = asyncio.ensure_future(store.increment({"caps:v:1": {"n": 1.0}}))
        await asyncio.sleep(0)  # the write is queued on the thread
        calls = _count_thread_calls(store)
        found, _ = await store.read(COUNTERS, VALUES)
        assert calls and found == {"caps:v:1": {"n": 2.0}}  # read on the thread, after it
        await write
        await store.close()

    asyncio.run(scenario())


def test_a_busy_database_is_read_on_the_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whenever SQLite would wait (a lock: in WAL mode, a checkpoint resetting the log or a
    recovery), the inline connection answers at once with an error and the thread reads."""
    from personalize.stores import state_sqlite_read

    def busy(*args: Any) -> Any:
        raise sqlite3.OperationalError("database is locked")

    async def scenario() -> None:
        store = SQLiteStateStore(tmp_path / "s.sqlite3")
        await store.put_values({VALUES[0]: b"a\nrule"}, ttl=60)
        calls = _count_thread_calls(store)
        with monkeypatch.context() as patch:
            patch.setattr(state_sqlite_read, "read_at_once", busy)
            assert store._reader is not None
            assert store._reader.read(COUNTERS, VALUES, 0.0) is None
            patch.setattr(store, "_reader", state_sqlite_read.InlineReader(store.path))
            patch.setattr(store._reader, "read", lambda *args: None)
            _, values = await store.read(COUNTERS, VALUES)
        assert values == {VALUES[0]: b"a\nrule"} and calls
        await store.close()

    asyncio.run(scenario())


def test_inline_reads_can_be_switched_off(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStateStore(tmp_path / "s.sqlite3", inline_reads=False)
        await store.increment({"caps:v:1": {"n": 1.0}})
        calls = _count_thread_calls(store)
        assert (await store.read(COUNTERS, VALUES))[0] == {"caps:v:1": {"n": 1.0}}
        assert calls
        await store.close()

    asyncio.run(scenario())


def test_the_state_service_reads_values_alone_or_counters_alone_inline(tmp_path: Path) -> None:
    """A page that wants only picks (values) or only caps (counters) read again is answered
    on the caller's thread too: every read of the service goes through ``StateStore.read``
    (reading values through ``values()`` cost a hop to the thread on about one realistic
    page in six)."""
    from personalize.services.state import StateService

    async def scenario() -> None:
        store = SQLiteStateStore(tmp_path / "s.sqlite3")
        await store.increment({"caps:v:1": {"n": 1.0}})
        await store.put_values({VALUES[0]: b"a\nrule"}, ttl=60)
        state = StateService(store, flush_interval=0)
        calls = _count_thread_calls(store)
        await state.prefetch(values=VALUES)
        await state.prefetch(counters=COUNTERS)
        assert await state.values(["pick:other"]) == {"pick:other": None}
        assert (await state.counters(["caps:v:3"]))["caps:v:3"] == {}
        assert calls == []
        assert state.cached_value(VALUES[0]) == b"a\nrule"
        assert state.cached("caps:v:1") == {"n": 1.0}
        await state.aclose()

    asyncio.run(scenario())
