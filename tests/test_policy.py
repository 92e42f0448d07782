"""The policy learns expected value online: a simulated shop where B is worth 1.5x A."""

from __future__ import annotations

import random
from typing import Any

import pytest

from personalize.content.decisions import DecisionEngine
from personalize.content.library import ContentLibrary
from personalize.content.policy import MemoryPolicyStore, ThompsonPolicy
from personalize.rules.segments import SegmentLibrary
from tests.test_decisions import NOW, visitor

# A has the bigger margin, B the better expected value: 0.30 x 10 = 3.0 = 1.5 x (0.10 x 20).
TRUTH = {"a": 0.10, "b": 0.30}
SLOT: dict[str, Any] = {
    "variants": [
        {"id": "a", "html": "A", "value": 20},
        {"id": "b", "html": "B", "value": 10, "tags": {"products": ["sku-b"]}},
    ],
    "rules": [{"segment": "uk_visitors", "variants": ["a", "b"], "pin": "a"}],
    "default": ["a", "b"],
}
SEGMENTS = SegmentLibrary.from_data(
    [{"name": "uk_visitors", "description": "UK",
      "rule": {"attribute": "country", "operator": "eq", "value": "GB"}}]
)  # fmt: skip


def simulate(
    rounds: int, *, seed: int, population: Any = None, **options: Any
) -> tuple[DecisionEngine, list[str | None]]:
    library = ContentLibrary.from_data({"offer": SLOT}, segments=SEGMENTS)
    engine = DecisionEngine(
        library, segments=SEGMENTS, rng=random.Random(seed), clock=lambda: NOW, **options
    )
    world = random.Random(seed + 1)
    served: list[str | None] = []
    for i in range(rounds):
        who = population(i) if population is not None else visitor(f"s{seed}-{i}")
        decision = engine.decide_sync(who, "offer")
        served.append(decision.variant)
        if decision.variant is not None and world.random() < TRUTH[decision.variant]:
            engine.record(decision.decision_id, "click")
    return engine, served


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_serves_the_better_expected_value_after_a_few_thousand_rounds(seed: int) -> None:
    _, served = simulate(4000, seed=seed)
    late = served[2000:]
    assert late.count("b") / len(late) >= 0.9
    assert served[:200].count("a") > 0  # it did explore


def test_acceptance_weight_and_margin_weight_disagree_as_they_should() -> None:
    margin = ThompsonPolicy()
    for arm, p in TRUTH.items():
        for i in range(1000):
            margin.expose(arm, "*")
            if i < p * 1000:
                margin.update(arm, 1.0)
    arms = {"a": 20.0, "b": 10.0}
    assert margin.pull(arms) == "b"  # 3.0 beats 2.0
    assert margin.pull({"a": 40.0, "b": 10.0}) == "a"  # 4.0 beats 3.0 on margin now
    assert margin.pull({"a": 40.0, "b": 10.0}, long_term_weight=1.0) == "b"  # accepted more


def test_pins_and_suppressions_hold_while_learning() -> None:
    def population(i: int) -> Any:
        if i % 4 == 0:
            return visitor(f"uk{i}", country="GB")  # pinned to a
        if i % 4 == 1:
            return visitor(f"buyer{i}", facts={"purchased": {"sku-b": NOW - 86_400}})
        return visitor(f"v{i}")

    _, served = simulate(4000, seed=5, population=population)
    assert all(v == "a" for v in served[0::4])
    assert all(v == "a" for v in served[1::4])  # b promotes what they just bought
    others = [v for i, v in enumerate(served) if i % 4 >= 2][1000:]
    assert others.count("b") / len(others) >= 0.9


def test_contexts_learn_separately_but_borrow_strength() -> None:
    store = MemoryPolicyStore()
    policy = ThompsonPolicy(store)
    for _ in range(100):
        policy.expose("a", "mobile/email")
    policy.update("a", 30.0, context="mobile/email")
    alpha, beta, trials = policy.posterior("a", "desktop/direct")
    assert trials == 0 and alpha / (alpha + beta) > 0.25  # the overall rate as its prior
    assert store.snapshot()["a|*"] == (100.0, 30.0, 0.0)
    with pytest.raises(ValueError, match="long_term_weight"):
        ThompsonPolicy(long_term_weight=2)
