"""Instructions per request of a real uvicorn server, counted by valgrind (whole process).

    .venv/bin/python -m benchmarks.server_instructions [--apps realistic_bare,...] [--no-write]

:mod:`benchmarks.instructions` counts an app in process: requests one after another, the
profile store's batches written by the harness, no HTTP. That leaves out what a running
server does besides: uvicorn's HTTP parsing and writing, many requests in flight at once, the
write-behind's own task and timers, the decision state's reads and writes after the response,
thread hops. This harness runs the app as it is served — ``uvicorn --loop uvloop --http
httptools``, one worker — under ``valgrind --tool=callgrind``, sends ``--warm`` requests from
``--connections`` keep-alive connections (returning visitors rotating, the throughput runs'
browser headers), zeroes the counters (``callgrind_control -z``), sends ``--requests`` more,
dumps them (``callgrind_control -d``) and divides: every instruction of the server process in
that window, its threads included, the Redis server's own work not (another process).

Two things differ from a server at full speed, both said beside the figures: valgrind runs the
server some 50 times slower, so a time-based refresh (decision state older than
``state_cache_ttl``, a near-cache copy's age) comes up on more requests — the case of a site
whose visitors come back every few seconds rather than many times a second; and the content
and segment folders' change checks are switched off (as in :mod:`benchmarks.instructions`:
at valgrind's speed they would run every few requests). The figure moves by a few percent
from run to run (threads and timers interleave differently); ``--repeats`` gives the median.

Needs valgrind (with ``callgrind_control``). Writes benchmarks/RESULTS.md between the
``server-instructions`` markers unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.benchkit import command_line, free_port, redis_ping, write_section

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START, END = "<!-- server-instructions:start -->", "<!-- server-instructions:end -->"
APPS = (
    "bare",
    "personalized",
    "personalized_redis",
    "realistic_bare",
    "personalized_realistic_sqlite",
    "personalized_realistic_redis",
)
REFERENCE = {
    "personalized": "bare",
    "personalized_redis": "bare",
    "personalized_realistic_sqlite": "realistic_bare",
    "personalized_realistic_redis": "realistic_bare",
}
APP_ENV = "BENCH_SERVED_APP"


class _Served:
    """The ASGI app uvicorn serves here: the benchmark app named by ``BENCH_SERVED_APP``,
    with its folders' change checks switched off once it is built."""

    def __init__(self) -> None:
        self._app: Any = None

    def _build(self) -> Any:
        from benchmarks import apps

        app = getattr(apps, os.environ[APP_ENV])
        personalizer = getattr(app, "personalizer", None)
        if personalizer is not None:
            decisions = getattr(personalizer, "decisions", None)
            for library in (personalizer.segments, getattr(decisions, "library", None)):
                watch = getattr(library, "_watch", None)
                if watch is not None:
                    watch.interval = float("inf")
        return app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = self._build()
        await self._app(scope, receive, send)


served = _Served()


async def _load(port: int, cookies: list[str], requests: int, connections: int) -> None:
    """Send ``requests`` GETs over ``connections`` keep-alive connections, one in flight on
    each, rotating the cookies; read every response whole."""
    from benchmarks.run import ACCEPT_LANGUAGE, USER_AGENT

    heads = [
        (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: {USER_AGENT}\r\n"
            "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
            f"Accept-Language: {ACCEPT_LANGUAGE}\r\n"
            + (f"Cookie: {cookie}\r\n" if cookie else "")
            + "\r\n"
        ).encode("latin-1")
        for cookie in cookies or [""]
    ]
    turns = iter(range(requests))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for turn in turns:
                writer.write(heads[(turn * 7919) % len(heads)])
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"unexpected response: {head[:80]!r}")
                length = re.search(rb"(?im)^content-length: *(\d+)", head)
                if length is None:
                    raise RuntimeError("a response without Content-Length")
                await reader.readexactly(int(length.group(1)))
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))


def _wait_listening(port: int, server: subprocess.Popen[bytes], timeout: float) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode} before listening")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the server did not listen within {timeout:.0f} s")


