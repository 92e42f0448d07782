"""Throughput/latency harness: real uvicorn servers, wrk (or a Python fallback) as the load.

    .venv/bin/python -m benchmarks.run [--duration 10 --repeats 5 --connections 50]

Starts one uvicorn process per app (1 worker, uvloop, httptools, no access log) on a free
127.0.0.1 port, keeps each alive for the whole run (warm caches, as in production), and for
each repeat loads the scenarios in the order of ``SCENARIOS`` (bare first). Reports the median
over repeats of requests/s, p50 and p99 latency, and of the per-repeat ratio to ``bare``,
and writes them to benchmarks/RESULTS.md between the ``throughput`` markers.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.benchkit import (
    HOST,
    REPO,
    HarnessError,
    exit_on_sigterm,
    free_port,
    pin,
    write_section,
    wrk_script,
)

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START_MARK = "<!-- throughput:start -->"
END_MARK = "<!-- throughput:end -->"
COOKIE_NAME = "pz_visitor"
ACCEPTANCE_RATIO = 0.5

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
ACCEPT_LANGUAGE = "en-GB,en;q=0.9,de;q=0.8"


@dataclass(frozen=True)
class Scenario:
    name: str
    app: str  # attribute of benchmarks.apps
    cookies: bool  # rotate across the returning visitors' cookies
    meaning: str
    reference: str = "bare"  # the scenario its ratio is to (measured in the same repeat)


SCENARIOS = (
    Scenario("bare", "bare", True, "Starlette, one route, HTMLResponse('hello')"),
    Scenario("trivial", "trivial", True, "the same behind a pass-through ASGI middleware"),
    Scenario(
        "personalized_new",
        "personalized",
        False,
        "SQLiteStore, no cookie: new visitor, Set-Cookie and profile write every request",
    ),
    Scenario(
        "personalized_returning",
        "personalized",
        True,
        "SQLiteStore, rotating across N returning visitors' signed cookies",
    ),
    Scenario(
        "same_page_returning",
        "personalized_same",
        True,
        "SQLiteStore, returning visitors, the bare app's own page unchanged behind the "
        "middleware (it reads nothing of the visitor; the page view is still recorded)",
    ),
    Scenario(
        "memory_returning",
        "personalized_memory",
        True,
        "MemoryStore, rotating across N returning visitors' signed cookies",
    ),
    Scenario(
        "redis_returning",
        "personalized_redis",
        True,
        "RedisStore (local Redis), rotating across N returning visitors' signed cookies",
    ),
    Scenario(
        "nowrite_returning",
        "personalized_nowrite",
        True,
        "a store that writes nothing: the middleware's own work, returning visitors",
    ),
    Scenario(
        "realistic_bare",
        "realistic_bare",
        True,
        "a Jinja2 listing of 24 products (~9 KB) with a fixed hero and banner, no middleware "
        "(benchmarks/realistic.py): the reference of the realistic scenarios",
    ),
    Scenario(
        "realistic_sqlite",
        "personalized_realistic_sqlite",
        True,
        "the same listing behind PersonalizeMiddleware + SQLiteStore, hero and banner decided "
        "from the repository's content/ and segments/, returning visitors",
        reference="realistic_bare",
    ),
    Scenario(
        "realistic_redis",
        "personalized_realistic_redis",
        True,
        "the same on RedisStore (local Redis)",
        reference="realistic_bare",
    ),
    Scenario(
        "realistic_fixed",
        "personalized_realistic_fixed",
        True,
        "the listing behind PersonalizeMiddleware + SQLiteStore with its fixed hero and "
        "banner (no content): what the middleware and the store cost a page that decides "
        "nothing (realistic_sqlite's rest: the two decided slots)",
        reference="realistic_bare",
    ),
)
REALISTIC_ACCEPTANCE_RATIO = 0.85
REDIS_ACCEPTANCE_RATIO = 0.4


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu: float  # percent of one core over the run
    load_cpu: float


@dataclass
class Plan:
    duration: int
    repeats: int
    connections: int
    visitors: int
    warmup: int
    generator: str  # "wrk" or "python"
    wrk_threads: int
    server_cpus: str | None
    load_cpus: str | None
    scenarios: list[Scenario]
    results: dict[str, list[Run]] = field(default_factory=dict)


def _proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Server:
    """One uvicorn process serving ``benchmarks.apps:<app>``; always stopped by ``stop``."""

    def __init__(self, app: str, workdir: Path, cpus: str | None) -> None:
        self.app = app
        self.workdir = workdir
        self.cpus = cpus
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{app}.log"

    def start(self, timeout: float = 30.0) -> None:
        env = dict(os.environ)
        env["BENCH_DB"] = str(self.workdir / f"{self.app}.sqlite3")
        env["BENCH_PREFIX"] = f"pzbench:{os.getpid()}:{self.app}:"
        env["PYTHONPATH"] = str(REPO)
        for _attempt in range(3):  # a free port can be taken between probe and bind
            self.port = free_port()
            cmd = [
                *pin(self.cpus),
                sys.executable,
                "-m",
                "uvicorn",
                f"benchmarks.apps:{self.app}",
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ]
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    cmd,
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_ready(timeout):
                return
            self.stop()
        raise HarnessError(f"{self.app}: server did not start; log:\n{self.log_tail()}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.05) + 1):
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=1)
                conn.request("GET", "/")
                ok = conn.getresponse().status == 200
                conn.close()
                if ok:
                    return True
            except OSError:
                pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # graceful: lifespan shutdown flushes the store
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.contextmanager
def servers(apps: Sequence[str], workdir: Path, cpus: str | None) -> Iterator[dict[str, Server]]:
    started: dict[str, Server] = {}
    try:
        for app in apps:
            server = Server(app, workdir, cpus)
            started[app] = server
            server.start()
        yield started
    finally:
        for server in started.values():
            server.stop()
        _clean_redis(f"pzbench:{os.getpid()}:")


def _clean_redis(prefix: str) -> None:
    """Delete the Redis keys the benchmark servers wrote (best effort)."""
    try:
        import redis

        client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()
    except Exception as exc:  # no Redis: nothing was written there
        print(f"note: could not clean Redis keys {prefix}*: {exc}", file=sys.stderr)


def base_headers(port: int) -> list[str]:
    return [
        f"User-Agent: {USER_AGENT}",
        "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        f"Accept-Language: {ACCEPT_LANGUAGE}",
        f"Referer: http://{HOST}:{port}/previous-page",
    ]


def collect_cookies(port: int, count: int, time_limit: float = 180.0) -> list[str]:
    """Visit ``count`` times without a cookie; return each new visitor's ``name=value``."""
    headers = dict(h.split(": ", 1) for h in base_headers(port))
    cookies: list[str] = []
    deadline = time.monotonic() + time_limit
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                raise HarnessError(f"collecting cookies took longer than {time_limit}s")
            conn.request("GET", "/", headers=headers)
            response = conn.getresponse()
            response.read()
            for value in response.headers.get_all("set-cookie") or []:
                pair = value.split(";", 1)[0].strip()
                if pair.startswith(COOKIE_NAME + "="):
                    cookies.append(pair)
    finally:
        conn.close()
    if len(cookies) < count:
        raise HarnessError(f"got {len(cookies)} visitor cookies out of {count} visits")
    return cookies


