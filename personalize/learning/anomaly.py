"""An anomaly score that flags visits far from the norm.

river's ``anomaly.HalfSpaceTrees`` wants features in ``[0, 1]``: numbers go through
``preprocessing.MinMaxScaler``, and each categorical becomes a number too — its rarity
(1 minus the share of sessions with that value), so "a country nobody comes from" counts.
Scores are in ``[0, 1]``, higher is stranger; ``flag_one`` compares with ``threshold`` or,
by default, with the running ``q``-quantile of the scores seen. Flagged sessions do not
learn, so a burst of outliers cannot redefine the norm. Until a first window of sessions was
learned (and, without a ``threshold``, enough scores seen to place the cutoff) the scorer is
not ``ready``: its scores mean nothing yet, and rules should not see them.

>>> from personalize.learning.simulate import simulate
>>> from personalize.learning.features import features_from_record
>>> scorer = AnomalyScorer(seed=1)
>>> for record in simulate(2000, seed=1):
...     scorer.learn_one(features_from_record(record))
>>> odd = features_from_record(next(simulate(1, seed=5, outlier_rate=1.0)))
>>> normal = features_from_record(next(simulate(1, seed=5)))
>>> scorer.score_one(odd) > scorer.score_one(normal), scorer.flag_one(odd)
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from personalize.learning.encoding import split
from personalize.learning.extras import river, river_base

__all__ = ["MIN_SCORED", "AnomalyScorer"]

MIN_SCORED = 200  # scores seen before the running quantile is trusted as the cutoff

FeatureDict = Mapping[str, float | str | bool | int | None]


class AnomalyScorer(river_base.AnomalyDetector):  # type: ignore[misc]  # river is untyped
    """Half-space trees on ``[0, 1]``-scaled numbers and categorical rarities."""

    def __init__(
        self,
        *,
        n_trees: int = 10,
        height: int = 8,
        window_size: int = 1000,
        threshold: float | None = None,
        q: float = 0.99,
        max_categories: int = 1000,  # distinct values counted per categorical feature
        seed: int = 0,
    ) -> None:
        self.n_trees = n_trees
        self.height = height
        self.window_size = window_size
        self.threshold = threshold
        self.q = q
        self.max_categories = max_categories
        self.seed = seed
        self._scaler: Any = river.preprocessing.MinMaxScaler()
        self._hst: Any = river.anomaly.HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )
        self._quantile: Any = river.stats.Quantile(q)
        self._counts: dict[str, dict[str, int]] = {}
        self._n = 0
        self._scored = 0  # scores the cutoff's quantile has seen

    def _vector(self, x: FeatureDict) -> dict[str, float]:
        num, _ = split(x)
        vector: dict[str, float] = self._scaler.transform_one(num) if self._n else dict(num)
        n = self._n or 1
        for key, value in x.items():
            if isinstance(value, str):
                seen = self._counts.get(key, {}).get(value, 0)
                vector[key] = 1.0 - seen / n
        return vector

    def score_one(self, x: FeatureDict) -> float:
        """How far from the norm the session is: 0 (typical) .. 1 (nothing like it)."""
        return float(self._hst.score_one(self._vector(x)))

    @property
    def cutoff(self) -> float:
        """The score above which a session is flagged (``threshold`` or the running quantile)."""
        if self.threshold is not None:
            return self.threshold
        value = self._quantile.get()
        return 1.0 if value is None else float(value)

    @property
    def ready(self) -> bool:
        """True once scores mean something: a window learned, and the cutoff placed."""
        if self._n < self.window_size:
            return False
        return self.threshold is not None or self._scored >= MIN_SCORED

    def flag_one(self, x: FeatureDict) -> bool:
        """True if the session is far from the norm (its score is above ``cutoff``)."""
        return self.ready and self.score_one(x) > self.cutoff

    def learn_one(self, x: FeatureDict) -> None:
        """Learn one session as part of the norm, unless it is already flagged as anomalous."""
        if self._n >= self.window_size:
            score = self.score_one(x)
            flagged = score > self.cutoff
            self._quantile.update(score)  # every score, or the cutoff would ratchet down
            self._scored += 1
            if flagged and self._n >= 2 * self.window_size:
                return
        num, _ = split(x)
        self._scaler.learn_one(num)
        for key, value in x.items():
            if isinstance(value, str):
                counts = self._counts.setdefault(key, {})
                if value in counts or len(counts) < self.max_categories:
                    counts[value] = counts.get(value, 0) + 1
        self._n += 1
        self._hst.learn_one(self._vector(x))
