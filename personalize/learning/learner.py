"""The in-process learner: turns learning events into model updates and snapshots.

Events are plain dicts (JSON on the Redis stream): ``{"kind": "session", "session": id,
"x": features}`` for each page of a session (its features at the page's start), ``{"kind":
"convert", "session": id}`` when it converts, ``{"kind": "end", "session": id}`` when it
ends, and ``{"kind": "label", "x": features, "y": bool}`` (or ``"pages": [features, ...]``
instead of ``x``) for an already labelled session. Sessions that go quiet for ``timeout``
seconds are learned as not converted by :meth:`Learner.tick`.

>>> now = [0.0]
>>> learner = Learner(ModelSet.create(seed=1), clock=lambda: now[0])
>>> learner.handle({"kind": "session", "session": "s1", "x": {"channel": "email"}})
>>> learner.handle({"kind": "convert", "session": "s1"})
>>> learner.models.propensity.quality.n_labelled, learner.snapshot().version
(1, 1)
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from typing import Any

from personalize.learning.labeller import SessionLabeller
from personalize.learning.snapshots import ModelSet, Snapshot
from personalize.profiles.pageviews import SESSION_TIMEOUT

__all__ = ["EVENT_KINDS", "Learner"]

EVENT_KINDS = ("session", "convert", "end", "label")


class Learner:
    """Feeds events to a :class:`ModelSet`; ``snapshot()`` gives the next versioned copy."""

    def __init__(
        self,
        models: ModelSet | None = None,
        *,
        timeout: float = SESSION_TIMEOUT,  # seconds of inactivity that end a session
        max_open: int = 100_000,
        version: int = 0,  # the last published version, when resuming
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.models = models if models is not None else ModelSet.create()
        self.clock = clock
        self.version = version
        self.labeller = SessionLabeller(
            self.models.propensity, timeout=timeout, max_open=max_open, clock=clock
        )
        self.events = 0
        self.rejected = 0

    def handle(self, event: Mapping[str, Any]) -> None:
        """Learn from one event; malformed events are counted in ``rejected``, not raised."""
        try:
            kind = event["kind"]
            if kind == "session":
                x = event["x"]
                if not isinstance(x, Mapping):
                    raise TypeError("features must be a mapping")
                if self.labeller.observe(str(event["session"]), x, ts=event.get("ts")):
                    self._learn_unsupervised(x)
            elif kind == "convert":
                x = event.get("x")
                self.labeller.convert(str(event["session"]), x if isinstance(x, Mapping) else None)
            elif kind == "end":
                self.labeller.end(str(event["session"]))
            elif kind == "label":
                pages = event["pages"] if "pages" in event else [event["x"]]
                if not isinstance(pages, list) or not pages:
                    raise TypeError("pages must be a list of feature mappings")
                for x in pages:
                    if not isinstance(x, Mapping):
                        raise TypeError("features must be a mapping")
                self._learn_unsupervised(pages[0])
                self.models.propensity.learn_session(pages, bool(event["y"]))
            else:
                raise ValueError(kind)
        except (KeyError, TypeError, ValueError, AttributeError):
            self.rejected += 1
            return
        self.events += 1

    def _learn_unsupervised(self, x: Mapping[str, Any]) -> None:
        if not isinstance(x, Mapping):
            raise TypeError("features must be a mapping")
        self.models.clusterer.learn_one(x)
        self.models.anomaly.learn_one(x)

    def tick(self, now: float | None = None) -> int:
        """Learn sessions idle past the timeout as not converted; returns how many."""
        return self.labeller.expire(now)

    def snapshot(self) -> Snapshot:
        """A new snapshot of the models (a deep copy), one version above the last."""
        self.version += 1
        return Snapshot(self.version, self.clock(), copy.deepcopy(self.models))

    def snapshot_bytes(self) -> tuple[int, bytes]:
        """The next version and its serialised snapshot, without copying the models first."""
        self.version += 1
        return self.version, Snapshot(self.version, self.clock(), self.models).dumps()
