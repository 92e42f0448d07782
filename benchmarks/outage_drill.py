"""Outage drill: stop Redis for 10 s under wrk load and start it again.

    .venv/bin/python -m benchmarks.outage_drill [--modes restart,pause --duration 40]

For each mode: one uvicorn worker serves ``benchmarks.drill_app:app`` (PersonalizeMiddleware +
RedisStore); ``--visitors`` returning visitors get a cookie (and a stored profile); wrk loads
the server for ``--duration`` seconds, rotating across their cookies and counting responses
per second and status; at ``--stop-at`` Redis goes away and at ``--start-at`` it comes back:

- ``restart``: ``redis-cli shutdown save`` and the documented ``redis-server`` command (the
  test Redis keeps nothing on disk; ``SAVE`` on the way down stands in for the persistence or
  replica a production Redis has, so the drill measures the middleware, not a data wipe);
  the ``dump.rdb`` is removed again afterwards.
- ``pause``: ``SIGSTOP`` / ``SIGCONT`` of redis-server: Redis hangs (connections open but no
  answer), as on a network partition or a long fork: every call runs into its timeout.

A poller asks the server's ``/_bench/state`` (pending write buffer, written / failed /
dropped) and requests a page as a probe visitor every 100 ms. Reported: responses by status,
requests per second around the outage, the time to recover (Redis back -> write buffer
empty and stored profiles read again), and lost updates: successful page responses counted
by the load generator and the probe versus the growth of the sum of ``page_views`` over the
visitors' profiles in Redis. Writes to ``RESULTS.md`` between the ``outage`` markers.

Redis is always brought back (``finally``) and checked with PING at the end; the keys under
the drill's prefix are deleted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
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

START_MARK = "<!-- outage:start -->"
END_MARK = "<!-- outage:end -->"
MODES = ("restart", "pause")


@dataclass
class Sample:
    t: float  # seconds since the load started
    pending: int | None
    stats: dict[str, int]
    circuit_open: bool | None
    listening: bool | None
    probe_status: int | None  # the probe visitor's page: status (None: no answer)
    probe_page_views: int | None  # 1: default content (stored profile not read)


@dataclass
class Drill:
    mode: str
    t0: float = 0.0  # epoch seconds when wrk started
    stopped_at: float | None = None  # seconds since t0
    back_at: float | None = None  # Redis answered PING again
    summary: dict[str, Any] = field(default_factory=dict)
    buckets: dict[tuple[int, int, int], int] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    probe_ok: int = 0  # the probe's 200 page responses (each a page view)
    probe_statuses: dict[int, int] = field(default_factory=dict)
    baseline: tuple[int, int] = (0, 0)
    final: tuple[int, int] = (0, 0)
    drained_after: float | None = None  # seconds after the load until the buffer was empty
    final_state: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Poller(threading.Thread):
    """Every ``interval``: ``/_bench/state`` and one page as a probe visitor (bounded)."""

    def __init__(self, port: int, cookies: list[str], drill: Drill, limit: float) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.cookies = cookies
        self.drill = drill
        self.limit = limit
        self.stop_event = threading.Event()
        self.headers = dict(h.split(": ", 1) for h in base_headers(port))

    def run(self) -> None:
        deadline = time.monotonic() + self.limit
        for i in range(int(self.limit / 0.1) + 1):
            if self.stop_event.is_set() or time.monotonic() > deadline:
                return
            state: Any = None
            with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                state = benchkit.get_json(self.port, "/_bench/state", timeout=2.0)
            status, page_views = self.probe(self.cookies[i % len(self.cookies)])
            self.drill.samples.append(
                Sample(
                    t=time.time() - self.drill.t0,
                    pending=None if state is None else state["pending"],
                    stats={} if state is None else state["stats"],
                    circuit_open=None if state is None else state["circuit_open"],
                    listening=None if state is None else state["listening"],
                    probe_status=status,
                    probe_page_views=page_views,
                )
            )
            self.stop_event.wait(0.1)

    def probe(self, cookie: str) -> tuple[int | None, int | None]:
        conn = http.client.HTTPConnection(benchkit.HOST, self.port, timeout=5)
        try:
            conn.request("GET", "/", headers={**self.headers, "Cookie": cookie})
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            return None, None
        finally:
            conn.close()
        statuses = self.drill.probe_statuses
        statuses[response.status] = statuses.get(response.status, 0) + 1
        if response.status == 200:
            self.drill.probe_ok += 1
        value = response.getheader("x-bench-page-views")
        return response.status, None if value is None else int(value)


def stop_redis(mode: str) -> int | None:
    """Take Redis away; returns the paused pid for ``pause``."""
    if mode == "pause":
        pid = benchkit.redis_pid()
        if pid is None:
            raise benchkit.HarnessError("could not find the redis-server pid")
        os.kill(pid, signal.SIGSTOP)
        return pid
    subprocess.run(
        ["redis-cli", "-h", benchkit.HOST, "-p", str(benchkit.REDIS_PORT), "shutdown", "save"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    if not benchkit.wait_redis(False, 5.0):
        raise benchkit.HarnessError("Redis did not stop")
    return None


def start_redis(mode: str, paused: int | None) -> bool:
    if mode == "pause" and paused is not None:
        os.kill(paused, signal.SIGCONT)
        return benchkit.wait_redis(True, 5.0)
    return benchkit.start_redis()


def run_mode(args: argparse.Namespace, mode: str, workdir: Path) -> Drill:
    drill = Drill(mode)
    prefix = f"pzdrill:{os.getpid()}:{mode}:"
    server = benchkit.BenchServer(
        "benchmarks.drill_app:app",
        workdir,
        name=f"drill-{mode}",
        cpus=args.server_cpus,
        env={"BENCH_PREFIX": prefix},
    )
    paused: int | None = None
    rdb = benchkit.REDIS_DIR / "dump.rdb"
    rdb_existed = rdb.exists()
    try:
        server.start()
        print(f"[{mode}] collecting {args.visitors} + 20 visitor cookies ...", flush=True)
        cookies = collect_cookies(server.port, args.visitors + 20)
        load_cookies, probe_cookies = cookies[:-20], cookies[-20:]
        cookie_file = workdir / f"{mode}.cookies"
        cookie_file.write_text("\n".join(load_cookies))
        script = workdir / "status.lua"
        script.write_text(benchkit.wrk_script(count_responses=True))
        headers = base_headers(server.port)

        def wrk(duration: float) -> subprocess.Popen[str]:
            cmd = benchkit.wrk_command(
                server.port,
                script,
                cookie_file,
                duration=duration,
                connections=args.connections,
                threads=1,
                headers=headers,
                cpus=args.load_cpus,
            )
            return subprocess.Popen(cmd, cwd=benchkit.REPO, stdout=subprocess.PIPE, text=True)

        print(f"[{mode}] warming up for {args.warmup}s ...", flush=True)
        warm = wrk(args.warmup)
        warm.communicate(timeout=args.warmup + 60)
        if benchkit.wait_drained(server.port, timeout=30) is None:
            raise benchkit.HarnessError("the write buffer did not drain after the warm-up")
        drill.baseline = benchkit.profile_page_views(prefix)
        if drill.baseline[0] != args.visitors + 20:
            drill.notes.append(
                f"{drill.baseline[0]} profiles before the load (expected {args.visitors + 20})"
            )

        print(
            f"[{mode}] load {args.duration}s; Redis away at t={args.stop_at}s, "
            f"back at t={args.start_at}s",
            flush=True,
        )
        drill.t0 = time.time()
        load = wrk(args.duration)
        poller = Poller(server.port, probe_cookies, drill, limit=args.duration + 5)
        poller.start()
        try:
            time.sleep(max(0.0, drill.t0 + args.stop_at - time.time()))
            drill.stopped_at = time.time() - drill.t0
            paused = stop_redis(mode)
            print(f"[{mode}] t={drill.stopped_at:.1f}s Redis {mode}d away", flush=True)
            time.sleep(max(0.0, drill.t0 + args.start_at - time.time()))
            if not start_redis(mode, paused):
                raise benchkit.HarnessError("Redis did not come back")
            paused = None
            drill.back_at = time.time() - drill.t0
            print(f"[{mode}] t={drill.back_at:.1f}s Redis answers PING again", flush=True)
            out, _ = load.communicate(timeout=args.duration + 60)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait(timeout=5)
            poller.stop_event.set()
            poller.join(timeout=10)
        drill.summary, drill.buckets = benchkit.parse_wrk(out)
        end = time.monotonic()
        state = benchkit.wait_drained(server.port, timeout=60)
        drill.drained_after = None if state is None else time.monotonic() - end
        drill.final_state = state or {}
        if not server.alive():
            raise benchkit.HarnessError(f"server died; log:\n{server.log_tail()}")
        drill.final = benchkit.profile_page_views(prefix)
        return drill
    finally:
        if paused is not None or not benchkit.redis_ping():
            benchkit.ensure_redis_up(paused)
        server.stop()
        if not rdb_existed:
            with contextlib.suppress(OSError):
                rdb.unlink()  # the test Redis keeps nothing on disk
        benchkit.delete_prefix(prefix)
        log_lines = (
            server.log.read_text(errors="replace").splitlines() if server.log.exists() else []
        )
        drill.notes += [f"server log: {line}" for line in _log_digest(log_lines)]


def _log_digest(lines: list[str]) -> list[str]:
    """Count the server's log lines by their first words (the full log is long)."""
    counts: dict[str, int] = {}
    for line in lines:
        head = line.split("(", 1)[0].split(";", 1)[0].strip()[:90]
        if head:
            counts[head] = counts.get(head, 0) + 1
    return [f"{n} x `{head}`" for head, n in sorted(counts.items(), key=lambda kv: -kv[1])[:8]]


