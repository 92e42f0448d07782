"""Cancellation reaches what the Redis stores run, and closing a store never hangs.

A CI run hung for its whole 90 minutes in ``RedisStore.close()``: the invalidation listener
had lost its cancellation (Python 3.11's ``asyncio.wait_for`` returns the result instead of
raising when the call it waits for completes as its caller is cancelled), kept polling, and
``close()`` awaited it for ever. These tests build those moments on purpose; no Redis needed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from personalize.stores.redis_invalidation import InvalidationBus
from personalize.stores.redis_support import CallGuard


def test_a_call_cancelled_as_it_completes_is_cancelled() -> None:
    guard = CallGuard("store", timeout=0.5, retry_after=1.0)

    async def scenario() -> None:
        reply = asyncio.get_running_loop().create_future()

        async def answer() -> int:
            result: int = await reply
            return result

        caller = asyncio.create_task(guard.call(answer()))
        for _ in range(3):
            await asyncio.sleep(0)  # the call is under way, waiting for its reply
        reply.set_result(1)  # the reply comes ...
        caller.cancel()  # ... as the caller is cancelled
        with pytest.raises(asyncio.CancelledError):
            await caller

    asyncio.run(scenario())


def test_a_call_past_its_bound_is_an_unavailable_store() -> None:
    from personalize.exceptions import StoreUnavailableError

    guard = CallGuard("store", timeout=0.01, retry_after=1.0)

    async def scenario() -> None:
        with pytest.raises(StoreUnavailableError):
            await guard.call(asyncio.sleep(5))
        assert guard.circuit_open

    asyncio.run(scenario())


class Swallowing(InvalidationBus):
    """A bus whose transport loses every cancellation (as a library below might), and polls
    again at once, as the sharded bus does every 50 ms."""

    def __init__(self) -> None:
        super().__init__(None, "channel", timeout=0.2, enabled=True)
        self.polls = 0
        self.swallowed = 0
        self.swallowing = True

    def _pubsub(self) -> Any:
        return Quiet()

    async def _subscribe(self, pubsub: Any) -> None:
        return None

    async def _next_message(self, pubsub: Any) -> dict[str, Any] | None:
        self.polls += 1
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            if not self.swallowing:
                raise
            self.swallowed += 1
        return None


class Quiet:
    async def aclose(self) -> None:
        return None


def test_closing_stops_a_listener_that_swallows_its_cancellation() -> None:
    async def scenario() -> None:
        bus = Swallowing()
        bus.subscribe(lambda notice: None)
        bus.ensure_listener()
        while not bus.listening:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        closing = asyncio.create_task(bus.close())
        done, _ = await asyncio.wait({closing}, timeout=5)
        bus.swallowing = False  # so that a close() that hung ends with the test
        assert done, "close() hung on a listener that lost its cancellation"
        assert time.monotonic() - started < 1.0
        assert bus.swallowed >= 1 and not bus.listening
        polls = bus.polls
        await asyncio.sleep(0.2)
        assert bus.polls == polls  # stopped, not left polling
        bus.ensure_listener()  # a closed bus does not start listening again
        await asyncio.sleep(0.1)
        assert bus.polls == polls

    asyncio.run(scenario())


def test_closing_an_idle_bus_or_closing_twice_is_harmless() -> None:
    async def scenario() -> None:
        bus = Swallowing()
        await bus.close()
        await bus.close()

    asyncio.run(scenario())


def test_a_call_cancelled_while_waiting_its_turn_never_starts_and_warns_of_nothing() -> None:
    """On a cluster client, a call waits for a turn (see ``client_turn``); cancelled there,
    its coroutine is closed (not reported as never awaited) and nothing was sent."""
    from redis.asyncio.cluster import RedisCluster

    from personalize.stores.redis_support import client_turn, cluster_call_limit

    client = RedisCluster(host="127.0.0.1", port=1, max_connections=5)  # never connected
    guard = CallGuard("store", timeout=5.0, retry_after=1.0, client=client)
    assert guard.limit == cluster_call_limit(client) == 1
    started: list[int] = []

    async def answer() -> int:
        started.append(1)
        return 1

    async def scenario() -> None:
        async with client_turn(client):  # the only turn is taken
            call = answer()
            caller = asyncio.create_task(guard.call(call))
            await asyncio.sleep(0.01)
            assert not caller.done()  # waiting for its turn
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller
            assert call.cr_frame is None  # closed, never run
        assert started == [] and not guard.circuit_open
        assert await guard.call(answer()) == 1  # the turn is free again

    asyncio.run(scenario())
