"""The instruction-count harness's in-process part runs (valgrind itself is not needed)."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import pytest

from benchmarks import apps
from benchmarks.instructions import _child, render
from personalize import SQLiteStore


@pytest.mark.parametrize("app", ["bare", "personalized_nowrite", "personalized"])
def test_child_sets_up_warms_and_measures(
    app: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_DB", str(tmp_path / "bench.sqlite3"))
    monkeypatch.setattr(apps, "_BUILT", {})  # a fresh app (and store) for this test
    asyncio.run(_child(app, visitors=5, requests=20, batch=7))
    built = apps._BUILT[app]
    personalizer = getattr(built, "personalizer", None)
    assert (personalizer is None) == (app == "bare")
    if personalizer is not None:
        service = personalizer.profiles
        assert service.stats["cache_misses"] == 0  # every measured request hit the near-cache
        assert service.stats["written"] == 5 + 5 + 20  # new visits, warm-up, measured


def test_new_visitors_send_no_cookie_and_each_creates_a_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_DB", str(tmp_path / "bench.sqlite3"))
    monkeypatch.setattr(apps, "_BUILT", {})
    asyncio.run(_child("personalized_new", visitors=5, requests=20, batch=7))
    service = apps._BUILT["personalized"].personalizer.profiles
    assert service.stats["written"] == 5 + 1 + 20  # set-up visits, the warm-up one, measured

    async def profiles() -> int:
        store = SQLiteStore(tmp_path / "bench.sqlite3")
        try:
            return len(await store.keys())
        finally:
            await store.close()

    assert asyncio.run(profiles()) == 26  # every request was a visitor of its own


def test_the_floor_app_knows_its_returning_visitors_and_marks_responses_private(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(apps, "_BUILT", {})
    asyncio.run(_child("minimal", visitors=5, requests=20, batch=7))
    floor = apps._BUILT["minimal"]
    assert len(floor.profiles) == 5  # the measured requests were the 5 visitors returning
    assert sum(p["visits"] for p in floor.profiles.values()) == 5 + 5 + 20
    assert len(floor.buffer) == 30

    from starlette.testclient import TestClient

    client = TestClient(apps.make_minimal())
    first = client.get("/")
    assert first.headers["cache-control"] == "private" and first.headers["vary"] == "Cookie"
    assert first.cookies["pz_visitor"] == "v0"
    again = client.get("/")  # (the client sends the cookie back)
    assert "set-cookie" not in again.headers and again.text == "hello"


def test_render_gives_ratios_to_bare() -> None:
    args = argparse.Namespace(visitors=10, batch=5, requests=30, extra=1000)
    text = render([("bare", 100.0), ("personalized", 250.0)], args)
    assert "| personalized | 250 | 2.50 |" in text
    assert text.startswith("<!-- instructions:start -->")


def test_the_realistic_page_is_measured_with_its_folders_left_unchecked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_DB", str(tmp_path / "bench.sqlite3"))
    monkeypatch.setattr(apps, "_BUILT", {})
    asyncio.run(_child("personalized_realistic_sqlite", visitors=3, requests=6, batch=4))
    personalizer = apps._BUILT["personalized_realistic_sqlite"].personalizer
    assert personalizer.profiles.stats["written"] == 3 + 3 + 6
    assert personalizer.decisions.library._watch.interval == float("inf")
    text = render([("bare", 100.0), ("realistic_bare", 1000.0),
                   ("personalized_realistic_sqlite", 1500.0)], argparse.Namespace(
                       visitors=3, batch=4, requests=6, extra=10))  # fmt: skip
    assert "| personalized_realistic_sqlite | 1,500 | 1.50 |" in text


def test_the_profiling_tools_run(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import bytecodes, decision_instructions

    assert bytecodes.main(["--decisions", "again", "--visitors", "3", "--top", "3"]) == 0
    assert "bytecodes per slot" in capsys.readouterr().out
    assert decision_instructions.main(["--child", "again", "2"]) == 0


def test_the_realistic_page_taken_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``personalized_realistic_fixed`` is the listing behind the middleware deciding nothing
    (the bare page's hero and banner, page views written to SQLite): beside realistic_bare and
    personalized_realistic_sqlite it splits the page's cost into the middleware's and the
    store's, and the decided slots'."""
    from starlette.testclient import TestClient

    from benchmarks.run import USER_AGENT

    monkeypatch.setenv("BENCH_DB", str(tmp_path / "bench.sqlite3"))
    monkeypatch.setattr(apps, "_BUILT", {})
    browser = {"user-agent": USER_AGENT}  # (TestClient's own is a bot's: no cookie, no profile)
    bare = TestClient(apps.make_realistic_bare()).get("/")
    with TestClient(apps.make_personalized_realistic_fixed(), headers=browser) as client:
        first = client.get("/")  # a new visitor: its cookie makes the response private
        assert first.headers["cache-control"] == "private" and "pz_visitor" in first.cookies
        fixed = client.get("/")  # (a page reading nothing of its visitor is not marked)
        assert fixed.text == bare.text and "set-cookie" not in fixed.headers
        assert client.app.personalizer.decisions is None
    asyncio.run(_child("personalized_realistic_fixed", visitors=3, requests=6, batch=4))
    service = apps._BUILT["personalized_realistic_fixed"].personalizer.profiles
    assert service.stats["written"] == 3 + 3 + 6 and service.stats["failed"] == 0


