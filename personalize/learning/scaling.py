"""Numbers for linear models, tamed without hand-tuning: automatic log scaling, then
standardisation with clipping.

Counts, durations and amounts arrive skewed: a few sessions with 3,000 seconds on product
pages dwarf the rest, and a linear model's weights swing with them. :class:`AutoScaler` looks
at each numeric feature's first ``warmup`` values (more while they are all equal) and decides,
once, whether it goes through ``log1p``: when it is never negative and clearly right-skewed
(sample skewness above ``skew``).
Until its transform is decided a feature is left out (a few dozen sessions); afterwards the
decision never changes, so learned weights keep their meaning. Decided values are standardised
with running means and variances (river's ``preprocessing.StandardScaler``) and clipped to
±``clip`` standard deviations.

>>> scaler = AutoScaler(warmup=20)
>>> for i in range(40):
...     scaler.learn_one({"seconds": float(i % 10) ** 3, "share": (i % 7) / 7})
>>> scaler.logged, sorted(scaler.decided)
(frozenset({'seconds'}), ['seconds', 'share'])
>>> x = scaler.transform_one({"seconds": 1e9, "share": 0.5})
>>> x["seconds"], round(x["share"], 2)
(5.0, 0.32)
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from personalize.learning.extras import river

__all__ = ["AutoScaler", "skewness"]


def skewness(values: Collection[float]) -> float:
    """The sample skewness of ``values``; 0.0 when they do not vary.

    >>> skewness([0, 0, 0, 0, 10]), skewness([1, 2, 3])
    (1.5, 0.0)
    """
    n = len(values)
    if n < 3:
        return 0.0
    mean = sum(values) / n
    m2 = sum((v - mean) ** 2 for v in values) / n
    if m2 <= 1e-300:
        return 0.0
    m3 = sum((v - mean) ** 3 for v in values) / n
    return float(m3 / m2**1.5)


class AutoScaler:
    """Per-feature automatic ``log1p``, running standardisation, clipping (see module doc).

    ``log1p`` names features that always go through ``log1p`` and ``raw`` ones that never do;
    the others are decided from their first ``warmup`` values (``auto=False``: never).
    """

    def __init__(
        self,
        *,
        warmup: int = 50,
        skew: float = 1.0,
        clip: float = 5.0,
        log1p: Collection[str] = (),
        raw: Collection[str] = (),
        auto: bool = True,
    ) -> None:
        self.warmup = warmup
        self.skew = skew
        self.clip = clip
        self.auto = auto
        # feature -> True (log1p) / False (as it is); absent while undecided
        self._log: dict[str, bool] = {k: True for k in log1p}
        self._log.update({k: False for k in raw if k not in self._log})
        self._pending: dict[str, list[float]] = {}
        self._scaler: Any = river.preprocessing.StandardScaler()

    @property
    def decided(self) -> dict[str, bool]:
        """Each decided feature and whether it goes through ``log1p``."""
        return dict(self._log)

    @property
    def logged(self) -> frozenset[str]:
        """The features that go through ``log1p``."""
        return frozenset(k for k, v in self._log.items() if v)

    def _transformed(self, num: Mapping[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        log = self._log
        for key, value in num.items():
            mode = log.get(key)
            if mode is None:
                if self.auto:
                    continue  # undecided: left out until its transform is known
                mode = False
            out[key] = math.copysign(math.log1p(abs(value)), value) if mode else value
        return out

    def learn_one(self, num: Mapping[str, float]) -> None:
        """Learn one example's numbers (decides transforms once enough values were seen)."""
        transformed = self._transformed(num)  # before deciding: a deciding value is pending
        if self.auto:
            for key, value in num.items():
                if key not in self._log:
                    self._observe(key, value)
        self._scaler.learn_one(transformed)

    def _observe(self, key: str, value: float) -> None:
        pending = self._pending.setdefault(key, [])
        pending.append(value)
        if len(pending) < self.warmup:
            return
        low = min(pending)
        if low == max(pending) and len(pending) < 20 * self.warmup:
            return  # constant so far (a rare count that has been 0): wait until it varies
        del self._pending[key]
        logged = low >= 0 and (low == max(pending) or skewness(pending) > self.skew)
        self._log[key] = logged
        for v in pending:  # the scaler starts from what the decision was based on
            self._scaler.learn_one({key: math.log1p(v) if logged else v})

    def transform_one(self, num: Mapping[str, float]) -> dict[str, float]:
        """The decided features, transformed, standardised and clipped."""
        clip = self.clip
        scaled: dict[str, float] = self._scaler.transform_one(self._transformed(num))
        return {k: -clip if v < -clip else clip if v > clip else v for k, v in scaled.items()}
