"""Learned segments (river, the ``personalize[learn]`` extra): propensity, clusters, anomalies.

The models are river estimators (``base.Classifier``, ``base.Clusterer``,
``base.AnomalyDetector``), so importing them imports river; without the ``learn`` extra the
import says what to ``pip install``. Names are imported from their modules when first used, so
``personalize simulate`` and the rest of personalize work without river.

>>> from personalize.learning import PropensityModel, session_features
>>> PropensityModel().predict_proba_one({"channel": "email"})
{True: 0.5, False: 0.5}
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Eager: these functions share their module's name, which the import system would otherwise
# bind here; neither needs river.
from personalize.learning.evaluate import EvalPoint, evaluate
from personalize.learning.simulate import simulate

if TYPE_CHECKING:
    from personalize.learning.anomaly import AnomalyScorer
    from personalize.learning.clusters import SessionClusterer
    from personalize.learning.features import features_from_record, session_features
    from personalize.learning.labeller import SessionLabeller
    from personalize.learning.learner import Learner
    from personalize.learning.propensity import PropensityModel, Quality
    from personalize.learning.scaleout import EventStream, ModelClient, StreamLearner
    from personalize.learning.snapshots import ModelSet, Snapshot

_HOMES = {
    "AnomalyScorer": "anomaly",
    "EventStream": "scaleout",
    "Learner": "learner",
    "ModelClient": "scaleout",
    "ModelSet": "snapshots",
    "PropensityModel": "propensity",
    "Quality": "propensity",
    "SessionClusterer": "clusters",
    "SessionLabeller": "labeller",
    "Snapshot": "snapshots",
    "StreamLearner": "scaleout",
    "features_from_record": "features",
    "session_features": "features",
}


def __getattr__(name: str) -> Any:
    # Imported on first use: the models need river, the simulator and the CLI do not.
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"personalize.learning.{home}"), name)


__all__ = [
    "AnomalyScorer",
    "EvalPoint",
    "EventStream",
    "Learner",
    "ModelClient",
    "ModelSet",
    "PropensityModel",
    "Quality",
    "SessionClusterer",
    "SessionLabeller",
    "Snapshot",
    "StreamLearner",
    "evaluate",
    "features_from_record",
    "session_features",
    "simulate",
]
