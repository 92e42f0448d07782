"""The profile store on a real Redis Cluster (3 primaries, 3 replicas of redis-server, started
by the ``redis_cluster`` fixture): merges across slots, sharded invalidations reaching another
process, and a failover drill under load with real uvicorn workers; and the Redis merge's
scripts, on one Redis and on the cluster."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.crc import key_slot

from personalize import Hit, Profile, StoreUnavailableError
from personalize.stores import redis_calls, redis_merge
from personalize.stores.redis import RedisStore
from personalize.stores.redis_sharded import ShardedInvalidationBus
from tests.conftest import REDIS_URL, ROOT
from tests.redis_cluster import LocalRedisCluster
from tests.test_shared_decisions import DESKTOP, free_port

pytestmark = pytest.mark.redis


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def on_other_primaries(
    cluster: LocalRedisCluster, store: RedisStore, first: str, second: str
) -> tuple[str, str]:
    """The first ``<first><n>``, ``<second><n>`` keys whose profiles live on different
    primaries."""
    for n in range(1000):
        a, b = f"{first}{n}", f"{second}{n}"
        owner_a = cluster.primary_for_key(store.redis_key(a)).port
        if owner_a != cluster.primary_for_key(store.redis_key(b)).port:
            return a, b
    raise AssertionError("no pair of keys on different primaries")


def test_a_burst_beyond_the_connections_per_node_waits_instead_of_failing(
    redis_cluster: LocalRedisCluster, redis_cluster_prefix: str
) -> None:
    """redis-py's cluster client fails a call that finds all of a node's connections in use;
    the store's calls wait for their turn instead (a burst of pages must not open the
    circuit and make the store unavailable for a second)."""

    async def scenario() -> None:
        store = RedisStore(
            redis_cluster.url, prefix=redis_cluster_prefix, timeout=2.0, max_connections=12
        )
        keys = [f"v:burst{n}" for n in range(40)]
        await store.apply_changes({key: [Hit(ts=1.0, path="/")] for key in keys})
        for _ in range(3):
            profiles = await asyncio.gather(*(store.get(key) for key in keys * 5))
            assert all(p is not None and p.page_views == 1 for p in profiles)
        # Writes too, each followed by its invalidation notice (on the same connections).
        hit = Hit(ts=2.0, path="/")
        await asyncio.gather(*(store.apply_changes({key: [hit]}) for key in keys * 5))
        profiles = await asyncio.gather(*(store.get(key) for key in keys))
        assert all(p is not None and p.page_views == 6 for p in profiles)
        assert not store.circuit_open
        await store.close()

    run(scenario())


def test_invalidation_notices_take_their_turn_with_the_stores_calls(
    redis_cluster: LocalRedisCluster, redis_cluster_prefix: str
) -> None:
    """Every write publishes a notice after it, on a connection of the same client: with
    the calls alone limited, a burst of writes plus their notices took more connections than
    the nodes have (``MaxConnectionsError`` in a full run on a loaded machine)."""
    from personalize.stores.redis_support import client_turn, cluster_call_limit

    async def scenario() -> None:
        store = RedisStore(
            redis_cluster.url, prefix=redis_cluster_prefix, timeout=0.2, max_connections=6
        )
        turns = client_turn(store.client)
        assert cluster_call_limit(store.client) == 2 and client_turn(store.client) is turns
        sent: list[Any] = []
        send = store._bus._send

        async def recorded(messages: Any) -> None:
            sent.append(messages)
            await send(messages)

        store._bus._send = recorded  # type: ignore[method-assign]
        async with turns, turns:  # every turn taken: the notice waits, then gives up
            await store._bus.publish(["v:x"])
        assert sent == []
        await store._bus.publish(["v:x"])
        assert len(sent) == 1
        await store.close()

    run(scenario())


def test_a_merge_across_slots_of_different_primaries(
    redis_cluster: LocalRedisCluster, redis_cluster_prefix: str
) -> None:
    async def scenario() -> None:
        store = RedisStore(redis_cluster.url, prefix=redis_cluster_prefix, timeout=2.0)
        assert store.cluster and isinstance(store._bus, ShardedInvalidationBus)
        anonymous, known = on_other_primaries(redis_cluster, store, "v:anon", "u:user")
        user_id = known.removeprefix("u:")
        await store.apply_changes(
            {anonymous: [Hit(ts=float(t), path=f"/p/{t}", category="shoes") for t in range(5)]},
            batch_id="b1",
        )
        await store.update(known, lambda p: Profile(key=known, user_id=user_id))  # logged in
        await store.apply_changes({known: [Hit(ts=1.0, path="/", category="bags")]})
        profile, merged = await store.merge(anonymous, known, user_id=user_id, device_id="d1")
        assert merged and profile.page_views == 6 and profile.user_id == user_id
        assert profile.affinities.keys() == {"shoes", "bags"}
        assert profile.aliases == [anonymous.removeprefix("v:")]
        # The tombstone, read on its own primary (no redirection): a forwarding address only.
        owner = redis_cluster.primary_for_key(store.redis_key(anonymous))
        stored = owner.command("HGET", store.redis_key(anonymous), "d")
        tombstone = json.loads(stored)
        assert tombstone["merged_into"] == known and tombstone["merged_device"] == "d1"
        assert not tombstone.get("page_views")
        # Again (a double submit): nothing twice; the stored epoch comes back.
        again, merged_again = await store.merge(anonymous, known, user_id=user_id)
        assert not merged_again and again.page_views == 6
        assert again.cookie_epoch == profile.cookie_epoch
        # A late page view of the merged browser is forwarded across slots.
        await store.apply_changes({anonymous: [Hit(ts=9.0, path="/late")]}, batch_id="b2")
        after = await store.get(known)
        assert after is not None and after.page_views == 7
        assert sorted(await store.erase(known)) == sorted([known, anonymous])
        assert await store.get(known) is None and await store.get(anonymous) is None
        await store.close()

    run(scenario())


def test_keys_lists_the_profiles_of_every_primary(
    redis_cluster: LocalRedisCluster, redis_cluster_prefix: str
) -> None:
    async def scenario() -> None:
        store = RedisStore(redis_cluster.url, prefix=redis_cluster_prefix, timeout=2.0)
        keys = [f"v:k{n}" for n in range(30)]
        await store.apply_changes({k: [Hit(ts=1.0, path="/")] for k in keys})
        owners = {redis_cluster.primary_for_key(store.redis_key(k)).port for k in keys}
        assert len(owners) == 3
        assert sorted(await store.keys()) == sorted(keys)
        await store.close()

    run(scenario())


def test_reading_the_slot_map_again_leaves_calls_under_way_alone(
    redis_cluster: LocalRedisCluster, redis_cluster_prefix: str
) -> None:
    """A call that lost its node has the slot map read again; the calls under way on other
    connections keep theirs (closing them all failed those calls, and each of them closed
    them all again: after a failover, a worker kept failing for seconds)."""

    async def scenario() -> None:
        store = RedisStore(redis_cluster.url, prefix=redis_cluster_prefix, timeout=2.0)
        client = store.client
        await client.initialize()
        slow = asyncio.create_task(client.execute_command("BLPOP", store.redis_key("v:q"), 1))
        await asyncio.sleep(0.3)  # sent, and waiting for its reply
        await redis_calls.reread_slots(client)
        assert await slow is None  # BLPOP's reply when it timed out
        assert client.nodes_manager.slots_cache[0]
        await store.close()

    run(scenario())


def test_a_write_waits_for_a_replica_the_slot_map_did_not_list(
    redis_cluster: LocalRedisCluster, redis_cluster_prefix: str
) -> None:
    """The slot map was read while a primary had no replica (its old primary, failed, is back
    as its replica since): a batch written there without waiting counts as not written, the
    map is read again, and the batch sent again waits for the replica, applied once."""

    async def scenario() -> None:
        store = RedisStore(redis_cluster.url, prefix=redis_cluster_prefix, retry_after=0.01)
        await store.apply_changes({"v:r": [Hit(ts=1.0, path="/")]}, batch_id="b1")
        cache = store.client.nodes_manager.slots_cache
        slot = key_slot(store.redis_key("v:r").encode())
        assert len(cache[slot]) == 2
        for number, nodes in list(cache.items()):
            cache[number] = nodes[:1]  # as read while no primary had a replica
        with pytest.raises(StoreUnavailableError, match="replica the slot map did not list"):
            await store.apply_changes({"v:r": [Hit(ts=2.0, path="/")]}, batch_id="b2")
        assert len(store.client.nodes_manager.slots_cache[slot]) == 2  # read again
        await asyncio.sleep(0.05)  # the store's retry_after
        await store.apply_changes({"v:r": [Hit(ts=2.0, path="/")]}, batch_id="b2")
        profile = await store.get("v:r")
        assert profile is not None and profile.page_views == 2
        await store.close()

    run(scenario())


LISTENER = textwrap.dedent(
    """
    import asyncio, json, sys
    from personalize.stores.redis import RedisStore

    async def main():
        store = RedisStore(sys.argv[1], prefix=sys.argv[2])
        store.on_invalidate(lambda keys: print(json.dumps(keys), flush=True))
        await store.get("v:listener")  # the first call starts the listener
        while not store._bus.listening:
            await asyncio.sleep(0.02)
        print('"ready"', flush=True)
        await asyncio.sleep(30)

    asyncio.run(main())
    """
)


def test_invalidations_reach_another_process_on_sharded_channels(
    redis_cluster: LocalRedisCluster, redis_cluster_prefix: str
) -> None:
    """Another process hears of every key written here, whichever primary holds it, on the
    channel of the key's slot range (SSUBSCRIBE; no broadcast PUBLISH); and again after a
    primary died and its replica took its slots (and channels) over."""
    prefix = redis_cluster_prefix
    child = subprocess.Popen(
        [sys.executable, "-c", LISTENER, redis_cluster.url, prefix],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    victim = None
    try:
        assert child.stdout is not None
        assert json.loads(child.stdout.readline()) is None  # "everything": just connected
        assert json.loads(child.stdout.readline()) == "ready"
        lines: queue.Queue[str] = queue.Queue()
        out = child.stdout
        threading.Thread(target=lambda: [*map(lines.put, out)], daemon=True).start()

        async def writes(tag: str) -> list[str]:
            store = RedisStore(redis_cluster.url, prefix=prefix, timeout=2.0)
            keys = [f"v:{tag}{n}" for n in range(24)]
            await store.apply_changes({k: [Hit(ts=1.0, path="/")] for k in keys})
            await store.update(f"u:{tag}", lambda p: p)
            await store.delete(f"v:{tag}0")
            bus = store._bus
            assert isinstance(bus, ShardedInvalidationBus)
            # The channels are sharded ones, each on a node, with the child subscribed.
            for channel in {bus.channel_of(k) for k in keys}:
                node = redis_cluster.primary_for_key(channel)
                assert node.command("PUBSUB", "SHARDNUMSUB", channel)[1] == 1
            primary = redis_cluster.primary_nodes()[0]
            assert primary.command("PUBSUB", "NUMSUB", bus.channel)[1] == 0
            await store.close()
            owners = {redis_cluster.primary_for_key(store.redis_key(k)).port for k in keys}
            assert len(owners) == 3  # the keys are on every primary
            return [*keys, f"u:{tag}"]

        def heard_of(wanted: list[str], deleted: str) -> None:
            heard: Counter[str] = Counter()
            deadline = time.monotonic() + 15
            while (set(wanted) - set(heard) or heard[deleted] < 2) and (
                time.monotonic() < deadline
            ):
                with contextlib.suppress(queue.Empty):
                    heard.update(json.loads(lines.get(timeout=0.2)) or [])
            assert set(heard) >= set(wanted), set(wanted) - set(heard)
            assert heard[deleted] == 2  # written, then deleted

        heard_of(run(writes("inv")), "v:inv0")
        victim = redis_cluster.primary_nodes()[0]
        redis_cluster.kill(victim)
        redis_cluster.wait_failover(victim)
        deadline = time.monotonic() + 15
        while True:  # the child notices (its "everything may have changed" after resubscribing)
            try:
                if json.loads(lines.get(timeout=0.5)) is None:
                    break
            except queue.Empty:
                assert time.monotonic() < deadline, "the listener did not subscribe again"
        heard_of(run(writes("again")), "v:again0")
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
        if victim is not None:
            redis_cluster.restart(victim)
            redis_cluster.ensure_healthy()


class DrillWorker:
    """One uvicorn process serving benchmarks.drill_app (PersonalizeMiddleware + RedisStore)
    on the cluster."""

    def __init__(self, url: str, prefix: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "REDIS_URL": url, "BENCH_PREFIX": prefix}
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "benchmarks.drill_app:app", "--host",
                 "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
                cwd=ROOT,
                env=env,
                stderr=stderr,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/_bench/state", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"drill worker on port {self.port} did not start")
            time.sleep(0.1)

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(f"{self.url}/_bench/state", timeout=5).json()
        return result

    def log_tail(self, lines: int = 20) -> str:
        """The end of what the worker logged, each line once with its count."""
        seen = Counter(self.log.read_text(errors="replace").splitlines())
        return "\n".join(f"{n} x {line[:300]}" for line, n in list(seen.items())[-lines:])

    def stop(self) -> int | None:
        """SIGTERM, as a deployment stops it: the lifespan writes what is still buffered."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                if os.environ.get("BENCH_LOG_LEVEL"):  # where it is stuck, into its log
                    self.process.send_signal(signal.SIGUSR1)
                    time.sleep(2)
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def drill_workers(
    redis_cluster: LocalRedisCluster, redis_cluster_prefix: str, tmp_path: Path
) -> Iterator[list[DrillWorker]]:
    started: list[DrillWorker] = []
    try:
        for n in range(2):
            log = tmp_path / f"worker{n}.log"
            started.append(DrillWorker(redis_cluster.url, redis_cluster_prefix, log))
        yield started
    finally:
        for worker in started:
            worker.stop()


