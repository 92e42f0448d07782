"""Helpers shared by the outage drill and the scale-out figures (benchmark-only).

- :class:`BenchServer`: one uvicorn process (any number of workers) serving an app of
  ``benchmarks``; stopped with SIGTERM (the lifespan flushes pending writes), SIGKILL later.
- Redis control for the local test Redis: ping, stop (``SHUTDOWN``) / pause (``SIGSTOP``),
  start again with the documented command, and an always-run :func:`ensure_redis_up`.
- :func:`write_section`: replace one marked section of ``RESULTS.md``, keep the rest.
- :func:`wrk_script`: the wrk Lua script that rotates cookies and (optionally) counts responses per
  wall-clock second, status code and "default content" (``x-bench-page-views`` <= 1).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_PORT = 6379
REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    str(REDIS_PORT),
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]
REDIS_DIR = Path("/var/lib/redis")


# -- uvicorn --------------------------------------------------------------------------------


HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent


class HarnessError(RuntimeError):
    """A harness could not do its job (a server did not start, a tool is missing)."""


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM handler that exits through ``finally`` blocks (servers get stopped)."""
    raise SystemExit(128 + signum)


def pin(cpus: str | None) -> list[str]:
    """The command prefix that pins a process to ``cpus`` (``taskset``), or nothing."""
    return ["taskset", "-c", cpus] if cpus else []


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    for _ in range(1000):  # bounded walk of the process tree
        if not todo:
            break
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(c) for c in children)
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants."""
    total = 0.0
    for p in _descendants(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class BenchServer:
    """uvicorn serving ``benchmarks.<module>:<attr>``; always stopped by :meth:`stop`."""

    def __init__(
        self,
        app: str,
        workdir: Path,
        *,
        name: str,
        workers: int = 1,
        cpus: str | None = None,
        env: dict[str, str] | None = None,
        ready_path: str = "/_bench/state",
    ) -> None:
        self.app = app
        self.name = name
        self.workers = workers
        self.cpus = cpus
        self.env = env or {}
        self.ready_path = ready_path
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{name}.log"

    def command(self) -> list[str]:
        return [
            *pin(self.cpus),
            sys.executable,
            "-m",
            "uvicorn",
            self.app,
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]

    def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, **self.env, "PYTHONPATH": str(REPO)}
        for _attempt in range(3):  # a free port can be taken between probe and bind
            self.port = free_port()
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    self.command(),
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_ready(timeout):
                return
            self.stop()
        raise HarnessError(f"{self.name}: server did not start; log:\n{self.log_tail()}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.05) + 1):
            if self.proc is None or self.proc.poll() is not None:
                return False
            with contextlib.suppress(OSError, http.client.HTTPException):
                if get_json(self.port, self.ready_path, timeout=1.0) is not None:
                    return True
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

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid) if self.pid else 0.0

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)  # graceful: the lifespan shutdown flushes the store
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: only its workers
            proc.wait(timeout=5)


def get_json(port: int, path: str, timeout: float = 2.0) -> Any:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            return None
        return json.loads(body)
    finally:
        conn.close()


def wait_drained(port: int, timeout: float = 60.0, samples: int = 1) -> dict[str, Any] | None:
    """Poll ``/_bench/state`` until ``pending`` is 0 (``samples`` times in a row, e.g. to see
    several workers); returns the last state, or None on timeout."""
    deadline = time.monotonic() + timeout
    seen = 0
    for _ in range(int(timeout / 0.1) + 1):
        with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
            state = get_json(port, "/_bench/state")
            if state is not None and state["pending"] == 0:
                seen += 1
                if seen >= samples:
                    return dict(state)
            else:
                seen = 0
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)
    return None


# -- Redis ----------------------------------------------------------------------------------


def redis_client() -> Any:
    import redis

    return redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=2)


def redis_ping() -> bool:
    try:
        done = subprocess.run(
            ["redis-cli", "-h", HOST, "-p", str(REDIS_PORT), "ping"],
            capture_output=True,
            text=True,
            timeout=3,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.stdout.strip() == "PONG"


def redis_pid() -> int | None:
    try:
        client = redis_client()
        info = client.info("server")
        client.close()
        return int(info["process_id"])
    except Exception:
        return None


def wait_redis(up: bool, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05) + 1):
        if redis_ping() == up:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return False


def start_redis() -> bool:
    """Start the local Redis with the documented command; True once it answers PING."""
    if redis_ping():
        return True
    for _attempt in range(3):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(REDIS_START, capture_output=True, timeout=10, check=False)
        if wait_redis(True, 10.0):
            return True
    return False


def ensure_redis_up(paused_pid: int | None = None) -> bool:
    """Never leave Redis stopped: resume a paused process, start a stopped one."""
    if paused_pid is not None:
        with contextlib.suppress(OSError):
            os.kill(paused_pid, signal.SIGCONT)
        if wait_redis(True, 5.0):
            return True
    return start_redis()


def delete_prefix(prefix: str) -> int:
    """Delete every key under ``prefix`` (best effort); returns how many."""
    removed = 0
    try:
        client = redis_client()
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            removed += int(client.delete(*keys[start : start + 1000]))
        client.close()
    except Exception as exc:
        print(f"note: could not clean Redis keys {prefix}*: {exc}", file=sys.stderr)
    return removed


def profile_page_views(prefix: str) -> tuple[int, int]:
    """(visitor profiles, sum of their page_views) under ``prefix``, read through the
    store, so page views still in a profile's change log count too."""
    import asyncio

    from personalize.stores.redis import RedisStore

    async def count() -> tuple[int, int]:
        store = RedisStore(REDIS_URL, prefix=prefix, invalidation=False, timeout=5.0)
        try:
            keys = [k for k in await store.keys() if k.startswith("v:")]
            total = 0
            for key in keys:
                profile = await store.get(key)
                total += profile.page_views if profile is not None else 0
            return len(keys), total
        finally:
            await store.close()

    return asyncio.run(count())