@pytest.mark.parametrize("fold", [False, True])
def test_the_compaction_row_folds_the_measured_page_views_only_in_its_second_run(
    fold: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row ``sqlite_compaction``: both runs make the same requests with the store's own
    compaction held back and the set-up's page views compacted first; only the second run then
    compacts, so the difference is the compaction of the measured page views alone."""
    import sqlite3

    from benchmarks import compaction

    monkeypatch.setenv("BENCH_DB", str(tmp_path / "bench.sqlite3"))
    monkeypatch.setattr(apps, "_BUILT", {})
    asyncio.run(compaction.run("sqlite_compaction", 5, 40, 7, fold=fold))
    store = apps._BUILT["personalized"].personalizer.profiles.store
    assert store.compact_after > 10**12  # the store did not compact by itself
    with sqlite3.connect(tmp_path / "bench.sqlite3") as conn:
        logged = [row[0] for row in conn.execute("SELECT data FROM log")]

    async def page_views() -> int:
        reader = SQLiteStore(tmp_path / "bench.sqlite3")
        try:
            stored = [await reader.get(key) for key in await reader.keys()]
            return sum(p.page_views for p in stored if p is not None)
        finally:
            await reader.close()

    # (a read folds the log in, compacted or not: 5 new visits, 5 warm-up, 40 measured)
    assert asyncio.run(page_views()) == 50
    if fold:
        assert logged == []
    else:  # the 40 measured page views, in the log; the set-up's were compacted before them
        assert sum(sum(map(len, json.loads(d).values())) for d in logged) == 40
    assert (
        compaction.page_views("sqlite_compaction", 1000)
        == SQLiteStore(tmp_path / "other.sqlite3").compact_after
    )


@pytest.mark.parametrize("fold", [False, True])
def test_the_redis_row_folds_each_log_once_only_in_its_second_run(
    fold: bool, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row ``redis_log_folds``: LOG_LIMIT page views per visitor take each profile's log past
    the store's limit once; the other run never folds."""
    import redis

    from benchmarks import compaction
    from tests.conftest import REDIS_URL

    monkeypatch.setenv("BENCH_PREFIX", redis_prefix)
    monkeypatch.setattr(apps, "_BUILT", {})
    visitors = 3
    count = compaction.page_views("redis_log_folds", visitors)
    assert count == 64 * visitors  # (the store's default limit)
    asyncio.run(compaction.run("redis_log_folds", visitors, count, visitors, fold=fold))
    client = redis.Redis.from_url(REDIS_URL)
    try:
        profiles = [k for k in client.scan_iter(match=f"{redis_prefix}*") if b":log" not in k]
        logs = [client.llen(key + b":log") for key in profiles]
    finally:
        client.close()
    assert len(profiles) == visitors
    # One entry for the set-up's batch (the new visit and the warm-up), one per measured page
    # view: past the limit of 64, each log was folded into its profile (an empty log is gone).
    assert all(n < 64 for n in logs) if fold else logs == [65] * visitors


def test_the_fold_rows_read_as_added_to_their_stores_rows() -> None:
    args = argparse.Namespace(visitors=10, batch=5, requests=30, extra=1000)
    rows = [("bare", 100.0), ("personalized", 220.0), ("sqlite_compaction", 30.0)]
    text = render([*rows, ("redis_log_folds", 20.0)], args)
    assert "| sqlite_compaction | 30 | +0.30 (2.50) |" in text
    assert "| redis_log_folds | 20 | +0.20 |" in text  # (no personalized_redis row to add to)
    assert "the stores' log folds" in text and "log folds" not in render(rows[:2], args)
