"""Scale-out figures: 1 and 2 uvicorn workers sharing Redis, the learner, memory per profile.

    .venv/bin/python -m benchmarks.scaleout [--duration 10 --repeats 3 --visitors 1000]

1. Throughput. One server per configuration serves ``benchmarks.drill_app:app``
   (PersonalizeMiddleware + RedisStore; the learning configuration serves ``learning_app``,
   with ``StreamLearning`` and a ``personalize learner`` process). All send the same
   returning visitors' cookies (one secret). wrk runs interleaved repeats across the
   configurations; the report gives medians, CPU of server, Redis and learner, and the Redis
   commands and Redis CPU per request (``INFO commandstats`` / ``INFO cpu`` deltas).
2. Memory. Realistic profiles are written through the real store API (``apply_changes``,
   ``merge``, events) under a scratch prefix and measured with ``MEMORY USAGE``: anonymous
   with a few sessions, known with merged devices, orders, a ticket and traits, and the
   bounded worst case (every cap full).
3. A capacity estimate for 10 million profiles on Redis Cluster from those figures.

Writes ``RESULTS.md`` between the ``scaleout`` markers. All keys, the learning stream and the
snapshots live under ``pzscale:<pid>:`` and are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import benchkit
from benchmarks.run import (
    RESULTS,
    base_headers,
    collect_cookies,
    cpu_model,
)

#: Commands only the store's Lua scripts run (never the client itself, in these runs).
SCRIPT_ONLY = (
    "hexists",
    "exists",
    "rpush",
    "hget",
    "hincrby",
    "hset",
    "hdel",
    "expire",
    "persist",
    "ltrim",
    "llen",
)
START_MARK = "<!-- scaleout:start -->"
END_MARK = "<!-- scaleout:end -->"


@dataclass(frozen=True)
class Config:
    name: str
    workers: int
    pinned: bool  # server on CPU 0, wrk on CPU 1 (else nothing pinned)
    learning: bool
    meaning: str


CONFIGS = (
    Config("1w_pinned", 1, True, False, "1 worker on CPU 0, wrk on CPU 1"),
    Config("2w_pinned", 2, True, False, "2 workers sharing CPU 0, wrk on CPU 1 (same CPU budget)"),
    Config("1w_free", 1, False, False, "1 worker, nothing pinned"),
    Config("2w_free", 2, False, False, "2 workers, nothing pinned (wrk and Redis compete)"),
    Config(
        "2w_free_learner",
        2,
        False,
        True,
        "2 workers with StreamLearning + `personalize learner`, nothing pinned",
    ),
)


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu: float  # percent of one core
    redis_cpu: float
    learner_cpu: float
    commands: dict[str, float]  # Redis commands per request, by command
    misses: float  # near-cache misses per request, from the workers' own stats
    folded: float = float("nan")  # other workers' writes folded into a copy, per request
    dropped: float = float("nan")  # copies dropped at a gap in the notices, per request


@dataclass
class Result:
    runs: dict[str, list[Run]] = field(default_factory=dict)
    learner: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    load_average: list[float] = field(default_factory=list)  # 1-min, before and after


# -- throughput -----------------------------------------------------------------------------


def _redis_counters() -> tuple[float, dict[str, int]]:
    client = benchkit.redis_client()
    try:
        cpu = client.info("cpu")
        stats = client.info("commandstats")
    finally:
        client.close()
    seconds = float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    return seconds, calls


def worker_stats(port: int, workers: int) -> dict[int, dict[str, Any]]:
    """The ``/_bench/state`` of every worker (each poll reaches one; bounded attempts)."""
    found: dict[int, dict[str, Any]] = {}
    for _ in range(40 * workers):
        with contextlib.suppress(Exception):
            state = benchkit.get_json(port, "/_bench/state")
            if state is not None:
                found[int(state["pid"])] = state
        if len(found) >= workers:
            break
    return found


def _delta(
    before: dict[int, dict[str, Any]], after: dict[int, dict[str, Any]], name: str
) -> int | None:
    """How much the workers' profile-service counter ``name`` grew (None: not all polled)."""
    if set(before) != set(after) or not after:
        return None
    return sum(
        int(after[p]["stats"].get(name, 0)) - int(before[p]["stats"].get(name, 0)) for p in after
    )


def _median_known(values: Iterable[float]) -> float:
    """The median of the values that are not NaN (NaN when there are none)."""
    known = [v for v in values if not math.isnan(v)]
    return statistics.median(known) if known else float("nan")


