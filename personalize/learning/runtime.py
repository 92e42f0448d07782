"""Learning wired into the middleware: what page views and orders teach, and what it predicts.

Two runtimes with one interface, chosen by the middleware's ``learning=`` option:

- :class:`LocalLearning`: one process learns in-process from its own traffic.
- :class:`StreamLearning`: several workers or hosts send their events to a Redis Stream
  (``personalize learner`` consumes it) and predict with the newest published snapshot.

Both work after the response (the visitor never waits for learning), keep bounded queues,
count what they drop, learn nothing from bots or visitors who are not remembered, and give
segment rules three attributes: ``propensity`` (only once the quality gate is open),
``cluster`` and ``anomaly``.

>>> from personalize.learning.runtime import LocalLearning
>>> LocalLearning().status()["events"]
0
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from personalize.learning.features import session_features
from personalize.learning.learner import Learner
from personalize.learning.persistence import BlobStore, SnapshotKeeper
from personalize.learning.snapshots import ModelSet, Snapshot
from personalize.profiles.pageviews import SESSION_TIMEOUT, session_id

if TYPE_CHECKING:
    from personalize.context.records import VisitorContext
    from personalize.profiles.profile import Profile


class Visit(Protocol):
    """What learning reads of a visitor (a :class:`~personalize.Visitor` is one)."""

    @property
    def profile_key(self) -> str | None: ...

    @property
    def profile(self) -> Profile: ...

    @property
    def context(self) -> VisitorContext: ...

    @property
    def remembers(self) -> bool: ...  # stored and learned from (not a bot, not opted out)


logger = logging.getLogger("personalize.learning")

Event = dict[str, Any]


def _session_id(visitor: Visit) -> str | None:
    if visitor.profile_key is None:
        return None
    profile = visitor.profile
    session = profile.current_session
    return None if session is None else session_id(profile, session)


class _Runtime:
    """What both runtimes share: events from visitors, scores for segment rules."""

    def __init__(self, *, max_queue: int, clock: Callable[[], float]) -> None:
        self._queue: deque[Event] = deque()
        self._max_queue = max_queue
        self._clock = clock
        self.dropped = 0
        self.auc_history: list[tuple[int, float]] = []

    def models(self) -> ModelSet | None:
        raise NotImplementedError

    def use_store(self, store: BlobStore) -> None:
        """Keep model snapshots in ``store`` (the site's state store)."""

    async def restore(self) -> bool:
        """Load the newest snapshot kept in the store, once; True if one was loaded."""
        return False

    async def aclose(self) -> None:
        """Save what must survive a restart."""

    def _enqueue(self, event: Event) -> None:
        if len(self._queue) >= self._max_queue:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                logger.warning("personalize: learning queue full, %d events dropped", self.dropped)
        self._queue.append(event)

    def observe(self, visitor: Visit) -> None:
        """A page view of a remembered visitor (called after the response)."""
        session = _session_id(visitor)
        if session is None:
            return
        x = session_features(visitor.context, visitor.profile, now=self._clock())
        self._enqueue({"kind": "session", "session": session, "x": x, "ts": self._clock()})

    def convert(self, visitor: Visit) -> None:
        """The visitor's session converted (an order, a conversion reported by the beacon)."""
        session = _session_id(visitor)
        if session is not None:
            self.convert_session(session)

    def convert_session(self, session: str) -> None:
        """Session ``session`` (see :func:`~personalize.profiles.pageviews.session_id`)
        converted: an order that reached a profile through the events API."""
        self._enqueue({"kind": "convert", "session": session})

    def scores(self, visitor: Visit) -> dict[str, Any]:
        """``propensity`` (behind the quality gate), ``cluster`` (once formed), and
        ``anomaly`` with ``anomalous`` (its model's own cutoff; once the scorer is ready) for
        rules. What is not ready is missing, never a silent zero."""
        models = self.models()
        if models is None or visitor.profile_key is None:
            return {}
        x = session_features(visitor.context, visitor.profile, now=self._clock())
        out: dict[str, Any] = {}
        try:
            if models.propensity.ready:
                out["propensity"] = models.propensity.predict_proba_one(x)[True]
            if models.clusterer.ready:
                out["cluster"] = models.clusterer.predict_one(x)
            anomaly = models.anomaly
            if anomaly.ready:
                score = anomaly.score_one(x)
                out["anomaly"] = score
                out["anomalous"] = score > anomaly.cutoff
        except Exception:  # a model that cannot predict is no reason to fail a page
            logger.exception("personalize: learned scores failed")
        return out

    def status(self) -> dict[str, Any]:
        models = self.models()
        status: dict[str, Any] = {"events": 0, "version": 0, "ready": False,
                                  "queued": len(self._queue), "dropped": self.dropped,
                                  "auc_history": [list(p) for p in self.auc_history]}  # fmt: skip
        if models is not None:
            status.update(model_figures(models))
        return status


def model_figures(models: ModelSet) -> dict[str, Any]:
    """What a set of models reports about itself: the propensity model's quality and gate,
    the clusters, the anomaly scorer (a runtime's :meth:`status` adds its own counts)."""
    q = models.propensity.quality
    return {
        "ready": models.propensity.ready,
        "labelled": q.n_labelled,
        "positives": q.n_positive,
        "auc": q.auc,
        "auc_end": q.auc_end,
        "logloss": q.logloss,
        "min_labelled": models.propensity.min_labelled,
        "min_auc": models.propensity.min_auc,
        "clusters": _clusters(models),
        "anomaly_ready": models.anomaly.ready,
        "anomaly_cutoff": models.anomaly.cutoff if models.anomaly.ready else None,
    }


def _clusters(models: ModelSet) -> list[dict[str, Any]]:
    """Each formed cluster: its number, description, size and sizes over time."""
    clusterer = models.clusterer
    if not clusterer.ready:
        return []
    sizes = clusterer.sizes()
    return [
        {
            "id": c,
            "description": clusterer.describe(c),
            "size": sizes.get(c, 0),
            "history": [window[c] for _, window in clusterer.history if c < len(window)],
        }
        for c in range(clusterer.n_clusters)
    ]


class LocalLearning(_Runtime):
    """In-process learning for a single process: learns ``batch`` events after each response."""

    def __init__(
        self,
        models: ModelSet | None = None,
        *,
        max_queue: int = 10_000,
        batch: int = 50,  # events learned per request, bounding the work after each response
        timeout: float = SESSION_TIMEOUT,  # seconds of inactivity that end a session
        snapshot_every: float = 300.0,  # seconds between snapshots kept in the state store
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(max_queue=max_queue, clock=clock)
        self.learner = Learner(models, timeout=timeout, clock=clock)
        self._batch = batch
        self._last_tick = clock()
        self._timeout = timeout
        self._snapshot_every = snapshot_every
        self.snapshots: SnapshotKeeper | None = None

    def use_store(self, store: BlobStore) -> None:
        """Save the models to ``store`` every ``snapshot_every`` seconds while learning and
        at shutdown, and start from the newest snapshot there (see
        :mod:`~personalize.learning.persistence`). The :class:`~personalize.Personalizer`
        calls it with its state service."""
        self.snapshots = SnapshotKeeper(store, every=self._snapshot_every)

    async def restore(self) -> bool:
        keeper = self.snapshots
        if keeper is None or keeper.restored:
            return False

        def make(snapshot: Snapshot) -> Learner:
            return Learner(
                snapshot.models, timeout=self._timeout, version=snapshot.version, clock=self._clock
            )

        learner = await keeper.restore(make)
        if learner is None:
            return False
        self.learner = learner
        return True

    async def aclose(self) -> None:
        keeper = self.snapshots
        if keeper is not None and keeper.restored and self.learner.events:
            await keeper.save(self.learner)

    def models(self) -> ModelSet | None:
        return self.learner.models

    def status(self) -> dict[str, Any]:
        status = super().status()
        labeller = self.learner.labeller
        status.update(
            events=self.learner.events,
            version=self.learner.version,
            open_sessions=len(labeller),
            late_conversions=labeller.late,
        )
        return status

    async def drain(self) -> None:
        """Learn queued events (a bounded number per call); save a snapshot when due."""
        keeper = self.snapshots
        if keeper is not None and not keeper.restored:
            await self.restore()  # a server without lifespan events: before the first lesson
        for _ in range(min(self._batch, len(self._queue))):
            self.learner.handle(self._queue.popleft())
        now = self._clock()
        if now - self._last_tick > 60:
            self._last_tick = now
            self.learner.tick(now)
            q = self.learner.models.propensity.quality
            if q.n_labelled:
                self.auc_history.append((q.n_labelled, q.auc))
                del self.auc_history[:-200]
        if keeper is not None and keeper.due(self.learner):
            await keeper.save(self.learner)


class StreamLearning(_Runtime):
    """Workers of a scaled-out site: events go to a Redis Stream, models come back as
    versioned snapshots published by ``personalize learner`` (picked up within
    ``poll_interval`` seconds, without a restart)."""

    def __init__(
        self,
        redis_url: str = "redis://127.0.0.1:6379/0",
        *,
        stream: str = "personalize:learn",
        prefix: str = "personalize:models",
        poll_interval: float = 1.0,
        max_queue: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from personalize.learning.scaleout import EventStream, ModelClient

        super().__init__(max_queue=max_queue, clock=clock)
        self.stream = EventStream(redis_url, stream=stream)
        self.client = ModelClient(redis_url, prefix=prefix, poll_interval=poll_interval)
        self.sent = 0
        self._poll_interval = poll_interval
        self._last_refresh = float("-inf")

    def models(self) -> ModelSet | None:
        return self.client.models

    def status(self) -> dict[str, Any]:
        status = super().status()
        status.update(events=self.sent, version=self.client.version)
        return status

    async def drain(self) -> None:
        """Send queued events and look for a newer snapshot, off the event loop."""
        events = list(self._queue)
        self._queue.clear()
        loop = asyncio.get_running_loop()
        try:
            if events:
                sent = await loop.run_in_executor(None, self.stream.send_many, events)
                self.sent += sent  # after the await: overlapping drains must not lose counts
            now = time.monotonic()
            if now - self._last_refresh >= self._poll_interval:
                self._last_refresh = now
                await loop.run_in_executor(None, self.client.refresh)
        except Exception as exc:  # Redis down: learning waits, pages do not
            self.dropped += len(events)
            logger.warning("personalize: learning stream unavailable (%s); %d events dropped",
                           exc, len(events))  # fmt: skip
