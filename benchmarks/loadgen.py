"""Fallback HTTP/1.1 load generator (used when ``wrk`` is not installed).

Raw asyncio sockets (uvloop when available), ``--connections`` keep-alive connections, one
request in flight per connection (no pipelining), per-request latency measured from write to
last body byte. Requests rotate across the lines of ``--cookies`` (one Cookie header value per
line). Prints one JSON line: requests, duration_us, errors, status_errors, p50/p90/p99/max_us.

    python -m benchmarks.loadgen --port 8000 --duration 5 --connections 50 \
        --header "User-Agent: ..." --cookies cookies.txt
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

HOST = "127.0.0.1"
MAX_REQUESTS_PER_CONNECTION = 50_000_000  # a bound; the deadline ends runs long before
MAX_HEAD = 65536


@dataclass
class Tally:
    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0
    status_errors: int = 0


def build_requests(port: int, headers: list[str], cookies: list[str], path: str) -> list[bytes]:
    base = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}", *headers]
    if not cookies:
        return [("\r\n".join(base) + "\r\n\r\n").encode("latin-1")]
    return [
        ("\r\n".join([*base, f"Cookie: {cookie}"]) + "\r\n\r\n").encode("latin-1")
        for cookie in cookies
    ]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, keep_alive) after reading one whole Content-Length response."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEAD:
        raise ValueError("response head too large")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    keep_alive = True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value.strip())
        elif lname == b"connection" and value.strip().lower() == b"close":
            keep_alive = False
        elif lname == b"transfer-encoding":
            raise ValueError("chunked responses are not supported by this load generator")
    if length:
        await reader.readexactly(length)
    return status, keep_alive


async def _connection(
    port: int, requests: list[bytes], offset: int, deadline: float, tally: Tally
) -> None:
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    index = offset
    clock = time.perf_counter_ns
    deadline_ns = int(deadline * 1e9)
    try:
        for _ in range(MAX_REQUESTS_PER_CONNECTION):
            if clock() >= deadline_ns:
                break
            if writer is None or reader is None:
                try:
                    reader, writer = await asyncio.open_connection(HOST, port)
                except OSError:
                    tally.errors += 1
                    await asyncio.sleep(0.01)
                    continue
            request = requests[index % len(requests)]
            index += 1
            start = clock()
            try:
                writer.write(request)
                status, keep_alive = await _read_response(reader)
            except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                tally.errors += 1
                writer.close()
                writer = reader = None
                continue
            tally.latencies_ns.append(clock() - start)
            if not 200 <= status < 400:
                tally.status_errors += 1
            if not keep_alive:
                writer.close()
                writer = reader = None
    finally:
        if writer is not None:
            writer.close()


def _percentile(sorted_values: list[int], q: float) -> int:
    if not sorted_values:
        return 0
    rank = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[rank]


async def run_load(
    port: int, duration: float, connections: int, requests: list[bytes]
) -> dict[str, float]:
    tally = Tally()
    started = time.perf_counter()
    deadline = started + duration
    step = max(1, len(requests) // max(1, connections))
    tasks = [_connection(port, requests, i * step, deadline, tally) for i in range(connections)]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(duration + 15):  # a stuck server cannot hang the run
            await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    lat = sorted(tally.latencies_ns)
    return {
        "requests": len(lat),
        "duration_us": elapsed * 1e6,
        "errors": tally.errors,
        "status_errors": tally.status_errors,
        "p50_us": _percentile(lat, 50) / 1000,
        "p90_us": _percentile(lat, 90) / 1000,
        "p99_us": _percentile(lat, 99) / 1000,
        "max_us": (lat[-1] if lat else 0) / 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--cookies", help="file with one Cookie header value per line")
    args = parser.parse_args(argv)
    cookies: list[str] = []
    if args.cookies:
        with open(args.cookies, encoding="latin-1") as fh:
            cookies = [line.strip() for line in fh if line.strip()]
    requests = build_requests(args.port, args.header, cookies, args.path)
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(run_load(args.port, args.duration, args.connections, requests))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
