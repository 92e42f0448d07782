"""Uplift and its always-valid interval: the formulas, and the proof by simulation."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from personalize.impact.simulate import check, simulate_days
from personalize.impact.stats import MIN_VISITORS, ArmStats, boundary, uplift


def _arm(values: list[float]) -> ArmStats:
    return ArmStats(
        len(values), sum(v > 0 for v in values), math.fsum(values), math.fsum(v * v for v in values)
    )


def test_the_arm_statistics_are_the_sample_mean_and_variance() -> None:
    rng = random.Random(3)
    values = [rng.expovariate(0.02) if rng.random() < 0.1 else 0.0 for _ in range(5_000)]
    arm = _arm(values)
    assert arm.mean("value") == pytest.approx(statistics.fmean(values))
    assert arm.variance("value") == pytest.approx(statistics.variance(values))
    converted = [1.0 if v > 0 else 0.0 for v in values]
    assert arm.mean("conversion") == pytest.approx(statistics.fmean(converted))
    assert arm.variance("conversion") == pytest.approx(statistics.variance(converted))


def test_the_boundary_is_wider_than_one_look_and_shrinks_with_data() -> None:
    widths = [boundary(n) * math.sqrt(n) for n in (1_000, 10_000, 100_000, 1_000_000)]
    assert all(w > 1.96 for w in widths)  # the price of looking as often as one likes
    assert all(boundary(n) > boundary(n * 10) for n in (1_000, 10_000, 100_000))
    assert boundary(0) == math.inf
    assert boundary(10_000, alpha=0.01) > boundary(10_000, alpha=0.05)


def test_the_interval_is_the_delta_method_times_the_boundary() -> None:
    holdout = ArmStats(2_000, 100, 5_000.0, 600_000.0)
    personalized = ArmStats(18_000, 1_080, 54_000.0, 6_500_000.0)
    found = uplift(personalized, holdout, "conversion")
    assert found is not None
    p, h = 0.06, 0.05
    var = (p * (1 - p) * 18_000 / 17_999 / 18_000 + (p / h) ** 2 * h * (1 - h) * 2_000 / 1_999
           / 2_000) / h**2  # fmt: skip
    half = math.sqrt(var * 20_000) * boundary(20_000)
    assert found.estimate == pytest.approx(0.2)
    assert (found.low, found.high) == pytest.approx((0.2 - half, 0.2 + half))
    assert found.winner is None  # +20 % on 100 holdout conversions is not yet sure
    assert (found.personalized, found.holdout) == pytest.approx((p, h))


def test_no_interval_until_both_arms_have_enough_data() -> None:
    big = ArmStats(50_000, 2_500, 1.0, 1.0)
    assert uplift(big, ArmStats(MIN_VISITORS - 1, 20, 1.0, 1.0), "conversion") is None
    assert uplift(big, ArmStats(5_000, 3, 1.0, 1.0), "conversion") is None  # too few converted
    assert uplift(big, ArmStats(5_000, 20, 0.0, 0.0), "value") is None  # no value at all
    assert uplift(ArmStats(0, 0, 0.0, 0.0), big, "value") is None


def test_a_worse_personalization_is_called_out_too() -> None:
    holdout = ArmStats(20_000, 1_400, 1.0, 1.0)
    personalized = ArmStats(180_000, 9_000, 1.0, 1.0)  # 5 % vs 7 %
    found = uplift(personalized, holdout, "conversion")
    assert found is not None and found.winner == "holdout" and found.high < 0


def test_the_simulation_plants_what_it_says() -> None:
    days = simulate_days(days=20, visitors=20_000, holdout=0.1, lift=0.2, seed=5)
    personalized, held = days[-1]
    assert held.visitors / (held.visitors + personalized.visitors) == pytest.approx(0.1, abs=0.01)
    assert held.mean("conversion") == pytest.approx(0.05, rel=0.05)
    assert personalized.mean("conversion") == pytest.approx(0.06, rel=0.03)
    assert held.mean("value") / held.mean("conversion") == pytest.approx(50.0, rel=0.1)
    assert days == simulate_days(days=20, visitors=20_000, holdout=0.1, lift=0.2, seed=5)


def test_a_planted_uplift_is_covered_and_found() -> None:
    found = check(runs=200, lift=0.2, seed=1_000)
    for metric in ("conversion", "value"):
        assert found[metric].coverage >= 0.9, found[metric]
        assert found[metric].wrong_way == 0
    assert found["conversion"].declared_share >= 0.8, found["conversion"]


def test_looking_every_day_at_no_uplift_rarely_declares_a_winner() -> None:
    found = check(runs=200, lift=0.0, seed=2_000)
    for metric in ("conversion", "value"):
        assert found[metric].declared_share <= 0.05, found[metric]
        assert found[metric].coverage >= 0.9, found[metric]
