"""Which allowed variant to show: Thompson sampling on expected value, learned online.

Each arm (a slot's variant) keeps Beta posteriors of its reward rate (clicks, or conversions)
per context bucket (device type x channel, e.g. ``mobile/paid_search``) and overall (``*``).
A bucket's posterior borrows up to ``prior_strength`` pseudo-observations from the overall
rate, so a new bucket starts from what the arm does everywhere instead of from nothing.

Per decision the policy draws a rate ``p`` from each arm's posterior and scores it::

    score = p * value ** (1 - long_term_weight)

``long_term_weight = 0`` maximises the expected margin now (probability x value: GBP 20 at
50% beats GBP 10 at 80%); ``1`` maximises acceptance (how often visitors take the offer,
which keeps them coming back) whatever the margin; values in between trade one for the other.
Shape as in river's bandits: :meth:`~ThompsonPolicy.pull` chooses, :meth:`~ThompsonPolicy.update`
learns; exposures are counted with :meth:`~ThompsonPolicy.expose`, since the reward comes later.

>>> import random
>>> policy = ThompsonPolicy()
>>> for _ in range(200):
...     policy.expose("a", "desktop/direct"); policy.expose("b", "desktop/direct")
>>> for _ in range(20):
...     policy.update("a", 1.0, context="desktop/direct")
>>> for _ in range(40):
...     policy.update("b", 1.0, context="desktop/direct")
>>> policy.pull({"a": 1.0, "b": 1.0}, context="desktop/direct", rng=random.Random(1))
'b'
>>> policy.pull({"a": 3.0, "b": 1.0}, context="desktop/direct", rng=random.Random(1))
'a'
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from personalize.content.draws import beta_draw
from personalize.util.frozen import fast_init

OVERALL = "*"


@dataclass(slots=True)
class Counts:
    """What one arm saw in one context: exposures, rewards, and the value the rewards carried."""

    trials: float = 0.0
    rewards: float = 0.0
    value: float = 0.0  # sum of conversion values reported with rewards


class PolicyStore(Protocol):
    """Where the counters live. Reads are on the request path: they must not do I/O."""

    def get(self, key: str) -> Counts: ...

    def add(self, key: str, trials: float = 0.0, rewards: float = 0.0, value: float = 0.0) -> None:
        """Add to the counters of ``key`` (atomically, if several threads or workers share it)."""


class MemoryPolicyStore:
    """Counters in this process: one worker, or a test. Thread-safe."""

    def __init__(self) -> None:
        self._counts: dict[str, Counts] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Counts:
        return self._counts.get(key) or Counts()

    def add(self, key: str, trials: float = 0.0, rewards: float = 0.0, value: float = 0.0) -> None:
        with self._lock:
            counts = self._counts.get(key)
            if counts is None:
                counts = self._counts[key] = Counts()
            counts.trials += trials
            counts.rewards += rewards
            counts.value += value

    def snapshot(self) -> dict[str, tuple[float, float, float]]:
        """All counters as plain data (to persist, or to seed another worker)."""
        return {k: (c.trials, c.rewards, c.value) for k, c in self._counts.items()}


@fast_init  # built for every decision
@dataclass(frozen=True, slots=True)
class Score:
    """How one arm was scored in one decision (for the explanation)."""

    arm: str
    mean: float  # posterior mean reward rate in this context
    draw: float  # the sampled rate (the mean when not exploring)
    value: float
    score: float
    trials: float  # exposures in this context

    def describe(self) -> str:
        return (
            f"{self.arm}: p~{self.mean:.3f} (drew {self.draw:.3f}, {self.trials:.0f} seen) "
            f"x value {self.value:g} -> {self.score:.4f}"
        )


def _best_first(score: Score) -> float:
    return -score.score


class ThompsonPolicy:
    """Thompson sampling over expected value with Beta posteriors per arm and context bucket."""

    def __init__(
        self,
        store: PolicyStore | None = None,
        *,
        long_term_weight: float = 0.0,
        prior_strength: float = 10.0,  # pseudo-observations a bucket borrows from overall
    ) -> None:
        if not 0.0 <= long_term_weight <= 1.0:
            raise ValueError("long_term_weight is between 0 (margin now) and 1 (acceptance)")
        self.store: PolicyStore = store if store is not None else MemoryPolicyStore()
        self.long_term_weight = long_term_weight
        self.prior_strength = prior_strength

    def posterior(self, arm: str, context: str) -> tuple[float, float, float]:
        """``(alpha, beta, trials)`` of the arm's reward rate in ``context``."""
        overall = self.store.get(f"{arm}|{OVERALL}")
        local = self.store.get(f"{arm}|{context}") if context != OVERALL else overall
        rate = (overall.rewards + 1.0) / (overall.trials + 2.0)
        k = min(overall.trials, self.prior_strength)
        misses = max(local.trials - local.rewards, 0.0)
        return 1.0 + local.rewards + k * rate, 1.0 + misses + k * (1.0 - rate), local.trials

    def scores(
        self,
        arms: Mapping[str, float],
        *,
        context: str,
        rng: random.Random | None,
        long_term_weight: float | None = None,
    ) -> list[Score]:
        """Every arm scored, best first; ``rng=None`` scores posterior means (no exploration),
        and so does a single arm (there is nothing to explore)."""
        weight = self.long_term_weight if long_term_weight is None else long_term_weight
        if len(arms) == 1:  # nothing to compare: no draw (the explanation shows the mean)
            rng = None
        out = []
        for arm, value in arms.items():
            alpha, beta, trials = self.posterior(arm, context)
            mean = alpha / (alpha + beta)
            draw = beta_draw(rng, alpha, beta) if rng is not None else mean
            out.append(Score(arm, mean, draw, value, draw * value ** (1.0 - weight), trials))
        if len(out) > 1:
            out.sort(key=_best_first)
        return out

    def pull(
        self,
        arms: Mapping[str, float],
        *,
        context: str = OVERALL,
        rng: random.Random | None = None,
        long_term_weight: float | None = None,
    ) -> str:
        """The arm to show among ``arms`` (arm -> value)."""
        best = self.scores(arms, context=context, rng=rng, long_term_weight=long_term_weight)
        return best[0].arm

    def expose(self, arm: str, context: str) -> None:
        """Count one showing of ``arm`` in ``context``."""
        self.store.add(f"{arm}|{context}", trials=1.0)
        if context != OVERALL:
            self.store.add(f"{arm}|{OVERALL}", trials=1.0)

    def update(
        self, arm: str, reward: float, *, context: str = OVERALL, value: float = 0.0
    ) -> None:
        """Learn that a showing of ``arm`` in ``context`` earned ``reward`` (1.0: success)."""
        self.store.add(f"{arm}|{context}", rewards=reward, value=value)
        if context != OVERALL:
            self.store.add(f"{arm}|{OVERALL}", rewards=reward, value=value)
