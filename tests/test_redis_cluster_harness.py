"""The local Redis Cluster harness (tests/redis_cluster.py) against real redis-server nodes:
slots, routing, scripts, sharded pub/sub, failover, and that nothing outlives it."""

from __future__ import annotations

import asyncio
import fcntl
import json
import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from redis.exceptions import ClusterCrossSlotError, MovedError, RedisClusterException

from tests import conftest
from tests.conftest import ROOT
from tests.redis_cluster import (
    BUS_OFFSET,
    DIRECTORY_PREFIX,
    FIRST_PORT,
    LAST_BUS_PORT,
    OWNER_LOCK,
    SLOTS,
    LocalRedisCluster,
    Node,
    free_port_block,
    remove_abandoned_directories,
)

pytestmark = pytest.mark.redis


def keys_on_every_primary(cluster: LocalRedisCluster, prefix: str, per_primary: int) -> list[str]:
    """Keys ``prefix<n>`` until every primary serves ``per_primary`` of them."""
    wanted = {node.port: per_primary for node in cluster.primary_nodes()}
    keys = []
    for n in range(10_000):
        key = f"{prefix}{n}"
        port = cluster.primary_for_key(key).port
        if wanted[port]:
            wanted[port] -= 1
            keys.append(key)
        if not any(wanted.values()):
            return keys
    raise AssertionError(f"no keys found for some primaries: {wanted}")


