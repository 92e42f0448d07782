"""Identity merge latency and throughput on each store.

    .venv/bin/python -m benchmarks.merge_bench [--merges 2000] [--no-write]

Each merge folds an anonymous profile with a realistic history (5 sessions, 20 page views,
an order) into a known profile that already has one: the steps of
``ProfileStore.merge`` that ``visitor.identify`` runs. Latency is one merge at a time;
throughput runs 32 merges concurrently. Writes its section of RESULTS.md between
``<!-- merge:start -->`` and ``<!-- merge:end -->``. With ``REDIS_CLUSTER_URL`` set (as
``scripts/redis-cluster run -- .venv/bin/python -m benchmarks.merge_bench`` does), a row
for a local Redis Cluster too (3 primaries, 3 replicas: three round trips, each waiting for
a replica).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.benchkit import write_section
from personalize import Hit, MemoryStore, Profile, SQLiteStore
from personalize.profiles.events import validate_event
from personalize.stores.base import ProfileStore

RESULTS = Path(__file__).with_name("RESULTS.md")
START, END = "<!-- merge:start -->", "<!-- merge:end -->"


def history(visitor: str, t0: float) -> list[Hit]:
    hits = []
    for session in range(5):
        for page in range(4):
            ts = t0 + session * 7200 + page * 30
            hits.append(Hit(ts=ts, path=f"/shoes/{page}", category="shoes", device_id=visitor))
    return hits


async def prepare(store: ProfileStore, n: int, tag: str) -> None:
    t0 = time.time() - 86_400
    for start in range(0, n, 200):
        users = range(start, min(n, start + 200))
        # The users logged in before (page views alone never create a known profile).
        await store.update_many({f"u:{tag}user{i}": _login(f"{tag}user{i}") for i in users})
        batch = {}
        for i in users:
            batch[f"v:{tag}anon{i}"] = history(f"{tag}anon{i}", t0)
            batch[f"u:{tag}user{i}"] = history(f"{tag}dev{i}", t0)
        await store.apply_changes(batch)
        order = validate_event("order", {"order_id": "o1", "products": ["p"], "value": 5})
        await store.apply_changes({f"u:{tag}user{i}": [order] for i in users})


def _login(user_id: str) -> Callable[[Profile | None], Profile]:
    def create(profile: Profile | None) -> Profile:
        return Profile(key=f"u:{user_id}", user_id=user_id) if profile is None else profile

    return create


async def bench(make: Callable[[], ProfileStore], n: int) -> dict[str, float]:
    store = make()
    await prepare(store, 2 * n, "b")
    latencies = []
    for i in range(n):
        t = time.perf_counter()
        await store.merge(f"v:banon{i}", f"u:buser{i}", user_id=f"buser{i}", device_id=f"d{i}")
        latencies.append(time.perf_counter() - t)
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with sem:
            await store.merge(f"v:banon{i}", f"u:buser{i}", user_id=f"buser{i}")

    t = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n, 2 * n)))
    elapsed = time.perf_counter() - t
    check = await store.get(f"u:buser{n}")
    assert check is not None and check.page_views == 40, "a merge lost page views"
    await store.close()
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "per_s": n / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merges", type=int, default=2000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="personalize-merge-")
    stores: dict[str, Callable[[], ProfileStore]] = {
        "memory": MemoryStore,
        "sqlite": lambda: SQLiteStore(os.path.join(tmp, "m.sqlite3")),
    }
    prefix = f"pzmerge:{os.getpid()}:"
    try:
        from personalize.stores.redis import RedisStore

        url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        stores["redis"] = lambda: RedisStore(url, prefix=prefix)

        class StepByStep(RedisStore):  # the generic merge (read + compare-and-set per step)
            merge = ProfileStore.merge  # type: ignore[assignment]

        stores["redis, step by step"] = lambda: StepByStep(url, prefix=prefix + "s:")
        cluster_url = os.environ.get("REDIS_CLUSTER_URL")  # scripts/redis-cluster run -- ...
        if cluster_url:
            stores["redis_cluster"] = lambda: RedisStore(cluster_url, prefix=prefix)
    except ImportError:
        pass
    load = os.getloadavg()[0]
    rows = []
    for name, make in stores.items():
        result = asyncio.run(bench(make, args.merges))
        rows.append((name, result))
        print(f"{name:20s} p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms  "
              f"{result['per_s']:.0f} merges/s")  # fmt: skip
    if "redis" in stores:
        import redis

        client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()
    if "redis_cluster" in stores:
        from redis.cluster import RedisCluster

        from personalize.stores.redis_support import cluster_nodes

        host, port = cluster_nodes(os.environ["REDIS_CLUSTER_URL"])[0]
        with RedisCluster(host=host, port=port) as cluster:
            for key in list(cluster.scan_iter(match=f"{prefix}*", count=1000)):
                cluster.delete(key)
    command = ".venv/bin/python -m benchmarks.merge_bench"
    if "redis_cluster" in stores:
        command = f"scripts/redis-cluster run -- {command}"
    section = [
        START,
        "## Identity merges",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; load "
        f"average {load:.1f} when it started (other jobs share the machine)",
        f"- command: `{command} --merges {args.merges}`",
        "- each merge: anonymous profile (5 sessions, 20 page views) into a known one (20 page "
        "views, an order): ensure the known profile, tombstone, absorb, compact (Redis: one "
        "Lua script for the first two, the absorb's compare-and-set, the copy dropped with the "
        "next write: two round trips; `redis, step by step`: the same store running the "
        "generic `ProfileStore.merge`, a read and a compare-and-set per step, as before); "
        "checked for exact counts",
        "",
        "| store | merge p50 ms | merge p99 ms | merges/s (32 concurrent) |",
        "|---|---:|---:|---:|",
        *[f"| {n} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['per_s']:.0f} |" for n, r in rows],
        END,
    ]
    if not args.no_write:
        write_section(RESULTS, START, END, "\n".join(section))


if __name__ == "__main__":
    main()
