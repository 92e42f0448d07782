"""The propensity model: the probability that this session converts, learned online.

A lean river pipeline: one-hot categoricals (and pairwise crosses of them), ``log1p`` on
skewed numbers, ``preprocessing.StandardScaler`` on the numbers (clipped, so one extreme
visit cannot swing the weights), then ``linear_model.LogisticRegression``. Every
``learn_one`` first predicts, so ``quality`` is the prequential (test-then-train) ROC AUC and
log loss; decisions should only use the model once ``ready``. It is a river
``base.Classifier``: ``predict_proba_one`` gives ``{True: p, False: 1 - p}`` and ``clone()``
gives a fresh model with the same parameters.

>>> model = PropensityModel(min_labelled=20, min_auc=0.6)
>>> for i in range(200):
...     model.learn_one({"channel": "email" if i % 2 else "direct"}, y=i % 2 == 1 and i % 4 != 3)
>>> email, direct = (model.predict_proba_one({"channel": c})[True] for c in ("email", "direct"))
>>> email > direct, model.clone().quality.n_labelled
(True, 0)
>>> model.quality.n_labelled, model.quality.auc > 0.7, model.ready
(200, True, True)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from personalize.learning.encoding import split
from personalize.learning.extras import river, river_base
from personalize.learning.metrics import BinnedAUC

__all__ = ["DEFAULT_CROSSES", "PropensityModel", "Quality"]

FeatureDict = Mapping[str, float | str | bool | int | None]

#: Pairs of categorical features crossed by default: channel, device and time of day interact.
DEFAULT_CROSSES: tuple[tuple[str, str], ...] = (
    ("channel", "device_type"),
    ("channel", "daypart"),
    ("device_type", "daypart"),
)


@dataclass(frozen=True, slots=True)
class Quality:
    """Prequential quality of a model: labelled sessions seen, ROC AUC and mean log loss."""

    n_labelled: int
    n_positive: int
    auc: float
    logloss: float


class PropensityModel(river_base.Classifier):  # type: ignore[misc]  # river is untyped
    """Online logistic regression on mixed numeric and categorical feature dicts.

    ``log1p`` names numeric features that arrive raw and skewed (counts, durations);
    ``crosses`` pairs categorical features into interaction one-hots; ``clip`` bounds scaled
    numbers to ±clip standard deviations. The quality gate opens (``ready``) after
    ``min_labelled`` labelled sessions with a prequential AUC above ``min_auc``.
    """

    def __init__(
        self,
        *,
        learning_rate: float = 0.02,
        l2: float = 1e-5,
        log1p: Collection[str] = (),
        crosses: Sequence[tuple[str, str]] = DEFAULT_CROSSES,
        clip: float = 5.0,
        threshold: float = 0.5,
        min_labelled: int = 1000,
        min_auc: float = 0.6,
    ) -> None:
        self.learning_rate = learning_rate
        self.l2 = l2
        self.log1p = frozenset(log1p)
        self.crosses = tuple(crosses)
        self.clip = clip
        self.threshold = threshold
        self.min_labelled = min_labelled
        self.min_auc = min_auc
        self._scaler: Any = river.preprocessing.StandardScaler()
        self._lr: Any = river.linear_model.LogisticRegression(
            optimizer=river.optim.SGD(learning_rate), l2=l2
        )
        self._auc = BinnedAUC()
        self._logloss: Any = river.metrics.LogLoss()
        self._n = 0
        self._n_pos = 0

    def _transform(self, num: dict[str, float], cat: dict[str, float]) -> dict[str, float]:
        clip = self.clip
        for key, value in self._scaler.transform_one(num).items():
            cat[key] = -clip if value < -clip else clip if value > clip else value
        return cat

    def predict_proba_one(self, x: FeatureDict) -> dict[bool, float]:
        """``{True: p, False: 1 - p}``: the probability that the session converts, or not."""
        num, cat = split(x, log1p=self.log1p, crosses=self.crosses)
        p: float = self._lr.predict_proba_one(self._transform(num, cat))[True]
        return {True: p, False: 1.0 - p}

    def predict_one(self, x: FeatureDict) -> bool:
        """Whether the session is predicted to convert (probability >= ``threshold``)."""
        return self.predict_proba_one(x)[True] >= self.threshold

    def learn_one(self, x: FeatureDict, y: bool) -> None:
        """Learn one labelled session, after scoring it for the prequential metrics."""
        num, cat = split(x, log1p=self.log1p, crosses=self.crosses)
        if self._n:
            features = self._transform(num, dict(cat))
            p = self._lr.predict_proba_one(features)[True]
            self._auc.update(y, p)
            self._logloss.update(y, p)
        self._scaler.learn_one(num)
        self._lr.learn_one(self._transform(num, cat), y)
        self._n += 1
        self._n_pos += bool(y)

    @property
    def quality(self) -> Quality:
        """Labelled sessions seen and the prequential ROC AUC and log loss so far."""
        return Quality(self._n, self._n_pos, self._auc.get(), float(self._logloss.get()))

    @property
    def ready(self) -> bool:
        """The quality gate: enough labelled sessions and an AUC above the floor."""
        return self._n >= self.min_labelled and self._auc.get() > self.min_auc

    def __repr__(self) -> str:
        q = self.quality
        return (
            f"PropensityModel(n_labelled={q.n_labelled}, auc={q.auc:.3f}, "
            f"logloss={q.logloss:.4f}, ready={self.ready})"
        )
