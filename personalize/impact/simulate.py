"""Proof by simulation: does the uplift interval keep its promises?

:func:`simulate_days` draws a holdout experiment with a known true uplift: every day
``visitors`` new visitors arrive, a ``holdout`` share of them is held out; a holdout visitor
converts with probability ``base_rate``, a personalized one with ``base_rate * (1 + lift)``,
and each converter's order value is log-normal with mean ``order_value``. So the true relative
uplift is ``lift`` for the conversion rate and for the value per visitor alike.

:func:`check` runs many seeded experiments and an editor looking every day: how often the last
interval covers the truth, how often some day's interval declares a winner (with ``lift=0``
that is the false-positive rate under daily peeking), and on which day it first does.

>>> days = simulate_days(days=3, visitors=2_000, seed=1)
>>> len(days), days[-1][0].visitors + days[-1][1].visitors
(3, 6000)
>>> found = check(runs=5, days=14, visitors=5_000, lift=0.2, seed=0)
>>> found["conversion"].runs, 0 <= found["value"].covered <= 5
(5, True)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from personalize.impact.stats import ALPHA, ArmStats, Metric, uplift

__all__ = ["METRICS", "Check", "check", "simulate_days"]

METRICS: tuple[Metric, ...] = ("conversion", "value")


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """A Binomial(n, p) draw in O(n p) steps: the gaps between successes are geometric."""
    if p <= 0.0 or n <= 0:
        return 0
    if p >= 1.0:
        return n
    log_q = math.log1p(-p)
    count, position = 0, 0
    while True:
        position += int(math.log(1.0 - rng.random()) / log_q) + 1
        if position > n:
            return count
        count += 1


def _arm(rng: random.Random, n: int, rate: float, order_value: float, sigma: float) -> ArmStats:
    converted = _binomial(rng, n, rate)
    mu = math.log(order_value) - sigma * sigma / 2  # so that the mean order is order_value
    values = [rng.lognormvariate(mu, sigma) for _ in range(converted)]
    return ArmStats(n, converted, math.fsum(values), math.fsum(v * v for v in values))


def simulate_days(
    *,
    days: int = 28,
    visitors: int = 5_000,  # new visitors a day
    holdout: float = 0.1,
    base_rate: float = 0.05,
    lift: float = 0.0,
    order_value: float = 50.0,
    value_sigma: float = 0.8,  # of the log of an order's value: how spread out orders are
    seed: int = 0,
) -> list[tuple[ArmStats, ArmStats]]:
    """(personalized, holdout) statistics as they stand at the end of each day."""
    rng = random.Random(seed)
    personalized = ArmStats(0, 0, 0.0, 0.0)
    held = ArmStats(0, 0, 0.0, 0.0)
    out = []
    for _ in range(days):
        n_held = _binomial(rng, visitors, holdout)
        held = held + _arm(rng, n_held, base_rate, order_value, value_sigma)
        rate = min(1.0, base_rate * (1.0 + lift))
        personalized = personalized + _arm(rng, visitors - n_held, rate, order_value, value_sigma)
        out.append((personalized, held))
    return out


@dataclass(frozen=True, slots=True)
class Check:
    """What :func:`check` found over its runs, for one metric."""

    metric: Metric
    runs: int
    lift: float
    covered: int  # runs whose last interval covers the true uplift
    declared: int  # runs in which some day's interval excluded 0
    wrong_way: int  # runs that declared the holdout better while it is not
    mean_width: float  # of the last interval
    median_day: float | None  # first day a winner was declared, over the runs that did

    @property
    def coverage(self) -> float:
        return self.covered / self.runs if self.runs else 0.0

    @property
    def declared_share(self) -> float:
        return self.declared / self.runs if self.runs else 0.0


def check(
    *,
    runs: int = 200,
    lift: float = 0.0,
    seed: int = 0,
    alpha: float = ALPHA,
    **simulation: float,
) -> dict[Metric, Check]:
    """Run ``runs`` seeded experiments (seeds ``seed`` ... ``seed + runs - 1``), looking at both
    metrics' intervals every day; ``simulation`` goes to :func:`simulate_days`."""
    tallies = {metric: _Tally() for metric in METRICS}
    for run in range(runs):
        days = simulate_days(seed=seed + run, lift=lift, **simulation)  # type: ignore[arg-type]
        for metric, tally in tallies.items():
            tally.run(days, metric, lift, alpha)
    return {metric: tally.result(metric, runs, lift) for metric, tally in tallies.items()}


@dataclass(slots=True)
class _Tally:
    covered: int = 0
    declared: int = 0
    wrong: int = 0
    widths: list[float] = field(default_factory=list)
    first_days: list[int] = field(default_factory=list)

    def run(
        self, days: list[tuple[ArmStats, ArmStats]], metric: Metric, lift: float, alpha: float
    ) -> None:
        first: int | None = None
        last = None
        for day, (personalized, held) in enumerate(days, start=1):
            found = uplift(personalized, held, metric, alpha=alpha)
            if found is None:
                continue
            last = found
            if found.winner is not None and first is None:
                first = day
                self.wrong += found.winner == "holdout" and lift >= 0
        if first is not None:
            self.declared += 1
            self.first_days.append(first)
        if last is not None:
            self.covered += last.low <= lift <= last.high
            self.widths.append(last.high - last.low)

    def result(self, metric: Metric, runs: int, lift: float) -> Check:
        days = sorted(self.first_days)
        median = None
        if days:
            mid = len(days) // 2
            median = float(days[mid]) if len(days) % 2 else (days[mid - 1] + days[mid]) / 2
        width = sum(self.widths) / len(self.widths) if self.widths else math.inf
        return Check(metric, runs, lift, self.covered, self.declared, self.wrong, width, median)
