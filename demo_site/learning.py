"""The demo's learning: models that start from a day of simulated traffic, so learned segments
show from the first page instead of after a thousand real sessions.

The models are the library's defaults, warmed up on ``personalize simulate`` traffic (four
personas; paid search on a phone in the evening converts 4x); the demo's own visitors then
keep teaching them. ``segments/learned.yaml`` names the cluster of bargain hunters; the
editor UI's model page shows every cluster and what sets it apart.
"""

from __future__ import annotations

import copy
import functools

from personalize.learning import ModelSet, simulate
from personalize.learning.features import pages_from_record
from personalize.learning.runtime import LocalLearning

WARM_SESSIONS = 2500  # simulated sessions learned at start (a few seconds)
SEED = 1  # fixed: the clusters, and the names segments/learned.yaml gives them, stay put


def warm_models(sessions: int = WARM_SESSIONS) -> ModelSet:
    """Default models that learned ``sessions`` simulated sessions."""
    models = ModelSet.create(seed=SEED)
    for record in simulate(sessions, seed=SEED, lift=4.0):
        pages = pages_from_record(record)
        models.propensity.learn_session(pages, bool(record["converted"]))
        models.clusterer.learn_one(pages[0])
        models.anomaly.learn_one(pages[0])
    return models


@functools.cache
def _warmed() -> ModelSet:
    return warm_models()


def demo_learning() -> LocalLearning:
    """In-process learning with warmed-up models (warmed once per process, copied per app)."""
    return LocalLearning(copy.deepcopy(_warmed()))