def ensure_wrk(allow_install: bool) -> str | None:
    found = shutil.which("wrk")
    if found or not allow_install:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        return None
    print("wrk not found; trying `apt-get install -y wrk` ...", flush=True)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            [apt, "install", "-y", "wrk"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=300,
            check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    return shutil.which("wrk")


def load(
    plan: Plan, port: int, cookie_file: Path | None, duration: int, workdir: Path
) -> dict[str, float]:
    """One load run against ``port``: the generator's JSON result."""
    headers = base_headers(port)
    if plan.generator == "wrk":
        script = workdir / "rotate.lua"
        if not script.exists():
            script.write_text(wrk_script(count_responses=False))
        cmd = [
            *pin(plan.load_cpus),
            "wrk",
            "-t",
            str(plan.wrk_threads),
            "-c",
            str(plan.connections),
            "-d",
            f"{duration}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
        ]
        for header in headers:
            cmd += ["-H", header]
        cmd.append(f"http://{HOST}:{port}/")
        if cookie_file is not None:
            cmd += ["--", str(cookie_file)]
    else:
        cmd = [
            *pin(plan.load_cpus),
            sys.executable,
            "-m",
            "benchmarks.loadgen",
            "--port",
            str(port),
            "--duration",
            str(duration),
            "--connections",
            str(plan.connections),
        ]
        for header in headers:
            cmd += ["--header", header]
        if cookie_file is not None:
            cmd += ["--cookies", str(cookie_file)]
    done = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    for line in done.stdout.splitlines():
        line = line.removeprefix("BENCH_JSON ").strip()
        if line.startswith("{"):
            result: dict[str, float] = json.loads(line)
            return result
    raise HarnessError(f"load generator failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def measure(plan: Plan, server: Server, cookie_file: Path | None, workdir: Path) -> Run:
    server_before = _proc_cpu_seconds(server.pid)
    load_before = _children_cpu_seconds()
    result = load(plan, server.port, cookie_file, plan.duration, workdir)
    seconds = result["duration_us"] / 1e6 or 1.0
    if server.proc is None or server.proc.poll() is not None:
        raise HarnessError(f"{server.app}: server died; log:\n{server.log_tail()}")
    return Run(
        rps=result["requests"] / seconds,
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        errors=int(result["errors"]) + int(result["status_errors"]),
        server_cpu=100 * (_proc_cpu_seconds(server.pid) - server_before) / seconds,
        load_cpu=100 * (_children_cpu_seconds() - load_before) / seconds,
    )


def execute(plan: Plan, workdir: Path) -> None:
    apps = list(dict.fromkeys(s.app for s in plan.scenarios))
    with servers(apps, workdir, plan.server_cpus) as running:
        cookie_files: dict[str, Path] = {}
        for app in apps:
            if app.startswith("personalized"):
                print(f"collecting {plan.visitors} visitor cookies from {app} ...", flush=True)
                path = workdir / f"{app}.cookies"
                path.write_text("\n".join(collect_cookies(running[app].port, plan.visitors)))
                cookie_files[app] = path
        # bare and trivial send the SQLite server's cookies: same bytes, only the middleware
        # differs.
        shared = cookie_files.get("personalized") or next(iter(cookie_files.values()), None)

        def cookies_for(scenario: Scenario) -> Path | None:
            if not scenario.cookies:
                return None
            return cookie_files.get(scenario.app, shared)

        if plan.warmup > 0:
            print(f"warming up each server for {plan.warmup}s ...", flush=True)
            for app in apps:
                warm = next(s for s in plan.scenarios if s.app == app)
                load(plan, running[app].port, cookies_for(warm), plan.warmup, workdir)
        for repeat in range(plan.repeats):
            for scenario in plan.scenarios:
                time.sleep(0.5)  # let write-behind batches of the previous run settle
                run = measure(plan, running[scenario.app], cookies_for(scenario), workdir)
                plan.results.setdefault(scenario.name, []).append(run)
                print(
                    f"[{repeat + 1}/{plan.repeats}] {scenario.name:24s} {run.rps:9.0f} req/s"
                    f"  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms"
                    f"  errors {run.errors}  server CPU {run.server_cpu:4.0f}%"
                    f"  load CPU {run.load_cpu:4.0f}%",
                    flush=True,
                )


def summarize(plan: Plan) -> list[dict[str, float | str]]:
    rows: list[dict[str, float | str]] = []
    for scenario in plan.scenarios:
        runs = plan.results.get(scenario.name, [])
        if not runs:
            continue
        bare = plan.results[scenario.reference]
        ratios = [run.rps / base.rps for run, base in zip(runs, bare, strict=True) if base.rps]
        rows.append(
            {
                "scenario": scenario.name,
                "reference": scenario.reference,
                "reference_rps": statistics.median(r.rps for r in bare),
                "rps": statistics.median(r.rps for r in runs),
                "ratio": statistics.median(ratios) if ratios else float("nan"),
                "ratio_min": min(ratios) if ratios else float("nan"),
                "p50": statistics.median(r.p50_ms for r in runs),
                "p99": statistics.median(r.p99_ms for r in runs),
                "errors": sum(r.errors for r in runs),
                "server_cpu": statistics.median(r.server_cpu for r in runs),
                "load_cpu": statistics.median(r.load_cpu for r in runs),
                "all_rps": " / ".join(f"{r.rps:.0f}" for r in runs),
            }
        )
    return rows


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def command_line() -> str:
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(REPO)
    return shlex.join([str(python), "-m", "benchmarks.run", *sys.argv[1:]])


def render(plan: Plan, rows: list[dict[str, float | str]], started: dt.datetime) -> str:
    generator = (
        f"wrk ({plan.wrk_threads} thread(s), Lua script rotating cookies)"
        if plan.generator == "wrk"
        else "Python asyncio raw-socket generator (benchmarks/loadgen.py)"
    )
    if plan.server_cpus:
        pinning = (
            f"server pinned to CPU {plan.server_cpus}, load generator to CPU "
            f"{plan.load_cpus} (`taskset`)"
        )
    else:
        pinning = "no CPU pinning: the load generator competes with the server for the cores"
    meaning = {s.name: s.meaning for s in plan.scenarios}
    lines = [
        START_MARK,
        "## Throughput (uvicorn, hello-world page)",
        "",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}",
        f"- command: `{command_line()}`",
        f"- load generator: {generator}; {plan.connections} keep-alive connections, "
        f"no pipelining; {plan.duration}s per run, {plan.repeats} interleaved repeats "
        f"(bare, trivial, personalized new, personalized returning, ... per repeat), "
        f"{plan.warmup}s warm-up per server; {plan.visitors} returning visitors",
        f"- {pinning}",
        "- servers: one uvicorn process per app (1 worker, `--loop uvloop --http httptools "
        "--no-access-log --log-level warning`), kept alive across all repeats so caches are "
        "warm as in production",
        "- every request sends a desktop Chrome User-Agent, Accept-Language and a same-host "
        "Referer; all but `personalized_new` also send a visitor cookie",
        "",
        "| scenario | req/s (median) | ratio to its bare (median of per-repeat) "
        "| its bare: req/s (median) | p50 ms | p99 ms "
        "| errors | server CPU | load CPU | req/s per repeat |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['scenario']} | {row['rps']:.0f} | {row['ratio']:.2f} "
            f"| {row['reference']}: {row['reference_rps']:.0f} | {row['p50']:.2f} "
            f"| {row['p99']:.2f} | {row['errors']} | {row['server_cpu']:.0f}% "
            f"| {row['load_cpu']:.0f}% | {row['all_rps']} |"
        )
    lines += ["", "Scenarios:", ""]
    lines += [f"- `{row['scenario']}`: {meaning[str(row['scenario'])]}" for row in rows]
    verdicts = (
        ("personalized_returning", "a page that reads the visitor's profile and device"),
        ("same_page_returning", "the bare app's own page, which reads nothing of the visitor"),
    )
    for scenario, page in verdicts:
        verdict = next((r for r in rows if r["scenario"] == scenario), None)
        if verdict is None:
            continue
        ratio = float(verdict["ratio"])
        status = "PASS" if ratio >= ACCEPTANCE_RATIO else "FAIL"
        lines += [
            "",
            f"Acceptance (returning anonymous visitor, SQLite store, >= {ACCEPTANCE_RATIO}x "
            f"bare in the same run; `{scenario}`: {page}): **{status}** — median ratio "
            f"{ratio:.2f} (worst repeat {float(verdict['ratio_min']):.2f}; bare served "
            f"{float(verdict['reference_rps']):.0f} req/s).",
        ]
    for row in rows:
        if row["scenario"] not in ("realistic_sqlite", "realistic_redis"):
            continue
        ratio = float(row["ratio"])
        status = "PASS" if ratio >= REALISTIC_ACCEPTANCE_RATIO else "FAIL"
        lines += [
            "",
            f"Acceptance (realistic page, `{row['scenario']}`, >= {REALISTIC_ACCEPTANCE_RATIO}x "
            f"`realistic_bare` in the same run, which served {float(row['reference_rps']):.0f} "
            f"req/s): **{status}** — median ratio {ratio:.2f} "
            f"(worst repeat {float(row['ratio_min']):.2f}).",
        ]
    redis_row = next((r for r in rows if r["scenario"] == "redis_returning"), None)
    if redis_row is not None:
        ratio = float(redis_row["ratio"])
        status = "PASS" if ratio >= REDIS_ACCEPTANCE_RATIO else "FAIL"
        lines += [
            "",
            f"Acceptance (returning visitor, Redis store, >= {REDIS_ACCEPTANCE_RATIO}x bare in "
            f"the same run): **{status}** — median ratio {ratio:.2f} "
            f"(worst repeat {float(redis_row['ratio_min']):.2f}; bare served "
            f"{float(redis_row['reference_rps']):.0f} req/s).",
        ]
    lines.append(END_MARK)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Throughput/latency harness for personalize.")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--visitors", type=int, default=1000, help="returning visitors")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load per server")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--scenarios",
        default=",".join(s.name for s in SCENARIOS),
        help="comma-separated subset (bare is always included)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args(argv)
    if not (1 <= args.duration <= 600 and 1 <= args.repeats <= 50):
        parser.error("--duration must be 1..600 and --repeats 1..50")
    if not (1 <= args.connections <= 2000 and 1 <= args.visitors <= 100_000):
        parser.error("--connections must be 1..2000 and --visitors 1..100000")
    wanted = {"bare", *(name.strip() for name in args.scenarios.split(",") if name.strip())}
    unknown = wanted - {s.name for s in SCENARIOS}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    wanted |= {s.reference for s in SCENARIOS if s.name in wanted}  # each ratio's reference

    generator = args.generator
    if generator in ("auto", "wrk"):
        if ensure_wrk(allow_install=True):
            generator = "wrk"
        elif generator == "wrk":
            parser.error("wrk is not installed and could not be installed")
        else:
            generator = "python"
    ncpu = os.cpu_count() or 1
    server_cpus = load_cpus = None
    if not args.no_pin and ncpu >= 2 and shutil.which("taskset"):
        server_cpus, load_cpus = "0", ("1" if ncpu == 2 else f"1-{ncpu - 1}")
    load_cores = max(1, ncpu - 1) if load_cpus else ncpu
    plan = Plan(
        duration=args.duration,
        repeats=args.repeats,
        connections=args.connections,
        visitors=args.visitors,
        warmup=max(0, args.warmup),
        generator=generator,
        wrk_threads=max(1, min(load_cores, args.connections)),
        server_cpus=server_cpus,
        load_cpus=load_cpus,
        scenarios=[s for s in SCENARIOS if s.name in wanted],
    )
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    started = dt.datetime.now(dt.UTC)
    print(
        f"generator: {plan.generator}; server CPUs: {server_cpus or 'any'}, "
        f"load CPUs: {load_cpus or 'any'}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="personalize-bench-") as tmp:
        try:
            execute(plan, Path(tmp))
        except HarnessError as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
    rows = summarize(plan)
    section = render(plan, rows, started)
    print()
    print(section)
    if not args.no_write:
        write_section(args.results, START_MARK, END_MARK, section)
        print(f"updated {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
