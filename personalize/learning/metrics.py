"""Prequential quality metrics that stay O(1) per update and exact enough to gate decisions.

river's ``metrics.ROCAUC`` discretises the ROC curve at thresholds spread evenly over
``[0, 1]``: with conversion rates of a few per cent nearly every prediction falls under the
second threshold and the estimate is coarse, while more thresholds cost O(thresholds) per
update. :class:`BinnedAUC` instead bins scores on the logit scale, where rare-event
probabilities spread out, and counts ties within a bin as half.

>>> auc = BinnedAUC()
>>> for y, p in [(0, .1), (0, .4), (1, .35), (1, .8)]:
...     auc.update(bool(y), p)
>>> auc.get()
0.75
"""

from __future__ import annotations

import math

__all__ = ["BinnedAUC"]


class BinnedAUC:
    """ROC AUC from score histograms of positives and negatives (``bins`` over logit ±``span``)."""

    def __init__(self, bins: int = 400, span: float = 10.0) -> None:
        self.bins = bins
        self.span = span
        self._pos = [0] * bins
        self._neg = [0] * bins
        self._scale = bins / (2 * span)

    def _bin(self, p: float) -> int:
        p = min(max(p, 1e-12), 1 - 1e-12)
        i = int((math.log(p / (1 - p)) + self.span) * self._scale)
        return min(max(i, 0), self.bins - 1)

    def update(self, y_true: bool, y_pred: float) -> None:
        """Count one labelled prediction (a probability of the positive class)."""
        (self._pos if y_true else self._neg)[self._bin(y_pred)] += 1

    @property
    def n(self) -> int:
        """Predictions counted."""
        return self.n_pos + self.n_neg

    @property
    def n_pos(self) -> int:
        """Predictions of positive examples counted."""
        return sum(self._pos)

    @property
    def n_neg(self) -> int:
        """Predictions of negative examples counted."""
        return sum(self._neg)

    def get(self) -> float:
        """The area under the ROC curve; 0.5 until both classes were seen."""
        n_pos, n_neg = sum(self._pos), sum(self._neg)
        if not n_pos or not n_neg:
            return 0.5
        wins = 0.0
        negatives_below = 0
        for pos, neg in zip(self._pos, self._neg, strict=True):
            wins += pos * (negatives_below + 0.5 * neg)
            negatives_below += neg
        return wins / (n_pos * n_neg)