class Load:
    """Visitors browsing in turn on every worker, each with its own cookies, until stopped;
    counts responses by status and transport errors."""

    def __init__(self, workers: list[DrillWorker], visitors: int) -> None:
        self.workers = workers
        self.visitors = visitors
        self.statuses: Counter[int] = Counter()
        self.errors: list[str] = []
        self.stopped = asyncio.Event()
        self.default_content = 0  # pages served without the stored profile (store away)

    async def visitor(self, n: int) -> None:
        async with httpx.AsyncClient(headers={"user-agent": DESKTOP}, timeout=10) as client:
            turn = n
            while not self.stopped.is_set():
                worker = self.workers[turn % len(self.workers)]
                turn += 1
                try:
                    answer = await client.get(f"{worker.url}/")
                except httpx.HTTPError as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(0.05)
                    continue
                self.statuses[answer.status_code] += 1
                if answer.headers.get("x-bench-page-views") == "1" and turn > n + 1:
                    self.default_content += 1
                await asyncio.sleep(0.01)


async def stored_page_views(url: str, prefix: str) -> tuple[int, int]:
    """The sum of page views over every profile under ``prefix``, and the profile count."""
    store = RedisStore(url, prefix=prefix, invalidation=False)
    keys = await store.keys()
    total = 0
    for key in keys:
        profile = await store.get(key)
        total += 0 if profile is None else profile.page_views
    await store.close()
    return total, len(keys)