# -- analysis -------------------------------------------------------------------------------


def per_second(drill: Drill) -> list[tuple[int, int, int, int, int]]:
    """(second since start, 2xx, 5xx, other, default content) per second of the load."""
    start = int(drill.t0)
    rows: dict[int, list[int]] = {}
    for (sec, status, degraded), n in drill.buckets.items():
        row = rows.setdefault(sec - start, [0, 0, 0, 0])
        if 200 <= status < 300:
            row[0] += n
        elif status >= 500:
            row[1] += n
        else:
            row[2] += n
        row[3] += n * degraded
    return [(s, *rows[s]) for s in sorted(rows)]  # type: ignore[misc]


def statuses(drill: Drill) -> dict[int, int]:
    out: dict[int, int] = {}
    for (_sec, status, _degraded), n in drill.buckets.items():
        out[status] = out.get(status, 0) + n
    return out


def recovery(drill: Drill) -> dict[str, float | None]:
    """Seconds from Redis answering PING again until writes / reads work again.

    Under load the write-behind buffer is never empty (a batch is always in flight), so
    writes count as recovered at the first sample whose buffer is back to the level seen
    before the outage and after which no write fails any more."""
    back = drill.back_at or 0.0
    stop = drill.stopped_at or 0.0
    before = [s.pending for s in drill.samples if 1.0 <= s.t < stop and s.pending is not None]
    steady = max(before, default=0)
    after = [s for s in drill.samples if s.t >= back]
    last_failed = max((s.stats.get("failed", 0) for s in after), default=0)
    writes = None
    for s in after:
        if (
            s.pending is not None
            and s.pending <= steady
            and s.stats.get("failed", 0) == last_failed
        ):
            writes = s.t - back
            break
    reads = None
    for i, s in enumerate(after):
        rest = after[i:]
        if all(x.probe_status == 200 and (x.probe_page_views or 0) > 1 for x in rest):
            reads = s.t - back
            break
    peak = max((s.pending or 0 for s in drill.samples), default=0)
    return {"writes": writes, "reads": reads, "peak_pending": float(peak), "steady": float(steady)}