def gone(pid: int) -> bool:
    """The process has ended (a zombie left for its parent, or init, to reap counts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_three_primaries_serve_all_16384_slots_each_with_a_replica_in_sync(
    redis_cluster: LocalRedisCluster,
) -> None:
    views = redis_cluster.topology()
    primaries = [view for view in views if view.is_primary]
    assert len(primaries) == 3 and len(views) == 6
    ranges = sorted(span for view in primaries for span in view.slots)
    covered = 0
    for start, end in ranges:
        assert start == covered, f"slots {covered}..{start - 1} have no primary"
        covered = end + 1
    assert covered == SLOTS
    with redis_cluster.client() as client:  # the client sees the same map
        assert len(client.get_primaries()) == 3
        assert {view.port for view in primaries} == {n.port for n in client.get_primaries()}
    for view in primaries:
        primary = redis_cluster.node(view.port)
        replica = redis_cluster.replica_of(primary)
        info = replica.info("INFO", "replication")
        assert (info["role"], info["master_port"], info["master_link_status"]) == (
            "slave",
            str(primary.port),
            "up",
        )
    for node in redis_cluster.nodes:  # loopback only, and away from the standard server
        assert node.port not in (6379, 16379) and node.url.startswith("redis://127.0.0.1:")
        with socket.create_connection(("127.0.0.1", node.port + BUS_OFFSET), timeout=1):
            pass  # its cluster bus listens


def test_keys_of_every_primary_round_trip_and_live_where_the_harness_says(
    redis_cluster: LocalRedisCluster,
) -> None:
    keys = keys_on_every_primary(redis_cluster, "harness:rt:", per_primary=3)
    values = {key: f"value of {key}" for key in keys}
    with redis_cluster.client(decode_responses=True) as client:
        for key, value in values.items():
            client.set(key, value)
        assert [client.get(key) for key in keys] == list(values.values())
    for key, value in values.items():
        owner = redis_cluster.primary_for_key(key)
        assert owner.command("GET", key) == value  # on that node itself, no redirection
        other = next(n for n in redis_cluster.primary_nodes() if n.port != owner.port)
        with pytest.raises(MovedError) as moved:
            other.command("GET", key)
        assert moved.value.port == owner.port

    async def read_back() -> list[object]:
        async with redis_cluster.async_client(decode_responses=True) as client:
            pipe = client.pipeline(transaction=False)  # one round trip per primary
            for key in keys:
                pipe.get(key)
            return await pipe.execute()

    assert asyncio.run(read_back()) == list(values.values())


def test_a_script_on_one_hash_tag_runs_and_a_cross_slot_one_is_refused(
    redis_cluster: LocalRedisCluster,
) -> None:
    incr_both = "return {redis.call('INCR', KEYS[1]), redis.call('INCRBY', KEYS[2], ARGV[1])}"

    async def scenario() -> None:
        async with redis_cluster.async_client() as client:
            script = client.register_script(incr_both)
            assert await script(keys=["harness:{s}:a", "harness:{s}:b"], args=[5]) == [1, 5]
            assert await script(keys=["harness:{s}:a", "harness:{s}:b"], args=[5]) == [2, 10]
            owner = redis_cluster.primary_for_key("harness:{s}")
            assert owner.command("SCRIPT", "EXISTS", script.sha) == [1]
            assert owner.command("GET", "harness:{s}:b") == "10"
            with pytest.raises(RedisClusterException, match="same key slot"):
                await script(keys=["harness:{s}:a", "harness:{t}:b"], args=[1])
            with pytest.raises(ClusterCrossSlotError):  # and the server refuses it too
                await client.execute_command(
                    "EVAL", incr_both, 2, "harness:{s}:a", "harness:{t}:b", 1,
                    target_nodes=client.get_node(host="127.0.0.1", port=owner.port),
                )  # fmt: skip

    asyncio.run(scenario())


def test_sharded_publish_reaches_a_subscriber_on_the_channel_owner(
    redis_cluster: LocalRedisCluster,
) -> None:
    channel = "harness:{invalidate}"

    async def scenario() -> dict[str, object]:
        async with redis_cluster.async_client() as client:
            pubsub = client.pubsub()
            try:
                await pubsub.ssubscribe(channel)
                assert list(pubsub.node_pubsub_mapping) == [
                    redis_cluster.primary_for_key(channel).name
                ]
                assert await client.spublish(channel, "k1\nk2") == 1
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    message = await pubsub.get_sharded_message(
                        ignore_subscribe_messages=True, timeout=0.2
                    )
                    if message is not None:
                        return message
                raise AssertionError("no sharded message within 5 s")
            finally:
                await pubsub.aclose()

    message = asyncio.run(scenario())
    assert (message["type"], message["channel"], message["data"]) == (
        "smessage",
        channel.encode(),
        b"k1\nk2",
    )


class Writer(threading.Thread):
    """INCRs each key every 10 ms with its own cluster client; counts what was acknowledged,
    what failed, and the slowest call per key (redis-py's cluster client retries with a
    back-off that can outlast a quick failover: the write then waits instead of failing)."""

    def __init__(self, cluster: LocalRedisCluster, keys: list[str]) -> None:
        super().__init__(daemon=True)
        self.client = cluster.client(socket_timeout=1.0, socket_connect_timeout=1.0)
        self.keys = keys
        self.acked: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.last_ok: dict[str, float] = {}
        self.slowest: dict[str, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while not self.done.wait(0.01):
                for key in self.keys:
                    started = time.monotonic()
                    try:
                        self.client.incr(key)
                    except redis.RedisError:
                        self.failed[key] += 1
                    else:
                        self.acked[key] += 1
                        self.last_ok[key] = time.monotonic()
                    took = time.monotonic() - started
                    self.slowest[key] = max(self.slowest.get(key, 0.0), took)
        finally:
            self.client.close()


def drill(cluster: LocalRedisCluster, take_down: str) -> None:
    """Take the primary of one key down under a light write load and check that its replica
    takes over, writes go on, nothing acknowledged elsewhere is lost, and the old primary
    comes back as a replica of the new one."""
    keys = keys_on_every_primary(cluster, f"harness:{take_down}:", per_primary=1)
    victim = cluster.primary_for_key(keys[0])
    others = keys[1:]
    replica = cluster.replica_of(victim)
    with victim.connection() as direct:  # a value that is surely on the replica too
        direct.set(keys[0], 1000)
        assert direct.execute_command("WAIT", 1, 2000) == 1
    writer = Writer(cluster, keys)
    writer.start()
    try:
        time.sleep(0.3)
        if take_down == "kill":
            cluster.kill(victim)
            assert not victim.running
        else:
            cluster.pause(victim)
            assert victim.running and victim.paused
        down_at = time.monotonic()
        promoted = cluster.wait_failover(victim)
        failover = time.monotonic() - down_at
        assert promoted.port == replica.port
        assert cluster.primary_for_key(keys[0]).port == promoted.port
        assert failover < 15, f"failover took {failover:.1f} s"
        deadline = time.monotonic() + 10
        while writer.last_ok.get(keys[0], 0) < time.monotonic() - 0.2:
            assert time.monotonic() < deadline, "no write to the victim's slots after failover"
            time.sleep(0.05)
    finally:
        writer.done.set()
        writer.join(5)
    # The writes to the victim's slots were disrupted: they failed, or waited out the
    # failover (a paused node, or redis-py's retries spanning a quick failover).
    assert writer.failed[keys[0]] > 0 or writer.slowest.get(keys[0], 0.0) >= 0.5, writer.slowest
    with cluster.client(decode_responses=True) as client:
        assert int(client.get(keys[0])) >= 1000  # the replicated value survived
        for key in others:  # the other primaries lost nothing (a timed-out INCR may count too)
            assert int(client.get(key)) >= writer.acked[key] > 0, (key, writer.failed[key])
        client.set(keys[0], "after")

    if take_down == "kill":
        cluster.restart(victim)
    else:
        cluster.resume(victim)
    info = victim.info("INFO", "replication")
    assert (info["role"], info["master_port"]) == ("slave", str(promoted.port))
    deadline = time.monotonic() + 5
    with victim.connection() as direct:
        direct.execute_command("READONLY")  # read the rejoined replica's own copy
        while direct.get(keys[0]) != "after":
            assert time.monotonic() < deadline, "the rejoined replica did not sync"
            time.sleep(0.05)


def test_a_killed_primary_is_replaced_by_its_replica_and_rejoins_as_one(
    redis_cluster: LocalRedisCluster,
) -> None:
    try:
        drill(redis_cluster, "kill")
    finally:
        redis_cluster.ensure_healthy()


def test_a_frozen_primary_is_replaced_by_its_replica_and_rejoins_as_one(
    redis_cluster: LocalRedisCluster,
) -> None:
    try:
        drill(redis_cluster, "pause")
    finally:
        redis_cluster.ensure_healthy()


def test_port_blocks_skip_taken_ports_and_their_bus_ports() -> None:
    first = random.Random(7).randint(FIRST_PORT, LAST_BUS_PORT - BUS_OFFSET - 5)
    with socket.socket() as taken:  # the bus port of the block a Random(7) would pick first
        taken.bind(("127.0.0.1", first + 2 + BUS_OFFSET))
        taken.listen()
        ports = free_port_block(6, random.Random(7))
    assert first + 2 not in ports and len(ports) == 6
    assert ports == list(range(ports[0], ports[0] + 6))
    assert ports[0] >= FIRST_PORT and ports[-1] + BUS_OFFSET <= LAST_BUS_PORT


def test_a_port_taken_after_the_probe_means_new_ports_not_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tests.redis_cluster as harness

    first = free_port_block(3)
    blocks = [first]

    def probed_before_the_squatter(count: int) -> list[int]:
        return blocks.pop() if blocks else free_port_block(count)

    monkeypatch.setattr(harness, "free_port_block", probed_before_the_squatter)
    with socket.socket() as squatter:  # takes a port between the probe and the node's bind
        squatter.bind(("127.0.0.1", first[1]))
        squatter.listen()
        with LocalRedisCluster(replicas=0) as cluster:
            assert not blocks and first[1] not in [node.port for node in cluster.nodes]
            with cluster.client() as client:
                assert client.set("harness:squat", 1)


def test_stop_kills_every_node_and_removes_the_directory(redis_cluster: LocalRedisCluster) -> None:
    cluster = LocalRedisCluster(replicas=0).start()
    pids = [node.pid for node in cluster.nodes]
    directory = cluster.directory
    assert directory is not None and directory.is_dir() and all(pids)
    assert {n.port for n in cluster.nodes}.isdisjoint(n.port for n in redis_cluster.nodes)
    with cluster.client() as client:
        client.set("harness:stop", 1)
    cluster.stop()
    assert all(gone(pid) for pid in pids if pid is not None)
    assert not directory.exists() and cluster.nodes == []
    cluster.stop()  # twice is harmless


def test_nodes_die_with_the_process_that_started_them(tmp_path: Path) -> None:
    """A test run that is SIGKILLed leaves no node running (each node gets SIGKILL when its
    starter goes away), and the threads the starter runs do not matter: the nodes are started
    with nothing of Python between fork and exec."""
    starter = (
        "import sys, threading, time\n"
        "from tests.redis_cluster import LocalRedisCluster\n"
        "for _ in range(2):  # busy threads, as in a test run\n"
        "    threading.Thread(target=lambda: [sum(range(1000)) for _ in iter(int, 1)],"
        " daemon=True).start()\n"
        "cluster = LocalRedisCluster(replicas=0).start()\n"
        "print(*(node.pid for node in cluster.nodes), flush=True)\n"
        "time.sleep(600)\n"
    )
    command = [sys.executable, "-c", starter]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            pids = [int(pid) for pid in process.stdout.readline().split()]
        finally:
            process.kill()
    assert len(pids) == 3
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(pid) for pid in pids)


def test_a_failed_start_leaves_no_node_and_no_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.redis_cluster import ClusterError

    spawned: list[Node] = []
    cluster = LocalRedisCluster(replicas=0)

    def create_fails() -> None:
        spawned.extend(cluster.nodes)
        raise ClusterError("redis-cli --cluster create failed (simulated)")

    monkeypatch.setattr(cluster, "_create", create_fails)
    with pytest.raises(ClusterError, match="simulated"):
        cluster.start()
    assert len(spawned) == 3
    assert all(node.pid is not None and gone(node.pid) for node in spawned)
    assert not spawned[0].directory.parent.exists()


def test_only_directories_of_dead_owners_are_swept(tmp_path: Path) -> None:
    abandoned, owned, detached = (tmp_path / f"{DIRECTORY_PREFIX}{n}" for n in "abc")
    for directory in (abandoned, owned, detached):
        (directory / "7000").mkdir(parents=True)
    (abandoned / OWNER_LOCK).touch()
    with (owned / OWNER_LOCK).open("w") as alive:
        fcntl.flock(alive, fcntl.LOCK_EX)  # as a running owner holds it
        assert remove_abandoned_directories(tmp_path) == [abandoned]
    assert not abandoned.exists() and owned.exists() and detached.exists()


def test_missing_redis_binaries_skip_here_and_fail_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(conftest, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="redis-server, redis-cli not on PATH"):
        conftest.require_redis_cluster_binaries()
    monkeypatch.setattr(conftest, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI must run"):
        conftest.require_redis_cluster_binaries()


def run_cli(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tests.redis_cluster", "--state", str(state), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_the_cli_starts_reports_and_stops_a_cluster(tmp_path: Path) -> None:
    state = tmp_path / "cluster.json"
    started = run_cli("start", "--replicas", "0", state=state)
    assert started.returncode == 0, started.stderr
    try:
        assert started.stdout.count(" primary  slots ") == 3
        recorded = LocalRedisCluster.from_state(json.loads(state.read_text()))
        assert len(recorded.running_nodes()) == 3
        status = run_cli("status", state=state)
        assert status.returncode == 0 and status.stdout.count(" primary  slots ") == 3
        again = run_cli("start", state=state)
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        stopped = run_cli("stop", state=state)
    assert stopped.returncode == 0, stopped.stderr
    assert all(gone(node.pid) for node in recorded.nodes if node.pid is not None)
    assert recorded.directory is not None and not recorded.directory.exists()
    assert not state.exists()


def test_the_cli_runs_a_command_against_a_cluster_and_stops_it(tmp_path: Path) -> None:
    probe = (
        "import os, redis; url = os.environ['REDIS_CLUSTER_URL']; "
        "host, port = url.split('//')[1].split(',')[0].split(':'); "
        "c = redis.RedisCluster(host=host, port=int(port)); c.set('harness:run', 1); "
        "print(url, c.get('harness:run').decode(), len(c.get_primaries())); c.close()"
    )
    command = ["run", "--replicas", "0", "--", sys.executable, "-c", probe]
    done = run_cli(*command, state=tmp_path / "state.json")
    assert done.returncode == 0, done.stderr
    url, value, primaries = done.stdout.split()
    assert url.startswith("redis+cluster://127.0.0.1:") and (value, primaries) == ("1", "3")
    ports = [int(part.rsplit(":", 1)[1]) for part in url[len("redis+cluster://") : -1].split(",")]
    for port in ports:  # stopped: nothing listens there any more
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