def test_failover_under_load_gives_no_5xx_and_loses_no_page_view(
    redis_cluster: LocalRedisCluster,
    redis_cluster_prefix: str,
    drill_workers: list[DrillWorker],
) -> None:
    """Two uvicorn workers on the cluster, 40 visitors browsing on both; a primary is killed
    (SIGKILL) and its replica promoted. No response is a 5xx (pages fall back to default
    content while a slot has no primary), and once the write buffers drained, every page view
    answered 2xx is in the profiles, exactly: batches that failed (lost connection, CLUSTERDOWN,
    no replica confirmation by WAIT) were sent again, each applied once by its batch id. The
    buffers drain by themselves: no request comes after the load to send a failed batch again
    (``/_bench/state`` is answered outside the middleware)."""
    victim = redis_cluster.primary_nodes()[0]
    replica = redis_cluster.replica_of(victim)
    load = Load(drill_workers, visitors=40)
    timeline: dict[str, float] = {}
    when: dict[str, str] = {}  # wall-clock times, to read beside the workers' logs

    def now() -> str:
        return datetime.datetime.now().strftime("%H:%M:%S.%f")[:-3]

    async def drill() -> None:
        tasks = [asyncio.create_task(load.visitor(n)) for n in range(load.visitors)]
        try:
            await asyncio.sleep(1.5)
            timeline["before"] = sum(load.statuses.values())
            when["killed"] = now()
            redis_cluster.kill(victim)
            promoted = await asyncio.to_thread(redis_cluster.wait_failover, victim)
            when["promoted"] = now()
            assert promoted.port == replica.port
            timeline["during"] = sum(load.statuses.values())
            await asyncio.sleep(2.0)  # load goes on against the new primary
        finally:
            load.stopped.set()
            await asyncio.gather(*tasks)
            when["load stopped"] = now()

    try:
        run(drill())
        deadline = time.monotonic() + 20  # the write buffers retry, then drain
        states = [worker.state() for worker in drill_workers]
        # ... and the invalidation listeners subscribe again, on the promoted node too.
        while time.monotonic() < deadline and (
            any(s["pending"] for s in states) or not all(s["listening"] for s in states)
        ):
            time.sleep(0.2)
            states = [worker.state() for worker in drill_workers]
        logs = "\n".join([str(when), *(worker.log_tail() for worker in drill_workers)])
        assert not any(s["pending"] for s in states), f"{states}\n{logs}"
        assert all(s["listening"] for s in states), f"{states}\n{logs}"
        failed = sum(s["stats"]["failed"] for s in states)
        codes = [worker.stop() for worker in drill_workers]
        # uvicorn re-raises the SIGTERM it handled, after its graceful shutdown (the lifespan)
        assert set(codes) <= {0, -15}, codes
    finally:
        redis_cluster.restart(victim)
        redis_cluster.ensure_healthy()

    ok = sum(n for status, n in load.statuses.items() if 200 <= status < 300)
    assert load.errors == []
    assert {status for status in load.statuses if status >= 500} == set(), load.statuses
    assert timeline["during"] > timeline["before"]  # pages were served during the failover
    assert failed > 0  # the drill did hit the failover: batches failed and were sent again
    stored, profiles = run(stored_page_views(redis_cluster.url, redis_cluster_prefix))
    assert profiles == load.visitors
    assert stored == ok, f"{ok} pages answered 2xx, {stored} page views stored"


