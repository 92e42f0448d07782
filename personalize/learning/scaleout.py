"""Scale-out over Redis: workers send learning events, one learner publishes snapshots.

- Workers hold an :class:`EventStream` and ``XADD`` events (JSON) to a capped stream.
- ``personalize learner`` runs a :class:`StreamLearner`: it reads through a consumer group
  (``XREADGROUP``), learns, ``XACK``s, reclaims messages a crashed consumer left pending
  (``XAUTOCLAIM``), and every ``publish_every`` seconds writes a snapshot and its version
  (``SET``, in one transaction) and ``PUBLISH``es the version.
- Workers hold a :class:`ModelClient`: it checks the version key at most every
  ``poll_interval`` seconds and loads a newer snapshot, without a restart.

Keys, for ``prefix="personalize:models"``: ``<prefix>:snapshot``, ``<prefix>:version``, and the
channel ``<prefix>:published``. Run one learner per prefix (others in the same group are
standbys that take over pending messages).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from personalize.learning.extras import redis_module
from personalize.learning.learner import Learner
from personalize.learning.snapshots import ModelSet, Snapshot

__all__ = ["EventStream", "ModelClient", "StreamLearner"]

logger = logging.getLogger("personalize.learning")

DEFAULT_STREAM = "personalize:learn"
DEFAULT_GROUP = "personalize-learner"
DEFAULT_PREFIX = "personalize:models"


def _client(redis_url: str, client: Any) -> Any:
    return client if client is not None else redis_module().Redis.from_url(redis_url)


class EventStream:
    """The worker side: append learning events to a Redis stream capped at ~``maxlen``."""

    def __init__(
        self,
        redis_url: str = "redis://127.0.0.1:6379/0",
        *,
        stream: str = DEFAULT_STREAM,
        maxlen: int = 1_000_000,
        client: Any = None,
    ) -> None:
        self.stream = stream
        self.maxlen = maxlen
        self._redis = _client(redis_url, client)

    def send(self, event: Mapping[str, Any]) -> None:
        """Append one event."""
        self.send_many((event,))

    def send_many(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Append events in one round trip; returns how many."""
        pipe = self._redis.pipeline(transaction=False)
        n = 0
        for event in events:
            pipe.xadd(
                self.stream,
                {"e": json.dumps(event, separators=(",", ":"))},
                maxlen=self.maxlen,
                approximate=True,
            )
            n += 1
        if n:
            pipe.execute()
        return n


