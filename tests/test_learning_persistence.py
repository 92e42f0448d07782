"""LocalLearning keeps versioned model snapshots in the state store and resumes from the
newest at start: a restart does not start learning from zero."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from personalize import PersonalizeMiddleware, SQLiteStore
from personalize.learning.runtime import LocalLearning
from personalize.services.state import StateService
from personalize.stores.state_memory import MemoryStateStore
from personalize.stores.state_sqlite import SQLiteStateStore
from tests.apps import SECRET

LABELS = [
    {"kind": "label", "x": {"pages": float(i % 7), "channel": "paid"}, "y": i % 3 == 0}
    for i in range(40)
]


def learned(learning: LocalLearning) -> int:
    return learning.learner.models.propensity.quality.n_labelled


def site(path: Path, learning: LocalLearning) -> PersonalizeMiddleware:
    return PersonalizeMiddleware(
        Starlette(), secret_key=SECRET, store=SQLiteStore(path), learning=learning
    )


def test_a_restarted_site_resumes_learning_from_its_newest_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "site.sqlite3"
    first = LocalLearning()
    with TestClient(site(path, first)):
        for event in LABELS:
            first.learner.handle(event)
    # Shut down: the last snapshot went to the state store in the site's SQLite file.
    assert learned(first) == 40
    second = LocalLearning()
    with TestClient(site(path, second)):
        assert learned(second) == 40  # restored at start-up, before any request
        assert second.learner.version == first.learner.version
        assert second.status()["version"] == first.learner.version


def test_snapshots_are_saved_while_learning_and_versions_go_up(tmp_path: Path) -> None:
    async def scenario() -> None:
        state = StateService(SQLiteStateStore(tmp_path / "s.sqlite3"))
        learning = LocalLearning(snapshot_every=0)
        learning.use_store(state)
        await learning.drain()  # restores (nothing yet); nothing learned: nothing saved
        assert await state.get_blob("learning:models") is None
        for event in LABELS[:10]:
            learning.learner.handle(event)
        await learning.drain()
        first = await state.get_blob("learning:models")
        for event in LABELS[10:]:
            learning.learner.handle(event)
        await learning.drain()
        second = await state.get_blob("learning:models")
        assert first is not None and second is not None and second[0] == first[0] + 1
        await state.aclose()

    asyncio.run(scenario())


def test_a_snapshot_of_an_older_format_is_refused_and_learning_starts_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        state = StateService(MemoryStateStore())
        await state.put_blob("learning:models", b"PZLS1\nold pickle")
        learning = LocalLearning()
        learning.use_store(state)
        with caplog.at_level(logging.WARNING, logger="personalize.learning"):
            assert await learning.restore() is False
        assert learned(learning) == 0
        assert "older personalize version" in caplog.text

    asyncio.run(scenario())


def test_an_unreadable_store_costs_only_the_snapshot(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(MemoryStateStore):
        async def get_blob(self, name: str, version: int | None = None) -> None:
            raise OSError("disk gone")

    async def scenario() -> None:
        learning = LocalLearning()
        learning.use_store(StateService(Broken()))
        assert await learning.restore() is False
        learning.learner.handle(LABELS[0])
        assert learned(learning) == 1

    asyncio.run(scenario())
    assert "could not read the model snapshot" in caplog.text