def _show_misses(value: float) -> str:
    """The near-cache hit rate of requests, and the misses per request."""
    if math.isnan(value):
        return "n/a (workers not all polled)"
    return f"{100 * (1 - value):.1f}% ({value:.3f})"


def measure(
    args: argparse.Namespace,
    config: Config,
    server: benchkit.BenchServer,
    learner: subprocess.Popen[bytes] | None,
    script: Path,
    cookie_file: Path,
    duration: int,
) -> Run:
    cmd = benchkit.wrk_command(
        server.port,
        script,
        cookie_file,
        duration=duration,
        connections=args.connections,
        threads=1,
        headers=base_headers(server.port),
        cpus=args.load_cpus if config.pinned else None,
    )
    server_before = server.cpu_seconds()
    learner_before = benchkit.tree_cpu_seconds(learner.pid) if learner else 0.0
    states_before = worker_stats(server.port, config.workers)
    redis_before, calls_before = _redis_counters()
    done = subprocess.run(
        cmd, cwd=benchkit.REPO, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    summary, _buckets = benchkit.parse_wrk(done.stdout)
    seconds = summary["duration_us"] / 1e6 or 1.0
    redis_after, calls_after = _redis_counters()
    states_after = worker_stats(server.port, config.workers)
    misses, folded, dropped = (
        _delta(states_before, states_after, name)
        for name in ("cache_misses", "notices_folded", "notices_dropped")
    )
    if not server.alive():
        raise benchkit.HarnessError(f"{config.name}: server died; log:\n{server.log_tail()}")
    requests = max(1, int(summary["requests"]))
    commands = {
        name: (calls_after[name] - calls_before.get(name, 0)) / requests
        for name in calls_after
        if calls_after[name] - calls_before.get(name, 0) > 0
    }
    errors = sum(int(summary[k]) for k in ("connect", "read", "write", "timeout"))
    return Run(
        rps=summary["requests"] / seconds,
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        errors=errors + int(summary["status_errors"]),
        server_cpu=100 * (server.cpu_seconds() - server_before) / seconds,
        redis_cpu=100 * (redis_after - redis_before) / seconds,
        learner_cpu=(
            100 * (benchkit.tree_cpu_seconds(learner.pid) - learner_before) / seconds
            if learner
            else 0.0
        ),
        commands=commands,
        misses=float("nan") if misses is None else misses / requests,
        folded=float("nan") if folded is None else folded / requests,
        dropped=float("nan") if dropped is None else dropped / requests,
    )


def throughput(args: argparse.Namespace, workdir: Path, result: Result, base: str) -> None:
    configs = [c for c in CONFIGS if c.name in args.configs]
    stream, models = f"{base}learn", f"{base}models"
    servers: dict[str, benchkit.BenchServer] = {}
    learner: subprocess.Popen[bytes] | None = None
    try:
        for config in configs:
            app = "learning_app" if config.learning else "app"
            server = benchkit.BenchServer(
                f"benchmarks.drill_app:{app}",
                workdir,
                name=config.name,
                workers=config.workers,
                cpus=args.server_cpus if config.pinned else None,
                env={
                    "BENCH_PREFIX": f"{base}{config.name}:",
                    "BENCH_LEARN_STREAM": stream,
                    "BENCH_LEARN_PREFIX": models,
                },
            )
            servers[config.name] = server
            server.start()
        if any(c.learning for c in configs):
            learner_log = open(workdir / "learner.log", "ab")  # noqa: SIM115 - closed below
            learner = subprocess.Popen(
                [
                    # This checkout's CLI with this interpreter (a venv's console script may
                    # be missing, or belong to another checkout).
                    sys.executable,
                    "-c",
                    "from personalize.cli import main; raise SystemExit(main())",
                    "learner",
                    "--redis-url",
                    benchkit.REDIS_URL,
                    "--stream",
                    stream,
                    "--group",
                    f"{base}group",
                    "--prefix",
                    models,
                ],
                cwd=benchkit.REPO,
                stdout=learner_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            learner_log.close()
        first = servers[configs[0].name]
        print(f"collecting {args.visitors} visitor cookies ...", flush=True)
        cookie_file = workdir / "visitors.cookies"
        cookie_file.write_text("\n".join(collect_cookies(first.port, args.visitors)))
        script = workdir / "status.lua"
        script.write_text(benchkit.wrk_script(count_responses=True))
        print(f"warming up each server for {args.warmup}s ...", flush=True)
        for config in configs:
            measure(args, config, servers[config.name], None, script, cookie_file, args.warmup)
        for repeat in range(args.repeats):
            for config in configs:
                time.sleep(0.5)
                run = measure(
                    args,
                    config,
                    servers[config.name],
                    learner if config.learning else None,
                    script,
                    cookie_file,
                    args.duration,
                )
                result.runs.setdefault(config.name, []).append(run)
                print(
                    f"[{repeat + 1}/{args.repeats}] {config.name:16s} {run.rps:7.0f} req/s  "
                    f"p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:7.2f} ms  errors {run.errors}  "
                    f"server {run.server_cpu:4.0f}%  redis {run.redis_cpu:3.0f}%  "
                    f"learner {run.learner_cpu:3.0f}%",
                    flush=True,
                )
        learning = [c for c in configs if c.learning]
        if learning and learner is not None:
            time.sleep(3)  # the learner publishes every 2 s
            result.learner = learner_figures(stream, f"{base}group", models)
            config = learning[0]
            states = worker_stats(servers[config.name].port, config.workers)
            result.learner["workers"] = [s.get("learning", {}) for s in states.values()]
    finally:
        for server in servers.values():
            server.stop()
        if learner is not None and learner.poll() is None:
            learner.send_signal(signal.SIGTERM)
            try:
                learner.wait(timeout=15)
            except subprocess.TimeoutExpired:
                learner.kill()
                learner.wait(timeout=5)


def learner_figures(stream: str, group: str, models: str) -> dict[str, Any]:
    client = benchkit.redis_client()
    try:
        groups = client.xinfo_groups(stream)
        info: dict[str, Any] = next((g for g in groups if g["name"].decode() == group), {})
        length = int(client.xlen(stream))
        stream_bytes = int(client.memory_usage(stream, samples=0) or 0)
        snapshot_bytes = int(client.memory_usage(f"{models}:snapshot", samples=0) or 0)
        version = int(client.get(f"{models}:version") or 0)
    finally:
        client.close()
    return {
        "stream_length": length,
        "stream_bytes": stream_bytes,
        "bytes_per_entry": stream_bytes / length if length else 0.0,
        "lag": info.get("lag"),
        "pending": info.get("pending"),
        "snapshot_bytes": snapshot_bytes,
        "version": version,
    }


# -- memory per profile ---------------------------------------------------------------------

PATHS = [
    "/",
    "/shoes/trail-runner-42",
    "/shoes/hiking-boot-7",
    "/bags/daypack-20l",
    "/bags/duffel-40l",
    "/sale",
    "/search?q=waterproof+jacket",
    "/jackets/rain-shell-3",
    "/cart",
    "/account",
]
CATEGORIES = {"shoes": "shoes", "bags": "bags", "jackets": "jackets"}
ENTRIES = [
    ("direct", None, None, None, None),
    ("organic_search", "google", "organic", None, None),
    ("paid_search", "google", "cpc", "spring-sale", "trail shoes"),
    ("email", "newsletter", "email", "nov-week-4", None),
    ("organic_social", "instagram", "social", None, None),
]
DEVICES = [
    ("desktop", "Windows", "Chrome"),
    ("mobile", "iOS", "Mobile Safari"),
    ("tablet", "Android", "Chrome"),
]


def _hits(
    rng: random.Random, device_id: str, sessions: int, start: float, device: int
) -> list[Any]:
    from personalize.profiles.pageviews import Hit

    hits = []
    ts = start
    dtype, os_name, browser = DEVICES[device % len(DEVICES)]
    for _ in range(sessions):
        channel, source, medium, campaign, term = rng.choice(ENTRIES)
        for i in range(rng.randint(2, 6)):
            path = rng.choice(PATHS)
            hits.append(
                Hit(
                    ts=ts,
                    path=path,
                    channel=channel if i == 0 else "internal",
                    source=source if i == 0 else None,
                    medium=medium if i == 0 else None,
                    campaign=campaign if i == 0 else None,
                    term=term if i == 0 else None,
                    category=CATEGORIES.get(path.strip("/").split("/")[0]),
                    device_type=dtype,
                    country=rng.choice(["GB", "DE", "FR", "US"]),
                    device_id=device_id,
                    os=os_name,
                    browser=browser,
                )
            )
            ts += rng.uniform(10, 90)
        ts += rng.uniform(2, 72) * 3600  # the next visit: hours to days later
    return hits


def _events(rng: random.Random, ts: float, orders: int, tickets: int, custom: int) -> list[Any]:
    from personalize.profiles.events import validate_event

    events = []
    for i in range(orders):
        products = rng.sample(PATHS[1:6], rng.randint(1, 3))
        events.append(
            validate_event(
                "order",
                {
                    "order_id": f"o-{rng.randrange(10**9)}",
                    "products": [p.rsplit("/", 1)[-1] for p in products],
                    "value": round(rng.uniform(20, 300), 2),
                    "currency": "EUR",
                },
                ts=ts + i * 43200,
            )
        )
    for i in range(tickets):
        events.append(
            validate_event(
                "ticket",
                {
                    "ticket_id": f"t-{rng.randrange(10**6)}",
                    "status": rng.choice(["open", "closed"]),
                },
                ts=ts + i * 3600,
            )
        )
    for i in range(custom):
        events.append(
            validate_event(
                "custom",
                {"list": "wishlist", "item": "daypack-20l"},
                name="wishlist_add",
                ts=ts + i,
            )
        )
    return events


async def _build_profiles(prefix: str, samples: int, seed: int) -> dict[str, list[str]]:
    """Write realistic profiles through the real store API; returns profile keys by kind."""
    from personalize.profiles.cookie import new_visitor_id
    from personalize.profiles.events import validate_event
    from personalize.stores.redis import RedisStore

    rng = random.Random(seed)
    store = RedisStore(benchkit.REDIS_URL, prefix=prefix, invalidation=False)
    now = time.time() - 30 * 86400
    kinds: dict[str, list[str]] = {"anonymous": [], "known": [], "tombstone": [], "full": []}
    try:
        for n in range(samples):
            vid = new_visitor_id()
            hits = _hits(rng, vid, rng.randint(2, 4), now + n, device=n)
            await store.apply_changes({f"v:{vid}": hits}, batch_id=f"b{n}")
            kinds["anonymous"].append(f"v:{vid}")
        for n in range(samples):
            uid = f"user-{seed}-{n:06d}"
            known = f"u:{uid}"
            for device in range(3):  # three browsers of one customer, each logs in once
                anon = new_visitor_id()
                hits = _hits(rng, anon, 2, now + n + device * 86400, device=device)
                await store.apply_changes({f"v:{anon}": hits}, batch_id=f"k{n}-{device}")
                await store.merge(
                    f"v:{anon}",
                    known,
                    user_id=uid,
                    device_id=new_visitor_id(),
                    traits={"plan": rng.choice(["free", "plus"]), "newsletter": True},
                    now=now + n + device * 86400 + 3600,
                )
                kinds["tombstone"].append(f"v:{anon}")
            events = _events(rng, now + 5 * 86400, orders=2, tickets=1, custom=1)
            events.append(
                validate_event(
                    "return",
                    {"order_id": events[0].properties["order_id"], "products": ["daypack-20l"]},
                    ts=now + 9 * 86400,
                )
            )
            await store.apply_changes({known: events}, batch_id=f"e{n}")
            kinds["known"].append(known)
        for n in range(max(5, samples // 10)):  # every bound reached: the worst case
            uid = f"full-{seed}-{n:04d}"
            known = f"u:{uid}"
            for device in range(12):
                anon = new_visitor_id()
                hits = _hits(rng, anon, 3, now + device * 3 * 86400, device=device)
                await store.apply_changes({f"v:{anon}": hits}, batch_id=f"f{n}-{device}")
                await store.merge(
                    f"v:{anon}", known, user_id=uid, device_id=new_visitor_id(), now=now + 1
                )
            events = _events(rng, now, orders=40, tickets=10, custom=10)
            for start in range(0, len(events), 20):
                await store.apply_changes(
                    {known: events[start : start + 20]}, batch_id=f"fe{n}-{start}"
                )
            kinds["full"].append(known)
    finally:
        await store.close()
    return kinds


async def _read_profiles(prefix: str, keys: list[str]) -> dict[str, bytes]:
    """Each profile as a reader sees it (its log folded in), as JSON."""
    from personalize.stores.redis import RedisStore

    store = RedisStore(benchkit.REDIS_URL, prefix=prefix, invalidation=False)
    found: dict[str, bytes] = {}
    try:
        for key in keys:
            profile = await store.get(key)
            if profile is not None:
                found[key] = profile.to_json()
    finally:
        await store.close()
    return found


def memory_figures(prefix: str, samples: int, seed: int) -> dict[str, Any]:
    import orjson

    from personalize.stores.redis import RedisStore

    kinds = asyncio.run(_build_profiles(prefix, samples, seed))
    profiles = asyncio.run(_read_profiles(prefix, [k for keys in kinds.values() for k in keys]))
    names = RedisStore(benchkit.REDIS_URL, prefix=prefix)
    client = benchkit.redis_client()
    out: dict[str, Any] = {}
    try:
        for kind, keys in kinds.items():
            usage, json_sizes, details = [], [], []
            for key in keys:
                # A profile is its hash and its change log (page views and events not folded
                # into the hash yet), read as one profile.
                usage.append(
                    sum(
                        int(client.memory_usage(rkey, samples=0) or 0)
                        for rkey in (names.redis_key(key), names.log_key(key))
                    )
                )
                raw = profiles.get(key) or b""
                json_sizes.append(len(raw))
                if raw:
                    details.append(orjson.loads(raw))
            out[kind] = {
                "count": len(keys),
                "memory_mean": statistics.fmean(usage) if usage else 0.0,
                "memory_p90": sorted(usage)[int(0.9 * (len(usage) - 1))] if usage else 0,
                "json_mean": statistics.fmean(json_sizes) if json_sizes else 0.0,
                "sessions": statistics.fmean(len(d.get("sessions", [])) for d in details)
                if details
                else 0,
                "page_views": statistics.fmean(d.get("page_views", 0) for d in details)
                if details
                else 0,
                "devices": statistics.fmean(len(d.get("devices", {})) for d in details)
                if details
                else 0,
                "events": statistics.fmean(len(d.get("events", [])) for d in details)
                if details
                else 0,
                "ttl": int(client.ttl(names.redis_key(keys[0]))) if keys else None,
                "encoding": (client.object("encoding", names.redis_key(keys[0])) or b"").decode()
                if keys
                else "",
            }
        memory = client.info("memory")
        out["fragmentation"] = float(memory.get("mem_fragmentation_ratio", 0.0))
        out["allocator"] = memory.get("mem_allocator", "")
        out["hash_max_listpack_value"] = client.config_get("hash-max-listpack-value").get(
            "hash-max-listpack-value"
        )
    finally:
        client.close()
    return out


# -- report ---------------------------------------------------------------------------------


def summarize(result: Result) -> list[dict[str, Any]]:
    rows = []
    base = result.runs.get("1w_pinned")
    for config in CONFIGS:
        runs = result.runs.get(config.name)
        if not runs:
            continue
        ratios = [r.rps / b.rps for r, b in zip(runs, base, strict=True) if b.rps] if base else []
        commands: dict[str, float] = {}
        for run in runs:
            for name, per in run.commands.items():
                commands[name] = commands.get(name, 0.0) + per / len(runs)
        # Commands a script runs inside Redis are counted too (the append script runs
        # HEXISTS, RPUSH, HGET, HINCRBY, EXPIRE; the compare-and-set HGET, HSET, LTRIM...).
        # Client round trips exclude them.
        inner = sum(commands.get(name, 0.0) for name in SCRIPT_ONLY)
        rows.append(
            {
                "config": config,
                "client_commands": sum(commands.values()) - inner,
                "rps": statistics.median(r.rps for r in runs),
                "ratio": statistics.median(ratios) if ratios else float("nan"),
                "p50": statistics.median(r.p50_ms for r in runs),
                "p99": statistics.median(r.p99_ms for r in runs),
                "errors": sum(r.errors for r in runs),
                "server_cpu": statistics.median(r.server_cpu for r in runs),
                "redis_cpu": statistics.median(r.redis_cpu for r in runs),
                "learner_cpu": statistics.median(r.learner_cpu for r in runs),
                "all": " / ".join(f"{r.rps:.0f}" for r in runs),
                "commands": commands,
                # A repeat whose workers could not all be polled has no count: leave it out.
                "misses": _median_known(r.misses for r in runs),
                "folded": _median_known(r.folded for r in runs),
                "dropped": _median_known(r.dropped for r in runs),
                "redis_us_per_req": statistics.median(
                    1e4 * r.redis_cpu / r.rps for r in runs if r.rps
                ),
            }
        )
    return rows


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def capacity(
    args: argparse.Namespace, memory: dict[str, Any], rows: list[dict[str, Any]]
) -> list[str]:
    total = args.profiles
    known = int(total * args.known_share)
    anonymous = total - known
    anon_b = memory["anonymous"]["memory_mean"]
    known_b = memory["known"]["memory_mean"]
    tomb_b = memory["tombstone"]["memory_mean"]
    full_b = memory["full"]["memory_mean"]
    tombstones = known * args.devices_per_known
    data = anonymous * anon_b + known * known_b + tombstones * tomb_b
    worst = anonymous * anon_b + known * full_b + tombstones * tomb_b
    frag, headroom = 1.3, 1.6  # allocator fragmentation; fork copy-on-write + buffers
    per_primary = data * frag * headroom
    shard_target = args.shard_gb * 1e9
    shards = max(3, math.ceil(per_primary / shard_target))
    replicated = per_primary * (1 + args.replicas)
    pinned = next((r for r in rows if r["config"].name == "1w_pinned"), None)
    cmds = pinned["commands"] if pinned else {}
    reads = pinned["misses"] if pinned else float("nan")
    xadd = next((r["commands"].get("xadd", 0.0) for r in rows if r["config"].learning), 0.0)
    writes = cmds.get("evalsha", 0.0) + cmds.get("eval", 0.0)
    publish = cmds.get("publish", 0.0)
    two = next((r for r in rows if r["config"].name == "2w_pinned"), None)
    two_reads = two["misses"] if two else float("nan")
    all_cmds = pinned["client_commands"] if pinned else 0.0
    us_per_req = pinned["redis_us_per_req"] if pinned else float("nan")
    peak = args.peak_rps
    lines = [
        f"Assumptions (options of the command): {total / 1e6:.0f} million profiles, "
        f"{args.known_share:.0%} known ({known / 1e6:.1f} M, each merged from "
        f"{args.devices_per_known} browsers, so {tombstones / 1e6:.1f} M forwarding tombstones "
        f"that expire 90 days after the login) and {anonymous / 1e6:.1f} M anonymous; "
        f"{args.replicas} replica per primary; at most {args.shard_gb} GB of data per primary "
        f"(fast resync and failover); peak {peak:,} page views/s.",
        "",
        "| item | figure |",
        "|---|---|",
        f"| raw data (typical profiles, `MEMORY USAGE`) | {_gb(data)} "
        f"({anonymous / 1e6:.1f} M x {anon_b:.0f} B + {known / 1e6:.1f} M x {known_b:.0f} B "
        f"+ {tombstones / 1e6:.1f} M x {tomb_b:.0f} B) |",
        f"| raw data if every known profile hits every bound | {_gb(worst)} "
        f"(known at {full_b:.0f} B) |",
        f"| on the primaries, with x{frag} fragmentation and x{headroom} headroom for fork "
        f"copy-on-write, replication and client buffers | {_gb(per_primary)} |",
        f"| with {args.replicas} replica(s) | {_gb(replicated)} of RAM in total |",
        f"| shards (primaries) | {shards} (Redis Cluster minimum 3; "
        f"{_gb(per_primary / shards)} each) -> {shards * (1 + args.replicas)} nodes |",
        f"| Redis client commands per page view, measured (1 worker) | {all_cmds:.2f}: "
        f"EVALSHA {writes:.2f} (the append script: one per profile per write-behind batch), "
        f"PUBLISH {publish:.3f} (one notice per batch), a read (MULTI, HMGET, LRANGE, EXEC) "
        f"per near-cache miss ({reads:.3f}; with 2 workers and no sticky routing "
        f"{two_reads:.3f}: the others fold a write's notice into their copy); with "
        f"StreamLearning add {xadd:.2f} XADD |",
        f"| Redis CPU per page view, measured | {us_per_req:.0f} us -> one Redis core "
        f"carries ~{1e6 / us_per_req:,.0f} page views/s |"
        if us_per_req == us_per_req and us_per_req > 0
        else "| Redis CPU per page view | n/a |",
        f"| at {peak:,} page views/s | ~{peak * all_cmds:,.0f} commands/s over the cluster, "
        f"~{peak * us_per_req / 1e6:.2f} Redis cores in total, "
        f"~{peak * us_per_req / 1e6 / shards:.2f} per shard; the writes carry the whole "
        f"profile JSON (~{memory['anonymous']['json_mean']:.0f} B anonymous, "
        f"~{memory['known']['json_mean']:.0f} B known) twice (read + write), "
        f"~{peak * 2 * memory['known']['json_mean'] / 1e6:.0f} MB/s at worst |",
    ]
    return lines


def render(
    args: argparse.Namespace, result: Result, rows: list[dict[str, Any]], started: dt.datetime
) -> str:
    mem = result.memory
    lines = [
        START_MARK,
        "## Scale-out (workers sharing Redis, learner, memory per profile, capacity)",
        "",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, "
        f"Python {platform.python_version()}; Redis on the same machine; 1-min load average "
        f"{' -> '.join(f'{x:.1f}' for x in result.load_average)} (before -> after the runs: "
        "other processes, e.g. concurrent test runs, competed for the 2 cores)",
        f"- command: `{benchkit.command_line('benchmarks.scaleout')}`",
        f"- load: wrk, 1 thread, {args.connections} connections, {args.duration} s per run, "
        f"{args.repeats} interleaved repeats, {args.warmup} s warm-up per server; "
        f"{args.visitors} returning visitors, the same cookies (one secret) for every "
        "configuration; each configuration has its own key prefix",
        "- servers: `benchmarks.drill_app:app` (PersonalizeMiddleware + RedisStore; "
        "`learning_app` adds `StreamLearning`), uvicorn `--workers N --loop uvloop --http "
        "httptools`",
        "",
        "**Honest caveat:** this machine has 2 cores. wrk needs most of one, Redis needs some "
        "too, so two workers cannot show real scale-out here. `2w_pinned` gives two workers "
        "the same single core as `1w_pinned` (the cost of a second process sharing Redis and "
        "invalidations); the `free` rows let workers, wrk, Redis and the learner fight for "
        "both cores. On a host with a core per worker (and Redis and the load generator "
        "elsewhere) expect close to N x the single-worker figure: the workers share nothing "
        "but Redis, which the CPU per request below shows is far from saturated.",
        "",
        "| configuration | req/s (median) | vs 1w_pinned | p50 ms | p99 ms | errors "
        "| server CPU | Redis CPU | learner CPU | Redis client cmds/req "
        "| near-cache hits of requests (misses/req) | req/s per repeat |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| `{row['config'].name}` | {row['rps']:.0f} | {row['ratio']:.2f} "
            f"| {row['p50']:.2f} | {row['p99']:.2f} | {row['errors']} "
            f"| {row['server_cpu']:.0f}% | {row['redis_cpu']:.0f}% "
            f"| {row['learner_cpu']:.0f}% | {row['client_commands']:.2f} "
            f"| {_show_misses(row['misses'])} | {row['all']} |"
        )
    lines += ["", "Configurations:", ""]
    lines += [f"- `{row['config'].name}`: {row['config'].meaning}" for row in rows]
    lines += [
        "",
        "Redis commands per request by command (mean over repeats; `INFO commandstats` "
        "deltas, so a concurrent test run on the same Redis can add a little; HEXISTS, "
        "RPUSH, HGET, HINCRBY, HSET and EXPIRE are the ones the store's scripts (EVALSHA) run "
        "inside Redis, which the client-commands column leaves out; near-cache misses and "
        "notices come from the workers' own counters: a notice of another worker's write "
        "folded into a copy, or a copy dropped at a gap in the notices, per request):",
        "",
    ]
    for row in rows:
        top = sorted(row["commands"].items(), key=lambda kv: -kv[1])[:8]
        notices = ""
        if row["config"].workers > 1 and not math.isnan(row["folded"]):
            notices = (
                f"; notices folded {row['folded']:.3f}, copies dropped at a gap "
                f"{row['dropped']:.4f}"
            )
        lines.append(
            f"- `{row['config'].name}`: "
            + ", ".join(f"{k.upper()} {v:.3f}" for k, v in top)
            + notices
        )
    if result.learner:
        lr = result.learner
        ws = lr.get("workers", [])
        sent = sum(int(w.get("events", 0)) for w in ws)
        dropped = sum(int(w.get("dropped", 0)) for w in ws)
        versions = "/".join(str(w.get("version", "?")) for w in ws)
        lines += [
            "",
            f"Learner (after the runs, 3 s settle): snapshot version {lr['version']} "
            f"({lr['snapshot_bytes']:,} B); consumer group lag {lr['lag']}, pending "
            f"{lr['pending']}; stream {lr['stream_length']:,} entries, "
            f"{lr['stream_bytes']:,} B (~{lr['bytes_per_entry']:.0f} B per event; capped at "
            f"~1,000,000 entries = ~{lr['bytes_per_entry']:.0f} MB); {len(ws)} workers: "
            f"{sent:,} events sent, {dropped:,} dropped, model versions in use {versions} "
            "(a worker looks for a new snapshot after a page view, at most once a second).",
        ]
    lines += [
        "",
        f"### Redis memory per profile (`MEMORY USAGE key SAMPLES 0`, allocator "
        f"{mem.get('allocator')}, hash encoding `{mem['anonymous']['encoding']}`)",
        "",
        "Profiles written through the real store API (`RedisStore.apply_changes` with page "
        "views, `merge` at login, events), as the middleware writes them; memory is the "
        "profile's hash and its change log together, JSON the profile as read (log folded "
        "in):",
        "",
        "| kind | sample | sessions | page views | devices | events | JSON bytes | memory "
        "bytes (mean) | p90 | TTL |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    labels = {
        "anonymous": "anonymous, 2-4 sessions on one browser",
        "known": "known: 3 browsers merged, 2 orders, a return, a ticket, a custom event, traits",
        "tombstone": "forwarding tombstone left by each merge",
        "full": "known, every bound full (20 sessions, 10 devices, 50 events, 12 merges)",
    }
    for kind in ("anonymous", "known", "tombstone", "full"):
        m = mem[kind]
        ttl = "none" if m["ttl"] == -1 else f"{m['ttl'] / 86400:.0f} days"
        lines.append(
            f"| {labels[kind]} | {m['count']} | {m['sessions']:.1f} | {m['page_views']:.1f} "
            f"| {m['devices']:.1f} | {m['events']:.1f} | {m['json_mean']:.0f} "
            f"| {m['memory_mean']:.0f} | {m['memory_p90']} | {ttl} |"
        )
    lines += ["", "### Capacity estimate: 10 million profiles on Redis Cluster", ""]
    lines += capacity(args, mem, rows)
    lines += [
        "",
        "Reading it: memory, not throughput, sizes the cluster. Reads mostly never reach "
        "Redis (a near-cache that folds in the other workers' writes from their notices); "
        "each page view costs one append script per profile per 20 ms write-behind batch, "
        "so a busy visitor's page views coalesce. Keys are hash-tagged per profile, so "
        "every command touches one slot and load spreads evenly over the shards. Caveats: "
        "these runs use one Redis, where notices are plain `PUBLISH` (one channel); on a "
        "Redis Cluster, where `PUBLISH` is broadcast to every node over the cluster bus, "
        "`RedisStore` uses sharded pub/sub instead (`SPUBLISH`/`SSUBSCRIBE`, Redis 7: one "
        "channel per range of 1024 slots, served by the node that owns the range, so the "
        "traffic stays per shard), and each write batch also waits for a replica (`WAIT`, "
        "one more reply per node per batch); the learning stream is one key (one slot), "
        "capped at ~1 M entries.",
        END_MARK,
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scale-out figures over Redis.")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--visitors", type=int, default=1000)
    parser.add_argument("--configs", default=",".join(c.name for c in CONFIGS))
    parser.add_argument("--samples", type=int, default=200, help="profiles per kind measured")
    parser.add_argument("--profiles", type=int, default=10_000_000)
    parser.add_argument("--known-share", type=float, default=0.15)
    parser.add_argument("--devices-per-known", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--shard-gb", type=float, default=25.0)
    parser.add_argument("--peak-rps", type=int, default=10_000, help="page views/s at peak")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    names = {c.name for c in CONFIGS}
    args.configs = [n.strip() for n in args.configs.split(",") if n.strip()]
    if not args.configs or any(n not in names for n in args.configs):
        parser.error(f"--configs takes {', '.join(sorted(names))}")
    if not (1 <= args.duration <= 300 and 1 <= args.repeats <= 20 and 1 <= args.warmup <= 60):
        parser.error("--duration 1..300, --repeats 1..20, --warmup 1..60")
    if not (1 <= args.connections <= 1000 and 1 <= args.visitors <= 20_000):
        parser.error("--connections 1..1000, --visitors 1..20000")
    if not (10 <= args.samples <= 2000 and 0 <= args.known_share <= 1):
        parser.error("--samples 10..2000, --known-share 0..1")
    if shutil.which("wrk") is None:
        parser.error("wrk is needed (apt-get install -y wrk)")
    if not benchkit.redis_ping():
        parser.error("Redis at 127.0.0.1:6379 does not answer PING")
    ncpu = os.cpu_count() or 1
    args.server_cpus = args.load_cpus = None
    if not args.no_pin and ncpu >= 2 and shutil.which("taskset"):
        args.server_cpus, args.load_cpus = "0", ("1" if ncpu == 2 else f"1-{ncpu - 1}")
    signal.signal(signal.SIGTERM, benchkit.exit_on_sigterm)
    started = dt.datetime.now(dt.UTC)
    base = f"pzscale:{os.getpid()}:"
    result = Result()
    try:
        with tempfile.TemporaryDirectory(prefix="personalize-scaleout-") as tmp:
            print("measuring memory per profile ...", flush=True)
            result.memory = memory_figures(f"{base}mem:", args.samples, seed=7)
            result.load_average.append(os.getloadavg()[0])
            throughput(args, Path(tmp), result, base)
            result.load_average.append(os.getloadavg()[0])
    except benchkit.HarnessError as exc:
        print(f"scale-out benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        removed = benchkit.delete_prefix(base)
        print(f"deleted {removed} Redis keys under {base}", flush=True)
    rows = summarize(result)
    section = render(args, result, rows, started)
    print()
    print(section)
    if not args.no_write:
        benchkit.write_section(args.results, START_MARK, END_MARK, section)
        print(f"updated {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
