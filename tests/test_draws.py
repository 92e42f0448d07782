"""Thompson sampling's draws: exact Beta samples, and the generator seeded per decision."""

from __future__ import annotations

import bisect
import math
import random
import statistics

import pytest

from personalize.content.draws import _OFFSET, DecisionRandom, _doubles, beta_draw, decision_random
from personalize.content.policy import ThompsonPolicy

SHAPES = [(1.0, 1.0), (1.0, 7.5), (4.0, 1.0), (1.3, 1.1), (2.0, 30.0), (30.0, 2.0),
          (11.0, 191.0), (250.0, 4750.0), (1.2, 400.0), (0.5, 0.7), (3.0, 3.0)]  # fmt: skip


def _ks(xs: list[float], ys: list[float]) -> float:
    """The two-sample Kolmogorov-Smirnov statistic."""
    xs, ys = sorted(xs), sorted(ys)
    return max(
        abs(bisect.bisect_right(xs, v) / len(xs) - bisect.bisect_right(ys, v) / len(ys))
        for v in xs + ys
    )


@pytest.mark.parametrize(("a", "b"), SHAPES)
def test_beta_draws_follow_the_beta_distribution(a: float, b: float) -> None:
    n = 20_000
    rng = DecisionRandom(f"{a}/{b}")
    ours = [beta_draw(rng, a, b) for _ in range(n)]
    reference = random.Random(1)
    theirs = [reference.betavariate(a, b) for _ in range(n)]
    mean, var = a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))
    assert abs(statistics.fmean(ours) - mean) < 4 * math.sqrt(var / n)
    assert abs(statistics.pvariance(ours) / var - 1) < 0.06
    assert _ks(ours, theirs) < 1.63 * math.sqrt(2 / n)  # the same distribution (p > 0.01)
    assert all(0.0 <= x <= 1.0 for x in ours)


def test_beta_draws_take_any_random_generator() -> None:
    rng = random.Random(3)
    draws = [beta_draw(rng, 20.0, 80.0) for _ in range(5_000)]
    assert abs(statistics.fmean(draws) - 0.2) < 0.005


def test_the_decision_generator_is_deterministic_and_uniform() -> None:
    first = decision_random("v:1|1800000000.0|hero", b"salt")
    numbers = [first.random() for _ in range(20_000)]
    again = decision_random("v:1|1800000000.0|hero", b"salt")
    assert [again.random() for _ in range(20_000)] == numbers
    other = decision_random("v:1|1800000000.0|hero", b"pepper")
    assert [other.random() for _ in range(10)] != numbers[:10]
    assert all(0.0 < u < 1.0 for u in numbers)
    assert abs(statistics.fmean(numbers) - 0.5) < 0.01
    assert _ks(numbers, [i / len(numbers) for i in range(len(numbers))]) < 0.02
    picks = [DecisionRandom(i).randrange(3) for i in range(3_000)]  # (built on random())
    assert {picks.count(k) // 100 for k in range(3)} <= {9, 10}
    state = first.getstate()
    later = [first.random() for _ in range(12)]
    first.setstate(state)
    assert [first.random() for _ in range(12)] == later


def test_the_decision_generator_gives_each_words_top_52_bits_plus_a_half() -> None:
    """The numbers are built in C from the whole block; each must be exactly what the
    definition says: word k of the BLAKE2b chain as ((k >> 12) + 0.5) * 2 ** -52, taken
    from the last word first (the stream every worker and every stored decision shares)."""
    import hashlib
    import struct

    for seed in [b"", b"seed", bytes(range(64)), b"\xff" * 64, *(os_seed(n) for n in range(50))]:
        rng, block, expected = DecisionRandom(seed), seed, []
        for _ in range(4):
            block = hashlib.blake2b(block, digest_size=64).digest()
            words = struct.unpack(">8Q", block)
            expected += [((w >> 12) + 0.5) * 2.0**-52 for w in reversed(words)]
        assert [rng.random() for _ in range(32)] == expected
    # The extremes of a word, exactly, and never 0.0 nor 1.0.
    block = struct.pack(">8Q", 0, 2**64 - 1, 1 << 12, 0xFFF, 2**63, 2**64 - 2**12, 7, 2**62)
    numbers = [x - _OFFSET for x in _doubles(block)]
    assert numbers == [((w >> 12) + 0.5) * 2.0**-52 for w in struct.unpack(">8Q", block)]
    assert numbers[0] == numbers[3] == 2.0**-53 and numbers[1] == 1.0 - 2.0**-53
    assert all(0.0 < n < 1.0 for n in numbers)


def os_seed(n: int) -> bytes:
    return random.Random(n).randbytes(32)


def test_a_single_arm_is_scored_by_its_mean_without_a_draw() -> None:
    policy = ThompsonPolicy()
    for _ in range(50):
        policy.expose("a", "*")
    policy.update("a", 10.0)
    (score,) = policy.scores({"a": 2.0}, context="*", rng=random.Random(1))
    alpha, beta, _ = policy.posterior("a", "*")
    assert score.draw == score.mean == alpha / (alpha + beta)
    assert score.score == score.mean * 2.0