class StreamLearner:
    """The learner process: consumer group in, versioned snapshots out."""

    def __init__(
        self,
        learner: Learner | None = None,
        *,
        redis_url: str = "redis://127.0.0.1:6379/0",
        stream: str = DEFAULT_STREAM,
        group: str = DEFAULT_GROUP,
        consumer: str = "learner-1",
        prefix: str = DEFAULT_PREFIX,
        publish_every: float = 2.0,  # seconds between snapshots (only when something changed)
        batch: int = 500,  # messages per read
        block_ms: int = 500,
        claim_idle_ms: int = 60_000,  # pending longer than this is taken over from others
        client: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.prefix = prefix
        self.publish_every = publish_every
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.clock = clock
        self._redis = _client(redis_url, client)
        self.learner = learner if learner is not None else self._resume()
        self._ensure_group()
        self._last_publish = clock()
        self._last_claim = 0.0
        self._dirty = False
        self._own_pending = True  # first read our own unacknowledged messages (after a crash)

    def _resume(self) -> Learner:
        data = self._redis.get(f"{self.prefix}:snapshot")
        if data:
            try:
                snap = Snapshot.loads(data)
            except ValueError as exc:  # an older version's snapshot: start over, version goes on
                logger.warning("personalize learner: %s", exc)
            else:
                return Learner(snap.models, version=snap.version, clock=self.clock)
        version = int(self._redis.get(f"{self.prefix}:version") or 0)
        return Learner(ModelSet.create(), version=version, clock=self.clock)

    def _ensure_group(self) -> None:
        try:
            self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis_module().ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _handle(self, messages: list[Any]) -> int:
        ids = []
        for message_id, fields in messages:
            ids.append(message_id)
            if not fields:  # deleted from the stream (trimmed) while pending
                continue
            try:
                event = json.loads(fields.get(b"e") or fields.get("e"))
            except (TypeError, ValueError):
                self.learner.rejected += 1
                continue
            if isinstance(event, dict):
                self.learner.handle(event)
            else:
                self.learner.rejected += 1
        if ids:
            self._redis.xack(self.stream, self.group, *ids)
            self._dirty = True
        return len(ids)

    def step(self) -> int:
        """Read, learn and acknowledge one batch; publish when due. Returns messages handled."""
        n = 0
        now = self.clock()
        if now - self._last_claim >= self.claim_idle_ms / 1000:
            self._last_claim = now
            claimed = self._redis.xautoclaim(
                self.stream, self.group, self.consumer, self.claim_idle_ms, "0-0", count=self.batch
            )
            n += self._handle(claimed[1])
        start = "0" if self._own_pending else ">"
        block = None if self._own_pending else self.block_ms
        reply = self._redis.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=self.batch, block=block
        )
        messages = reply[0][1] if reply else []
        if self._own_pending and not messages:
            self._own_pending = False
        n += self._handle(messages)
        if self.learner.tick():
            self._dirty = True
        if self._dirty and self.clock() - self._last_publish >= self.publish_every:
            self.publish()
        return n

    def publish(self) -> int:
        """Write a new snapshot and its version, notify subscribers; returns the version."""
        version, data = self.learner.snapshot_bytes()
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(f"{self.prefix}:snapshot", data)
        pipe.set(f"{self.prefix}:version", version)
        pipe.publish(f"{self.prefix}:published", version)
        pipe.execute()
        self._last_publish = self.clock()
        self._dirty = False
        return version

    def run(self, stop: threading.Event | None = None, *, max_events: int | None = None) -> int:
        """Loop over :meth:`step` until ``stop`` is set or ``max_events`` were handled."""
        total = 0
        while not (stop is not None and stop.is_set()):
            total += self.step()
            if max_events is not None and total >= max_events:
                break
        if self._dirty:
            self.publish()
        return total


class ModelClient:
    """The worker side: the latest published models, refreshed without a restart.

    ``models`` checks the version key at most every ``poll_interval`` seconds (one ``GET``)
    and loads the snapshot only when the version moved. If Redis is unreachable the models
    in hand stay in use.
    """

    def __init__(
        self,
        redis_url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = DEFAULT_PREFIX,
        poll_interval: float = 1.0,  # seconds
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.prefix = prefix
        self.poll_interval = poll_interval
        self.clock = clock
        self._redis = _client(redis_url, client)
        self._snapshot: Snapshot | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()

    @property
    def version(self) -> int:
        """The version of the snapshot in use (0 before any)."""
        return self._snapshot.version if self._snapshot else 0

    @property
    def snapshot(self) -> Snapshot | None:
        """The snapshot in use, after a refresh if one is due."""
        if self.clock() - self._checked >= self.poll_interval:
            self.refresh()
        return self._snapshot

    @property
    def models(self) -> ModelSet | None:
        """The models in use (None until a snapshot was published)."""
        snap = self.snapshot
        return snap.models if snap else None

    def refresh(self) -> bool:
        """Check the version now; load a newer snapshot. True if the models changed."""
        if not self._lock.acquire(blocking=False):
            return False  # another thread is refreshing
        try:
            self._checked = self.clock()
            try:
                version = int(self._redis.get(f"{self.prefix}:version") or 0)
                if version <= self.version:
                    return False
                data = self._redis.get(f"{self.prefix}:snapshot")
                snap = Snapshot.loads(data) if data else None
            except Exception:  # a bad snapshot or Redis down: keep serving the models in hand
                return False
            if snap is None or snap.version <= self.version:
                return False
            self._snapshot = snap
            return True
        finally:
            self._lock.release()
