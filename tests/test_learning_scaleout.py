"""Scale-out against a real Redis: stream -> consumer group -> snapshot -> ModelClient."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from personalize.learning import EventStream, ModelClient, StreamLearner, features_from_record
from personalize.learning.simulate import simulate

pytestmark = pytest.mark.redis

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_client() -> Iterator[tuple[Any, str]]:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis at {REDIS_URL} is unreachable and CI must run Redis tests: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")
    prefix = f"test-learning-{uuid.uuid4().hex}"
    yield client, prefix
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def _events(n: int, seed: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for r in simulate(n, seed=seed):
        x = features_from_record(r)
        session = f"{seed}:{r['session']}"  # unique, as real session ids are
        events.append({"kind": "session", "session": session, "x": x})
        events.append({"kind": "convert" if r["converted"] else "end", "session": session})
    return events


def test_worker_picks_up_a_new_snapshot_within_5_seconds(redis_client: tuple[Any, str]) -> None:
    client, prefix = redis_client
    stream, models = f"{prefix}:stream", f"{prefix}:models"
    sink = EventStream(REDIS_URL, stream=stream, maxlen=10_000)
    learner = StreamLearner(
        redis_url=REDIS_URL, stream=stream, group=f"{prefix}-group", prefix=models,
        publish_every=0.2, block_ms=100,
    )  # fmt: skip
    worker = ModelClient(REDIS_URL, prefix=models, poll_interval=0.5)
    assert worker.models is None and worker.version == 0

    stop = threading.Event()
    thread = threading.Thread(target=learner.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert sink.send_many(_events(600, seed=1)) == 1200
        deadline = time.monotonic() + 5.0
        while worker.version == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
            worker.models  # noqa: B018 - polls at most every poll_interval
        first = worker.version
        assert first >= 1, "no snapshot within 5 s"
        assert worker.models is not None

        sink.send_many(_events(300, seed=2))  # more learning -> newer snapshots
        sent = time.monotonic()

        def labelled() -> int:
            models = worker.models
            return models.propensity.quality.n_labelled if models else 0

        while labelled() < 900 and time.monotonic() - sent < 5.0:
            time.sleep(0.05)
        assert worker.version > first
        assert labelled() == 900, "the snapshot with every event was not picked up within 5 s"
    finally:
        stop.set()
        thread.join(5)
    assert int(client.get(f"{models}:version")) == learner.learner.version
    assert learner.learner.models.propensity.quality.n_labelled == 900
    pending = client.xpending(stream, f"{prefix}-group")
    assert pending["pending"] == 0  # everything acknowledged
    assert client.xlen(stream) <= 10_000 + 200  # capped (approximately)


def test_stale_pending_messages_are_claimed_by_another_consumer(
    redis_client: tuple[Any, str],
) -> None:
    client, prefix = redis_client
    stream, group = f"{prefix}:stream", f"{prefix}-group"
    EventStream(REDIS_URL, stream=stream).send_many(_events(50, seed=3))
    crashed = StreamLearner(
        redis_url=REDIS_URL, stream=stream, group=group, prefix=f"{prefix}:a", block_ms=10
    )
    # a consumer that reads and dies before acknowledging
    client.xreadgroup(group, "crashed", {stream: ">"}, count=1000)
    assert client.xpending(stream, group)["pending"] == 100
    rescuer = StreamLearner(
        redis_url=REDIS_URL, stream=stream, group=group, consumer="rescuer",
        prefix=f"{prefix}:b", claim_idle_ms=0, block_ms=10,
    )  # fmt: skip
    assert rescuer.step() == 100
    assert client.xpending(stream, group)["pending"] == 0
    assert rescuer.learner.models.propensity.quality.n_labelled == 50
    rescuer.publish()
    # a restarted learner resumes from the published snapshot and keeps the version rising
    resumed = StreamLearner(redis_url=REDIS_URL, stream=stream, group=group, prefix=f"{prefix}:b")
    assert resumed.learner.version == 1
    assert resumed.learner.models.propensity.quality.n_labelled == 50
    assert crashed.learner.version == 0


def test_garbage_on_the_stream_is_acknowledged_not_fatal(redis_client: tuple[Any, str]) -> None:
    client, prefix = redis_client
    stream, group = f"{prefix}:stream", f"{prefix}-group"
    learner = StreamLearner(
        redis_url=REDIS_URL, stream=stream, group=group, prefix=f"{prefix}:m", block_ms=10
    )
    client.xadd(stream, {"e": b"\xff not json"})
    client.xadd(stream, {"e": "[1, 2]"})
    client.xadd(stream, {"other": "field"})
    learner._own_pending = False
    assert learner.step() == 3
    assert learner.learner.rejected == 3
    assert client.xpending(stream, group)["pending"] == 0
