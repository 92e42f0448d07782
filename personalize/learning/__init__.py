"""Learned segments (river, the ``personalize[learn]`` extra): propensity, clusters, anomalies.

The models are river estimators (``base.Classifier``, ``base.Clusterer``,
``base.AnomalyDetector``), so importing them imports river; without the ``learn`` extra the
import says what to ``pip install``. The rest of personalize never imports this package unless
learning is switched on.

>>> from personalize.learning import PropensityModel, session_features
>>> PropensityModel().predict_proba_one({"channel": "email"})
{True: 0.5, False: 0.5}
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