def measure_once(app: str, *, visitors: int, warm: int, requests: int, connections: int) -> float:
    """Instructions per request of ``app`` served by uvicorn under callgrind (one run)."""
    from benchmarks.run import collect_cookies

    workdir = Path(tempfile.mkdtemp(prefix="personalize-srvinstr-"))
    port = free_port()
    env = dict(os.environ)
    env.update(
        BENCH_DB=str(workdir / "bench.sqlite3"),
        BENCH_PREFIX=f"pzsrvinstr:{os.getpid()}:{app}:",
        BENCH_REDIS_TIMEOUT="30",  # valgrind's slow clock must not time a batch out
        PYTHONHASHSEED="0",
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
        **{APP_ENV: app},
    )
    out = workdir / "callgrind.out"
    cmd = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "uvicorn",
        "benchmarks.server_instructions:served",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    log = (workdir / "server.log").open("wb")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, server, timeout=600)
        cookies = collect_cookies(port, visitors, time_limit=1800) if "personalized" in app else []
        asyncio.run(_load(port, cookies, warm, connections))
        time.sleep(1.0)  # the warm-up's own writes after the responses
        control = ["callgrind_control", str(server.pid)]
        subprocess.run([*control[:1], "-z", *control[1:]], check=True, capture_output=True)
        asyncio.run(_load(port, cookies, requests, connections))
        subprocess.run([*control[:1], "-d", *control[1:]], check=True, capture_output=True)
        dumps = sorted(workdir.glob("callgrind.out.*"))  # the dump asked for: out.1
        if not dumps:
            raise RuntimeError("callgrind wrote no dump")
        text = dumps[-1].read_text(errors="replace")
        found = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if found is None:
            raise RuntimeError(f"no total in {dumps[-1].name}")
        return int(found.group(1)) / requests
    finally:
        server.terminate()
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        if redis_ping():
            from benchmarks.benchkit import delete_prefix

            delete_prefix(env["BENCH_PREFIX"])
        shutil.rmtree(workdir, ignore_errors=True)


def render(rows: dict[str, list[float]], args: argparse.Namespace) -> str:
    medians = {app: statistics.median(runs) for app, runs in rows.items()}
    lines = [
        START,
        "## Instructions per request, real server (uvicorn under valgrind callgrind)",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}",
        f"- command: `{command_line('benchmarks.server_instructions')}`",
        f"- uvicorn (uvloop, httptools, 1 worker), {args.visitors} returning visitors, "
        f"{args.connections} keep-alive connections, {args.warm} requests to warm, then "
        f"{args.requests} counted; every instruction of the server process (threads "
        "included, Redis's own not); median of "
        f"{args.repeats} run(s), the runs beside it",
        "- at valgrind's speed (~50x slower) time-based refreshes (decision state older than "
        "`state_cache_ttl`) come up on more requests than at full speed; folder checks off",
        "",
        "| app | instructions per request | runs | times its reference |",
        "|---|---:|---|---:|",
    ]
    for app, runs in rows.items():
        reference = medians.get(REFERENCE.get(app, ""))
        times = f"{medians[app] / reference:.2f} ({REFERENCE[app]})" if reference else "-"
        each = ", ".join(f"{r:,.0f}" for r in runs)
        lines.append(f"| {app} | {medians[app]:,.0f} | {each} | {times} |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--apps", default=",".join(APPS), help="comma-separated subset")
    parser.add_argument("--visitors", type=int, default=200)
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("needs valgrind and callgrind_control (apt-get install valgrind)", file=sys.stderr)
        return 2
    apps = [a for a in args.apps.split(",") if a]
    unknown = [a for a in apps if a not in APPS]
    if unknown:
        parser.error(f"unknown app(s): {', '.join(unknown)}; choose from {', '.join(APPS)}")
    if any("redis" in a for a in apps) and not redis_ping():
        print("the Redis apps need a Redis at 127.0.0.1:6379", file=sys.stderr)
        return 2
    rows: dict[str, list[float]] = {}
    for app in apps:
        rows[app] = []
        for _ in range(args.repeats):
            count = measure_once(
                app,
                visitors=args.visitors,
                warm=args.warm,
                requests=args.requests,
                connections=args.connections,
            )
            rows[app].append(count)
            print(f"{app}: {count:,.0f} instructions per request", flush=True)
    text = render(rows, args)
    print(text)
    if not args.no_write:
        write_section(RESULTS, START, END, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
