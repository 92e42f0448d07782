"""Profiles seen by real worker processes sharing one Redis: a write by one worker is folded
into the other's near-cache copy (no store read), and a write the other never hears of (a
lost notice) makes it read the store again instead of serving a profile without it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from personalize.profiles.pageviews import Hit
from tests.conftest import REDIS_URL
from tests.test_shared_decisions import CONTENT, DESKTOP, Worker


@pytest.fixture
def workers(tmp_path: Path, redis_prefix: str) -> Iterator[tuple[Worker, Worker]]:
    content = tmp_path / "content"
    content.mkdir()
    (content / "home.yaml").write_text(CONTENT)
    env = {"PZ_TEST_CONTENT": str(content), "PZ_TEST_STORE": REDIS_URL}
    env["PZ_TEST_PREFIX"] = redis_prefix
    started: list[Worker] = []
    try:
        started += [Worker(env), Worker(env)]
        for worker in started:  # a first store call starts its notice listener
            with httpx.Client(headers={"user-agent": DESKTOP}) as someone:
                assert someone.get(f"{worker.url}/").status_code == 200
        time.sleep(0.5)
        yield started[0], started[1]
    finally:
        for worker in started:
            worker.stop()


def page(visitor: httpx.Client, worker: Worker) -> dict[str, Any]:
    answer = visitor.get(f"{worker.url}/")
    assert answer.status_code == 200
    time.sleep(0.2)  # past the write-behind (10 ms) and the notice
    result: dict[str, Any] = answer.json()
    return result


def stats(worker: Worker) -> dict[str, int]:
    result: dict[str, int] = httpx.get(f"{worker.url}/stats").json()
    return result


def test_a_write_on_one_worker_updates_the_others_copy_without_a_store_read(
    workers: tuple[Worker, Worker],
) -> None:
    a, b = workers
    with httpx.Client(headers={"user-agent": DESKTOP}) as visitor:
        assert page(visitor, a)["page_views"] == 1
        assert page(visitor, b)["page_views"] == 2  # b reads the store once
        before = stats(b)
        assert [page(visitor, a)["page_views"] for _ in range(3)] == [3, 4, 5]
        assert page(visitor, b)["page_views"] == 6
        assert page(visitor, a)["page_views"] == 7  # a folded b's page view too
        after = stats(b)
    assert after["cache_misses"] == before["cache_misses"]  # b's copy was kept
    assert after["notices_folded"] >= before["notices_folded"] + 3
    assert after["notices_dropped"] == before["notices_dropped"]


def test_a_write_nobody_heard_of_makes_the_workers_read_the_store_again(
    workers: tuple[Worker, Worker], redis_prefix: str
) -> None:
    from personalize.stores.redis import RedisStore

    a, b = workers
    with httpx.Client(headers={"user-agent": DESKTOP}) as visitor:
        page(visitor, a)
        key = page(visitor, b)["key"]
        page(visitor, a)  # both hold the profile now, at the same write
        before = stats(b)

        async def unheard() -> None:  # a third writer whose notice is lost
            silent = RedisStore(REDIS_URL, prefix=redis_prefix, invalidation=False)
            try:
                await silent.apply_changes({key: [Hit(ts=time.time(), path="/unheard")]})
            finally:
                await silent.close()

        asyncio.run(unheard())
        # a's next write follows the unheard one: a waits briefly for its notice, then
        # drops its copy; b sees a's notice follow a write it never heard of: a gap.
        assert page(visitor, a)["page_views"] == 4  # a's copy, not yet knowing
        time.sleep(0.6)
        assert page(visitor, b)["page_views"] == 6  # read again: the unheard page view too
        after = stats(b)
        assert after["cache_misses"] == before["cache_misses"] + 1
        assert after["notices_dropped"] == before["notices_dropped"] + 1
        assert page(visitor, a)["page_views"] == 7
