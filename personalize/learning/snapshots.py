"""Model snapshots: the learned models, pickled, with a monotonic version and a creation time.

Only load snapshots from a place you trust (your own Redis, your own disk): they are pickles.

>>> models = ModelSet.create(seed=1)
>>> snap = Snapshot(version=3, created_at=1.5, models=models)
>>> back = Snapshot.loads(snap.dumps())
>>> back.version, back.created_at, type(back.models.propensity).__name__
(3, 1.5, 'PropensityModel')
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass

from personalize.learning.anomaly import AnomalyScorer
from personalize.learning.clusters import SessionClusterer
from personalize.learning.propensity import PropensityModel

__all__ = ["ModelSet", "Snapshot"]

# The models' pickled state changed with the session-level propensity and the stable
# clusterer (PZLS2): older snapshots are refused rather than half-loaded.
_MAGIC = b"PZLS2\n"
_OLDER = (b"PZLS1\n",)


@dataclass(slots=True)
class ModelSet:
    """The learned-segment models that travel together in a snapshot."""

    propensity: PropensityModel
    clusterer: SessionClusterer
    anomaly: AnomalyScorer

    @classmethod
    def create(cls, *, seed: int = 0) -> ModelSet:
        """Fresh models with default parameters."""
        return cls(PropensityModel(), SessionClusterer(seed=seed), AnomalyScorer(seed=seed))


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A versioned, timestamped copy of a :class:`ModelSet`."""

    version: int
    created_at: float  # seconds since the epoch
    models: ModelSet

    def dumps(self) -> bytes:
        """The snapshot as bytes (a tagged pickle)."""
        payload = (self.version, self.created_at, self.models)
        return _MAGIC + pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def loads(cls, data: bytes) -> Snapshot:
        """A snapshot from :meth:`dumps` bytes; ValueError for anything else."""
        if not data.startswith(_MAGIC):
            if data.startswith(_OLDER):
                raise ValueError(
                    "a snapshot of an older personalize version: the models start over"
                )
            raise ValueError("not a personalize model snapshot")
        version, created_at, models = pickle.loads(
            data[len(_MAGIC) :]
        )  # trusted: see module docstring
        if not isinstance(models, ModelSet):
            raise ValueError("snapshot does not hold a ModelSet")
        return cls(int(version), float(created_at), models)
