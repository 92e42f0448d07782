"""Learned segments (river, the ``personalize[learn]`` extra): propensity, clusters, anomalies.

Importing this package does not import river; building a model does, and says what to
``pip install`` when it is missing.

>>> from personalize.learning import PropensityModel, session_features
>>> PropensityModel().predict_proba_one({"channel": "email"})
0.5
"""

from __future__ import annotations

from personalize.learning.anomaly import AnomalyScorer
from personalize.learning.clusters import SessionClusterer
from personalize.learning.evaluate import EvalPoint, evaluate
from personalize.learning.features import features_from_record, session_features
from personalize.learning.labeller import SessionLabeller
from personalize.learning.learner import Learner
from personalize.learning.propensity import PropensityModel, Quality
from personalize.learning.scaleout import EventStream, ModelClient, StreamLearner
from personalize.learning.simulate import simulate
from personalize.learning.snapshots import ModelSet, Snapshot

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
