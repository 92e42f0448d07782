"""Uplift of personalized over holdout visitors, with always-valid confidence intervals.

Each arm is summarised by four sums over its visitors (:class:`ArmStats`): how many were
exposed, how many converted, and the sum and sum of squares of the value attributed to each.
:func:`uplift` estimates the relative uplift of the personalized arm's mean over the holdout's
(``mean_p / mean_h - 1``) for the conversion rate or the value per visitor, with a
*confidence sequence*: an interval that covers the true uplift at every moment at once, with
probability ``1 - alpha``, so editors may look every day without inflating false positives.

The boundary is the asymptotic confidence sequence of Waudby-Smith, Arnold, Wu, Chugg and
Ramdas ("Time-uniform central limit theory and asymptotic confidence sequences", Annals of
Statistics 2024; the normal-mixture boundary of Robbins, as in Howard et al. 2021), applied to
the delta-method variance of the ratio of means; GrowthBook's sequential testing is the same.
docs/impact.md says why this and not a fixed-horizon test or a Bayesian posterior.

>>> holdout = ArmStats(visitors=10_000, converted=500, value=25_000.0, value_sq=2_500_000.0)
>>> personalized = ArmStats(visitors=90_000, converted=5_400, value=270_000.0,
...                         value_sq=27_000_000.0)
>>> found = uplift(personalized, holdout, "conversion")
>>> round(found.estimate, 3), found.low < 0.2 < found.high, found.winner
(0.2, True, 'personalized')
>>> uplift(personalized, ArmStats(visitors=3, converted=0, value=0.0, value_sq=0.0),
...        "conversion") is None
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ALPHA",
    "MIN_CONVERTED",
    "MIN_VISITORS",
    "TUNED_FOR",
    "ArmStats",
    "Metric",
    "Uplift",
    "boundary",
    "uplift",
]

Metric = Literal["conversion", "value"]
ALPHA = 0.05  # 1 - the confidence of every interval, simultaneously over all looks
TUNED_FOR = 10_000  # visitors at which the boundary is tightest (it is valid at every size)
MIN_VISITORS = 100  # per arm, before an interval is given at all
MIN_CONVERTED = 10  # converted visitors per arm, before an interval is given at all


@dataclass(frozen=True, slots=True)
class ArmStats:
    """Sufficient statistics of one arm: exposed visitors, converted visitors, and the sum and
    sum of squares over visitors of the value attributed to each."""

    visitors: int
    converted: int
    value: float
    value_sq: float

    def __add__(self, other: ArmStats) -> ArmStats:
        return ArmStats(
            self.visitors + other.visitors,
            self.converted + other.converted,
            self.value + other.value,
            self.value_sq + other.value_sq,
        )

    def mean(self, metric: Metric) -> float:
        """Conversion rate or value per visitor (0 without visitors).

        >>> ArmStats(visitors=4, converted=1, value=10.0, value_sq=100.0).mean("value")
        2.5
        """
        if self.visitors <= 0:
            return 0.0
        total = self.converted if metric == "conversion" else self.value
        return total / self.visitors

    def variance(self, metric: Metric) -> float:
        """The per-visitor variance of the metric (a conversion is 0 or 1 per visitor)."""
        n = self.visitors
        if n <= 1:
            return 0.0
        mean = self.mean(metric)
        if metric == "conversion":
            return mean * (1.0 - mean) * n / (n - 1)
        # Sums of many floats: clamp the rounding error that could make it negative.
        return max(0.0, (self.value_sq - n * mean * mean) / (n - 1))


@dataclass(frozen=True, slots=True)
class Uplift:
    """Relative uplift (0.2 is +20 %) of personalized over holdout, and its interval."""

    metric: Metric
    estimate: float
    low: float
    high: float
    personalized: float  # the arm's mean: conversion rate or value per visitor
    holdout: float

    @property
    def winner(self) -> Literal["personalized", "holdout"] | None:
        """Which arm is better with confidence (the interval excludes 0), or None."""
        if self.low > 0:
            return "personalized"
        if self.high < 0:
            return "holdout"
        return None


def boundary(n: int, *, alpha: float = ALPHA, tuned_for: int = TUNED_FOR) -> float:
    """The confidence sequence's half-width for ``n`` observations of unit variance.

    The mean of ``n`` observations with standard deviation ``s`` is within ``s * boundary(n)``
    of the truth at every ``n`` at once, with probability ``1 - alpha`` (asymptotically).
    ``tuned_for`` only moves where it is tightest.

    >>> round(boundary(10_000) * math.sqrt(10_000), 2)  # vs 1.96 for a single look
    3.04
    """
    if n <= 0:
        return math.inf
    log_term = -2.0 * math.log(alpha)
    rho2 = (log_term + math.log(log_term + 1.0)) / tuned_for
    grown = n * rho2 + 1.0
    return math.sqrt(2.0 * grown / (n * n * rho2) * math.log(math.sqrt(grown) / alpha))


def uplift(
    personalized: ArmStats,
    holdout: ArmStats,
    metric: Metric,
    *,
    alpha: float = ALPHA,
    tuned_for: int = TUNED_FOR,
) -> Uplift | None:
    """The relative uplift of ``personalized`` over ``holdout`` with its always-valid interval;
    None until each arm has :data:`MIN_VISITORS` visitors and :data:`MIN_CONVERTED`
    conversions (the interval rests on a normal approximation that needs them)."""
    if min(personalized.visitors, holdout.visitors) < MIN_VISITORS:
        return None
    if min(personalized.converted, holdout.converted) < MIN_CONVERTED:
        return None
    mean_p, mean_h = personalized.mean(metric), holdout.mean(metric)
    if mean_h <= 0:
        return None
    ratio = mean_p / mean_h
    # Delta method: the variance of mean_p / mean_h, from each arm's variance of its mean.
    var_ratio = (
        personalized.variance(metric) / personalized.visitors
        + ratio * ratio * holdout.variance(metric) / holdout.visitors
    ) / (mean_h * mean_h)
    # The sequence runs over all visitors of both arms: scale to one visitor's variance.
    n = personalized.visitors + holdout.visitors
    half = math.sqrt(var_ratio * n) * boundary(n, alpha=alpha, tuned_for=tuned_for)
    return Uplift(metric, ratio - 1.0, ratio - 1.0 - half, ratio - 1.0 + half, mean_p, mean_h)