@pytest.fixture(params=["redis", "redis_cluster"])
def redis_store_args(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(url, prefix) of a single Redis or of the session's cluster."""
    if request.param == "redis":
        return REDIS_URL, request.getfixturevalue("redis_prefix")
    url = request.getfixturevalue("redis_cluster").url
    return url, request.getfixturevalue("redis_cluster_prefix")


def counting_writes(store: RedisStore) -> list[list[str]]:
    """Record the commands of each of ``store``'s write round trips; reads through
    ``get``/``update`` fail the test."""
    write, rounds = store._write, []

    async def counted(calls: Any) -> list[Any]:
        rounds.append([command[0] for _, command in calls])
        return await write(calls)

    async def no_read(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the merge read or wrote outside its scripts")

    store._write = counted  # type: ignore[method-assign]
    store.get = store.update = no_read  # type: ignore[method-assign]
    return rounds


def test_a_merge_is_two_round_trips_three_on_a_cluster(redis_store_args: tuple[str, str]) -> None:
    url, prefix = redis_store_args

    async def scenario() -> None:
        store = RedisStore(url, prefix=prefix, timeout=2.0)
        await store.update("u:ann", lambda p: Profile(key="u:ann", user_id="ann"))
        hits = [Hit(ts=float(t), path="/", category="shoes") for t in range(4)]
        await store.apply_changes({"v:a": hits, "u:ann": hits[:1]}, batch_id="b1")
        rounds = counting_writes(store)
        known, merged = await store.merge("v:a", "u:ann", user_id="ann", traits={"tier": "gold"})
        assert merged and known.page_views == 5 and known.traits == {"tier": "gold"}
        assert len(rounds) == (3 if store.cluster else 2), rounds
        # The absorb: one compare-and-set, and on one Redis the invalidation after it.
        assert rounds[-1] == ["EVALSHA"] if store.cluster else ["EVALSHA", "PUBLISH"]
        # The tombstone keeps a copy of the data until the next write drops it.
        hash_key = store.redis_key("v:a")
        assert await store.client.hexists(hash_key, "xl")
        before = len(rounds)
        await store.apply_changes({"v:b": hits[:1]})  # (the drop rides along: no round trip)
        assert len(rounds) == before + 1
        assert not await store.client.hexists(hash_key, "xl")
        assert not await store.client.hexists(hash_key, "xd")
        await store.close()
        store = RedisStore(url, prefix=prefix, timeout=2.0)
        stored = await store.get("u:ann")
        assert stored is not None and stored.page_views == 5 and stored.aliases == ["a"]
        tombstone = await store.get("v:a")
        assert tombstone is not None and tombstone.merged_into == "u:ann"
        assert tombstone.batches == ["b1"] and tombstone.page_views == 0
        await store.close()

    run(scenario())


def test_a_merge_cut_short_after_the_tombstone_absorbs_once_when_run_again(
    redis_store_args: tuple[str, str],
) -> None:
    """The process dies between the steps (here: the absorb's write fails): the tombstone
    kept the data, so the next login absorbs it, once; a third run adds nothing."""
    url, prefix = redis_store_args

    async def scenario() -> None:
        store = RedisStore(url, prefix=prefix, timeout=2.0)
        hits = [Hit(ts=float(t), path="/", category="shoes") for t in range(3)]
        await store.apply_changes({"v:a": hits}, batch_id="b1")
        write = store._write

        async def dies_at_the_absorb(calls: Any) -> list[Any]:
            if any(command[1] == redis_merge.CAS_SHA for _, command in calls):
                raise StoreUnavailableError("the process died here")
            return await write(calls)

        store._write = dies_at_the_absorb  # type: ignore[method-assign]
        with pytest.raises(StoreUnavailableError):
            await store.merge("v:a", "u:ann", user_id="ann")
        store._write = write  # type: ignore[method-assign]
        late = await store.get("v:a")
        assert late is not None and late.merged_into == "u:ann"  # forwarding already
        known = await store.get("u:ann")
        assert known is not None and known.page_views == 0  # created, not absorbed yet
        again, merged = await store.merge("v:a", "u:ann", user_id="ann")
        assert merged and again.page_views == 3 and again.cookie_epoch == known.cookie_epoch
        third, merged = await store.merge("v:a", "u:ann", user_id="ann")
        assert not merged and third.page_views == 3
        await store.close()

    run(scenario())


def test_unreadable_anonymous_data_is_set_aside_by_the_merge(
    redis_store_args: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, prefix = redis_store_args

    async def scenario() -> None:
        store = RedisStore(url, prefix=prefix, timeout=2.0)
        await store.client.hset(store.redis_key("v:bad"), mapping={"d": b"{not json", "n": 1})
        await store.apply_changes({"v:bad": [Hit(ts=5.0, path="/", category="c")]})
        with caplog.at_level(logging.ERROR, logger="personalize"):
            known, merged = await store.merge("v:bad", "u:bo", user_id="bo")
        assert merged and known.page_views == 1  # the page view that could be read
        records = await store.quarantined("v:bad")
        assert len(records) == 1 and "v:bad" in caplog.text
        await store.close()

    run(scenario())
