"""What the content engine has learned per slot, as every worker shares it: the bandit's
counters (views, successes, value) per variant and context bucket, read from the state store
itself, never from one worker's cache, so every worker's editor page shows the same figures.

>>> from personalize.content.policy import Counts
>>> rows = learned_slot("hero", ["a", "b", "c"], {"hero/a|*": Counts(40, 10, 0),
...     "hero/a|mobile": Counts(10, 1, 0), "hero/b|*": Counts(2, 0, 0)}, prior_strength=10)
>>> [(r.variant, r.shown, r.successes, r.rate, round(r.estimate, 3), r.contexts) for r in rows.arms]
[('a', 40.0, 10.0, 0.25, 0.262, 1), ('b', 2.0, 0.0, 0.0, 0.25, 0)]
>>> rows.unseen
['c']
>>> [(c.context, c.variant, c.shown) for c in rows.contexts]
[('mobile', 'a', 10.0)]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from personalize.content.policy import OVERALL, Counts, MemoryPolicyStore, ThompsonPolicy
from personalize.personalizer import Personalizer

__all__ = ["ArmRow", "ContextRow", "SlotLearning", "learned_slot", "shared_learning"]

PREFIX = "arm:"  # content/shared.py's SharedPolicyStore keys: arm:<slot>/<variant>|<bucket>
MAX_KEYS = 20_000  # read at most this many counters for one page
TOP_CONTEXTS = 12  # context rows shown per slot, most viewed first


@dataclass(frozen=True, slots=True)
class ArmRow:
    """One variant of a slot over every context: what the engine knows of it."""

    variant: str
    shown: float  # times it was chosen and counted (a bandit trial)
    successes: float  # clicks or conversions, as the slot rewards
    value: float  # value of those successes
    rate: float | None  # successes per view; None before any view
    estimate: float  # the reward rate the engine expects (posterior mean, before value)
    contexts: int  # context buckets with views of it


@dataclass(frozen=True, slots=True)
class ContextRow:
    """One variant in one context bucket (device, time of day...)."""

    context: str
    variant: str
    shown: float
    successes: float
    estimate: float


@dataclass(frozen=True, slots=True)
class SlotLearning:
    """What the engine has learned for one slot."""

    arms: list[ArmRow]  # variants with views, the most viewed first
    unseen: list[str]  # variants never counted yet (nothing learned of them)
    contexts: list[ContextRow]  # the most viewed, at most TOP_CONTEXTS

    @property
    def shown(self) -> float:
        return sum(a.shown for a in self.arms)


def learned_slot(
    slot: str, variants: Iterable[str], counts: Mapping[str, Counts], *, prior_strength: float
) -> SlotLearning:
    """The rows of one slot from ``counts`` (policy keys ``<slot>/<variant>|<bucket>``),
    estimated as the engine's :class:`ThompsonPolicy` does."""
    store = MemoryPolicyStore()
    for key, c in counts.items():
        store.add(key, c.trials, c.rewards, c.value)
    policy = ThompsonPolicy(store, prior_strength=prior_strength)
    arms, unseen, contexts = [], [], []
    for variant in variants:
        arm = f"{slot}/{variant}"
        total = store.get(f"{arm}|{OVERALL}")
        if not total.trials:
            unseen.append(variant)
            continue
        buckets = sorted(
            key.partition("|")[2]
            for key in counts
            if key.startswith(arm + "|") and not key.endswith("|" + OVERALL)
        )
        alpha, beta, _ = policy.posterior(arm, OVERALL)
        rate = total.rewards / total.trials if total.trials else None
        arms.append(
            ArmRow(
                variant, total.trials, total.rewards, total.value, rate,
                alpha / (alpha + beta), len(buckets),
            )
        )  # fmt: skip
        for bucket in buckets:
            here = store.get(f"{arm}|{bucket}")
            a, b, _ = policy.posterior(arm, bucket)
            contexts.append(ContextRow(bucket, variant, here.trials, here.rewards, a / (a + b)))
    arms.sort(key=lambda a: -a.shown)
    contexts.sort(key=lambda c: (-c.shown, c.context, c.variant))
    return SlotLearning(arms, unseen, contexts[:TOP_CONTEXTS])


async def shared_learning(pz: Personalizer) -> dict[str, SlotLearning]:
    """Per slot, what the engine has learned, read from the state store (this worker's
    buffered counts are written first). Raises what the store raises when it cannot be read
    (:class:`~personalize.exceptions.StoreError`)."""
    engine = pz.decisions
    if engine is None:
        return {}
    await pz.state.flush()
    store = pz.state.store
    keys = sorted(await store.keys(PREFIX))[:MAX_KEYS]
    found = await store.counters(keys) if keys else {}
    counts = {
        key[len(PREFIX) :]: Counts(
            fields.get("trials", 0.0), fields.get("rewards", 0.0), fields.get("value", 0.0)
        )
        for key, fields in found.items()
    }
    prior = getattr(engine.policy, "prior_strength", 10.0)
    out = {}
    for name, slot in engine.library.slots.items():
        mine = {k: c for k, c in counts.items() if k.startswith(name + "/")}
        out[name] = learned_slot(name, slot.variants, mine, prior_strength=prior)
    return out
