"""The content engine's shared state: caps, counters and picks through the state service."""

from __future__ import annotations

import asyncio

from personalize.content.policy import ThompsonPolicy
from personalize.content.shared import SharedDecisionState, SharedExposures, SharedPolicyStore
from personalize.content.slots import Cap
from personalize.services.state import StateService
from personalize.stores.state_memory import MemoryStateStore

HOUR = 3600.0
CAP = Cap(views=3, rest_hours=2)


def workers(count: int = 2) -> list[StateService]:
    """Services of several workers on one store (processes in production; see
    tests/test_shared_decisions.py for real ones)."""
    store = MemoryStateStore()
    return [StateService(store, flush_interval=0, cache_ttl=0) for _ in range(count)]


def settle(*states: StateService) -> None:
    async def run() -> None:
        for state in states:
            await state.settle()
            await state.prefetch(counters=[SharedExposures.key("v:1")])

    asyncio.run(run())


def test_views_on_two_workers_add_up_to_the_cap_and_it_rests() -> None:
    a, b = workers()
    on_a, on_b = SharedExposures(a), SharedExposures(b)
    on_a.seen("v:1", "hero/x", CAP, now=10.0, request=10.0)
    on_a.seen("v:1", "hero/x", CAP, now=10.0, request=10.0)  # the same page asking twice
    on_a.seen("v:1", "hero/x", CAP, now=11.0, request=11.0)
    settle(a, b)
    assert on_b.resting_until("v:1", "hero/x", 12.0) is None
    on_b.seen("v:1", "hero/x", CAP, now=12.0, request=12.0)
    settle(b, a)
    assert on_a.resting_until("v:1", "hero/x", 13.0) == 12.0 + 2 * HOUR
    assert on_b.resting_until("v:1", "hero/x", 12.0 + 2 * HOUR + 1) is None
    # The rest is over: counting starts again from one.
    on_b.seen("v:1", "hero/x", CAP, now=3 * HOUR, request=3 * HOUR)
    settle(b, a)
    assert a.cached(SharedExposures.key("v:1")) == {"hero/x": 1.0, "hero/x!": 0.0}


def test_a_click_on_any_worker_resets_the_count() -> None:
    a, b = workers()
    on_a, on_b = SharedExposures(a), SharedExposures(b)
    for t in (1.0, 2.0):
        on_a.seen("v:1", "hero/x", CAP, now=t, request=t)
    settle(a, b)
    on_b.clicked("v:1", "hero/x")
    settle(b, a)
    on_a.seen("v:1", "hero/x", CAP, now=3.0, request=3.0)
    settle(a)
    assert on_a.resting_until("v:1", "hero/x", 4.0) is None  # 1 view since the click, not 3


def test_the_policy_learns_from_every_workers_exposures_and_rewards() -> None:
    a, b = workers()
    policy_a = ThompsonPolicy(SharedPolicyStore(a))
    policy_b = ThompsonPolicy(SharedPolicyStore(b))
    for _ in range(10):
        policy_a.expose("hero/x", "desktop/direct")
    policy_b.update("hero/x", 1.0, context="desktop/direct", value=2.0)

    async def run() -> None:
        await a.settle()
        await b.settle()
        keys = ["arm:hero/x|desktop/direct", "arm:hero/x|*"]
        await a.prefetch(counters=keys)
        await b.prefetch(counters=keys)

    asyncio.run(run())
    for policy in (policy_a, policy_b):
        assert policy.posterior("hero/x", "desktop/direct")[2] == 10.0
        assert policy.store.get("hero/x|*").rewards == 1.0
        assert policy.store.get("hero/x|*").value == 2.0


def test_the_first_pick_of_a_session_wins_on_every_worker() -> None:
    a, b = workers()
    shared_a, shared_b = SharedDecisionState(a), SharedDecisionState(b)
    shared_a.keep_pick("v:1", 100.0, "hero", "x", "rule 1", replace=False)
    shared_b.keep_pick("v:1", 100.0, "hero", "y", "rule 1", replace=False)

    async def run() -> None:
        await a.settle()
        await b.settle()
        await shared_b.prepare("v:1", 100.0, ["hero"])

    asyncio.run(run())
    assert shared_b.pick("v:1", 100.0, "hero") == ("x", "rule 1")
    assert shared_b.pick("v:1", 200.0, "hero") is None  # another session


def test_forget_erases_a_visitors_caps_and_picks_written_or_buffered_and_no_one_elses() -> None:
    async def scenario() -> None:
        state = StateService(MemoryStateStore(), flush_interval=0, cache_ttl=0)
        shared = SharedDecisionState(state)
        visitors = ("u:bob", "v:anon", "u:bob|1.0|hero", "u:bobby")  # a user id may hold "|"
        for visitor in visitors:
            shared.exposures.seen(visitor, "hero/x", CAP, now=10.0, request=10.0)
            shared.keep_pick(visitor, 1.0, "hero", "x", "rule", replace=False)
        await state.flush()
        shared.keep_pick("u:bob", 2.0, "nav", "y", "rule", replace=False)  # not written yet
        shared.exposures.seen("u:bob", "nav/y", CAP, now=11.0, request=11.0)
        assert await shared.forget(["u:bob", "v:anon"]) == 4  # stored ones; the rest dropped
        await state.flush()  # nothing of theirs is left to write
        kept = [*await state.store.keys("caps:"), *await state.store.keys("pick:")]
        assert sorted(kept) == [
            "caps:u:bobby",
            "caps:u:bob|1.0|hero",
            "pick:u:bobby|1.0|hero",
            "pick:u:bob|1.0|hero|1.0|hero",
        ]

    asyncio.run(scenario())
