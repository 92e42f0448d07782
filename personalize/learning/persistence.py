"""Model snapshots kept in the state store, so that a restarted process goes on learning where
it stopped (:class:`~personalize.learning.runtime.LocalLearning`).

Every ``every`` seconds that something was learned (and at shutdown) the models are written
as the next version of one blob; at start the newest version is read. A snapshot of an
older format (``PZLS1``) is refused and the models start over (logged). Snapshots are
pickles: keep them in a store only you can write to.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from personalize.learning.learner import Learner
from personalize.learning.snapshots import Snapshot

__all__ = ["BlobStore", "SnapshotKeeper"]

logger = logging.getLogger("personalize.learning")


class BlobStore(Protocol):
    """Where snapshots go (a :class:`~personalize.services.state.StateService` is one)."""

    async def put_blob(self, name: str, data: bytes, *, keep: int = 3) -> int: ...

    async def get_blob(self, name: str, version: int | None = None) -> tuple[int, bytes] | None: ...


class SnapshotKeeper:
    """Writes a learner's models to a :class:`BlobStore` now and then, and reads them back."""

    def __init__(
        self,
        store: BlobStore,
        *,
        name: str = "learning:models",
        every: float = 300.0,  # seconds between snapshots while learning
        keep: int = 3,  # versions kept
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.name = name
        self.every = every
        self.keep = keep
        self._clock = clock
        self._saved_at = clock()
        self._saved_events = 0
        self.restored = False
        self.version: int | None = None  # of the snapshot read or written last

    async def restore(self, make: Callable[[Snapshot], Learner]) -> Learner | None:
        """A learner of the newest snapshot (``make`` builds it), or None: none stored, an
        older format, or a store that cannot be read (all logged)."""
        self.restored = True
        try:
            found = await self.store.get_blob(self.name)
        except Exception as exc:
            logger.warning("personalize: could not read the model snapshot (%s)", exc)
            return None
        if found is None:
            return None
        version, data = found
        try:
            snapshot = Snapshot.loads(data)
        except ValueError as exc:
            logger.warning("personalize: model snapshot %d not loaded: %s", version, exc)
            return None
        self.version = version
        learner = make(snapshot)
        self._saved_events = learner.events
        logger.info("personalize: learning resumes from snapshot %d", version)
        return learner

    def due(self, learner: Learner) -> bool:
        """True when there is something new to save and the last save is ``every`` ago."""
        return learner.events > self._saved_events and self._clock() - self._saved_at >= self.every

    async def save(self, learner: Learner) -> int | None:
        """Write the learner's models as the next version; None when the store failed."""
        events = learner.events
        _, data = learner.snapshot_bytes()
        self._saved_at = self._clock()
        try:
            version = await self.store.put_blob(self.name, data, keep=self.keep)
        except Exception as exc:
            logger.warning("personalize: could not save the model snapshot (%s)", exc)
            return None
        self._saved_events = events
        self.version = version
        return version