# -- RESULTS.md -----------------------------------------------------------------------------


def write_section(path: Path, start_mark: str, end_mark: str, section: str) -> None:
    """Replace only the text between the marks (inclusive) in ``path``; keep the rest."""
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    start, end = text.find(start_mark), text.find(end_mark)
    body = section.rstrip("\n")
    if start != -1 and end > start:
        text = text[:start] + body + text[end + len(end_mark) :]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text if text.endswith("\n") else text + "\n")
    tmp.replace(path)


def command_line(module: str) -> str:
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(REPO)
    return shlex.join([str(python), "-m", module, *sys.argv[1:]])


# -- wrk ------------------------------------------------------------------------------------

_WRK_ROTATE = r"""
-- Rotates the Cookie header across the lines of the file given after `--`.
local cookies = {}
local index = 0
local threads = {}
counts = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  if path ~= nil then
    for line in io.lines(path) do
      if #line > 0 then cookies[#cookies + 1] = line end
    end
  end
  if #cookies > 0 then index = math.random(0, #cookies - 1) end
end

function request()
  if #cookies == 0 then
    return wrk.format("GET", "/")
  end
  index = (index % #cookies) + 1
  -- Into wrk.headers: a headers table given to wrk.format replaces the -H headers (the
  -- User-Agent with them), and a request without one is a bot that reads no profile.
  wrk.headers["Cookie"] = cookies[index]
  return wrk.format("GET", "/")
end
"""
# wrk parses every response's headers for the script once a `response` function exists: only
# the drills that count statuses per second define it, never the throughput runs.
_WRK_COUNT = r"""
function response(status, headers, body)
  local degraded = 0
  local pv = headers["x-bench-page-views"]
  if status == 200 and pv ~= nil and tonumber(pv) <= 1 then degraded = 1 end
  local key = os.time() .. ":" .. status .. ":" .. degraded
  counts[key] = (counts[key] or 0) + 1
end
"""
_WRK_DONE = r"""
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    for key, n in pairs(c) do
      io.write("BUCKET " .. key .. " " .. n .. "\n")
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"errors":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"status_errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.connect,
    e.read, e.write, e.timeout, e.status, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


def wrk_script(*, count_responses: bool) -> str:
    """The wrk Lua script of every harness: it rotates the Cookie header across the lines of
    the file given after ``--`` and prints a ``BENCH_JSON`` summary line; with
    ``count_responses`` it also counts responses per wall-clock second, status and "default
    content" (``x-bench-page-views <= 1``) as ``BUCKET`` lines."""
    return _WRK_ROTATE + (_WRK_COUNT if count_responses else "") + _WRK_DONE


def wrk_command(
    port: int,
    script: Path,
    cookie_file: Path,
    *,
    duration: float,
    connections: int,
    threads: int,
    headers: Sequence[str],
    cpus: str | None,
    timeout: str = "5s",
) -> list[str]:
    cmd = [
        *pin(cpus),
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{int(duration)}s",
        "--timeout",
        timeout,
        "-s",
        str(script),
    ]
    for header in headers:
        cmd += ["-H", header]
    return [*cmd, f"http://{HOST}:{port}/", "--", str(cookie_file)]


def parse_wrk(stdout: str) -> tuple[dict[str, Any], dict[tuple[int, int, int], int]]:
    """(the BENCH_JSON summary, {(epoch second, status, default content): responses})."""
    summary: dict[str, Any] | None = None
    buckets: dict[tuple[int, int, int], int] = {}
    for line in stdout.splitlines():
        if line.startswith("BUCKET "):
            key, n = line.split()[1:3]
            sec, status, degraded = (int(x) for x in key.split(":"))
            buckets[(sec, status, degraded)] = buckets.get((sec, status, degraded), 0) + int(n)
        elif line.startswith("BENCH_JSON "):
            summary = json.loads(line.removeprefix("BENCH_JSON "))
    if summary is None:
        raise HarnessError(f"wrk gave no summary:\n{stdout[-2000:]}")
    return summary, buckets


@contextlib.contextmanager
def stopping(servers: Sequence[BenchServer]) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            server.stop()