def analyse(drill: Drill) -> dict[str, Any]:
    counts = statuses(drill)
    ok = sum(n for status, n in counts.items() if 200 <= status < 300)
    sent = ok + drill.probe_ok
    stored = drill.final[1] - drill.baseline[1]
    rec = recovery(drill)
    stats = drill.final_state.get("stats", {})
    socket_errors = sum(int(drill.summary.get(k, 0)) for k in ("connect", "read", "write"))
    return {
        "statuses": counts,
        "ok": ok,
        "server_errors": sum(n for status, n in counts.items() if status >= 500)
        + sum(n for status, n in drill.probe_statuses.items() if status >= 500),
        "socket_errors": socket_errors,
        "timeouts": int(drill.summary.get("timeout", 0)),
        "sent": sent,
        "stored": stored,
        "lost": max(0, sent - stored),
        "extra": max(0, stored - sent),
        "recovery": rec,
        "stats": stats,
        "default_during": sum(r[4] for r in per_second(drill)),
    }


def _fmt(value: float | None, unit: str = " s") -> str:
    return "not within the run" if value is None else f"{value:.1f}{unit}"


def render(args: argparse.Namespace, drills: list[Drill], started: dt.datetime) -> str:
    pinning = (
        f"server pinned to CPU {args.server_cpus}, wrk to CPU {args.load_cpus}; Redis unpinned"
        if args.server_cpus
        else "no CPU pinning"
    )
    lines = [
        START_MARK,
        "## Outage drill (Redis away for 10 s under load)",
        "",
        f"- date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {os.cpu_count()} CPUs (nproc), {cpu_model()}, "
        f"Python {platform.python_version()}",
        f"- command: `{benchkit.command_line('benchmarks.outage_drill')}`",
        f"- server: `benchmarks.drill_app:app` (PersonalizeMiddleware + RedisStore, defaults: "
        f"0.5 s timeout, 1 s circuit breaker, write buffer bound 100,000 changes), 1 uvicorn "
        f"worker (uvloop, httptools); {pinning}",
        f"- load: wrk, 1 thread, {args.connections} connections, {args.duration} s, rotating "
        f"across {args.visitors} returning visitors' cookies (each with a stored profile); a "
        f"probe visitor and `/_bench/state` polled every 100 ms; Redis taken away at "
        f"t={args.stop_at} s and brought back at t={args.start_at} s",
        "- modes: `restart` = `redis-cli shutdown save`, then the documented `redis-server` "
        "command (the test Redis keeps nothing on disk; the save stands in for production "
        "persistence so the drill measures the middleware, not a data wipe); `pause` = "
        "`SIGSTOP`/`SIGCONT` of redis-server (a hung Redis: every call runs into its timeout)",
        "- recovery: from Redis answering PING again until the write buffer is back to its "
        "level before the outage with no failed write after (writes; under load a batch is "
        "always in flight, so it is never 0), and until every probe page shows the stored "
        "profile (reads)",
        "- lost updates: page responses with status 200 (wrk + probe, each records a page "
        "view) minus the growth of the sum of `page_views` over the visitors' profiles in "
        "Redis after the buffer drained; `extra` (stored beyond the counted responses) is "
        "at most one request per wrk connection: the ones in flight when wrk's time is up, "
        "which the server serves and records but wrk no longer counts",
        "",
        "| mode | responses by status | 5xx | socket errors / timeouts | req/s before / "
        "during / after | default-content pages | recovery: writes / reads | buffered: "
        "before / peak / drained after load "
        "| page views sent / stored / lost | written / failed / dropped |",
        "|---|---|---:|---:|---|---:|---|---:|---|---|",
    ]
    verdicts = []
    for drill in drills:
        a = analyse(drill)
        rows = per_second(drill)
        stop, back = drill.stopped_at or 0.0, drill.back_at or 0.0

        def rate(lo: float, hi: float, rows: list[tuple[int, int, int, int, int]] = rows) -> str:
            sel = [r[1] + r[2] + r[3] for r in rows if lo <= r[0] and r[0] + 1 <= hi]
            return f"{sum(sel) / len(sel):.0f}" if sel else "-"

        status_text = ", ".join(f"{k}: {v}" for k, v in sorted(a["statuses"].items()))
        extra = f" (+{a['extra']} extra)" if a["extra"] else ""
        drained = _fmt(drill.drained_after)
        rec = a["recovery"]
        stats = a["stats"]
        lines.append(
            f"| {drill.mode} | {status_text} | {a['server_errors']} "
            f"| {a['socket_errors']} / {a['timeouts']} "
            f"| {rate(0, stop)} / {rate(stop, back)} / {rate(back + 1, args.duration)} "
            f"| {a['default_during']} | {_fmt(rec['writes'])} / {_fmt(rec['reads'])} "
            f"| {rec['steady']:.0f} / {rec['peak_pending']:.0f} / {drained} "
            f"| {a['sent']} / {a['stored']} / {a['lost']}"
            f"{extra} "
            f"| {stats.get('written', '?')} / {stats.get('failed', '?')} "
            f"/ {stats.get('dropped', '?')} |"
        )
        ok = a["server_errors"] == 0 and a["lost"] == 0 and stats.get("dropped", 1) == 0
        verdicts.append(f"`{drill.mode}`: **{'PASS' if ok else 'FAIL'}**")
    lines += [
        "",
        "Acceptance (no 5xx; no page view lost; nothing dropped from the bounded buffer): "
        + ", ".join(verdicts)
        + ".",
    ]
    for drill in drills:
        rows = per_second(drill)
        lines += [
            "",
            f"Per second, `{drill.mode}` (Redis away at t={drill.stopped_at:.1f} s, PING again "
            f"at t={drill.back_at:.1f} s; `pending` = the server's write buffer at the end of "
            f"the second; `default` = pages served without the stored profile):",
            "",
            "| t (s) | 2xx | 5xx | other | default | pending | circuit open |",
            "|---:|---:|---:|---:|---:|---:|---|",
        ]
        for sec, ok2, err5, other, degraded in rows:
            inside = [s for s in drill.samples if sec <= s.t < sec + 1]
            last = inside[-1] if inside else None
            pending = "-" if last is None or last.pending is None else str(last.pending)
            circuit = "-" if not inside else ("yes" if any(s.circuit_open for s in inside) else "")
            lines.append(
                f"| {sec} | {ok2} | {err5} | {other} | {degraded} | {pending} | {circuit} |"
            )
        if drill.notes:
            lines += ["", f"Notes (`{drill.mode}`):", ""] + [f"- {n}" for n in drill.notes]
    lines.append(END_MARK)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Redis outage drill under wrk load.")
    parser.add_argument("--modes", default=",".join(MODES), help="restart, pause or both")
    parser.add_argument("--duration", type=int, default=40, help="seconds of load")
    parser.add_argument("--stop-at", type=float, default=10.0)
    parser.add_argument("--start-at", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--visitors", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes takes {', '.join(MODES)}")
    if not (10 <= args.duration <= 300 and 0 < args.stop_at < args.start_at < args.duration):
        parser.error("need 10 <= --duration <= 300 and 0 < --stop-at < --start-at < --duration")
    if args.start_at - args.stop_at > 60:
        parser.error("Redis stays away at most 60 s")
    if not (1 <= args.connections <= 1000 and 1 <= args.visitors <= 20_000):
        parser.error("--connections 1..1000, --visitors 1..20000")
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
    drills: list[Drill] = []
    try:
        with tempfile.TemporaryDirectory(prefix="personalize-drill-") as tmp:
            for mode in modes:
                drills.append(run_mode(args, mode, Path(tmp)))
                time.sleep(2)  # let the next mode start from a settled Redis
    except benchkit.HarnessError as exc:
        print(f"outage drill failed: {exc}", file=sys.stderr)
        return 1
    finally:
        up = benchkit.ensure_redis_up()
        print(f"Redis PING at the end: {'PONG' if up else 'NO ANSWER'}", flush=True)
    section = render(args, drills, started)
    print()
    print(section)
    if not args.no_write:
        benchkit.write_section(args.results, START_MARK, END_MARK, section)
        print(f"updated {args.results}")
    bad = [d for d in drills if analyse(d)["server_errors"]]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
