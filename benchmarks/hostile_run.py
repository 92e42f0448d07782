"""The long hostile-input run: >= 100,000 generated cases against the middleware and loaders.

Runs ``tests/test_hostile.py`` under pytest with ``HYPOTHESIS_PROFILE=hostile`` (in two
processes on two groups of tests when the machine has two or more cores), reads the counts the
tests write to ``$HOSTILE_STATS`` and writes the ``hostile`` section of ``RESULTS.md`` (between
``<!-- hostile:start -->`` and ``<!-- hostile:end -->``; other sections are kept).

    .venv/bin/python -m benchmarks.hostile_run                  # >= 100,000 cases
    .venv/bin/python -m benchmarks.hostile_run --cases 5000 --no-write   # a quick look

The tests' weights (``sized(...)`` in tests/test_hostile.py) share ``--cases`` out; each test
runs ``weight x base`` hypothesis examples. In the long profile a problem is counted and the run
goes on (no shrinking), so the figures cover every case; pytest still fails at the end when any
count is not 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.benchkit import write_section

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START, END = "<!-- hostile:start -->", "<!-- hostile:end -->"
# Two groups of about equal weight (the weights of the tests in tests/test_hostile.py).
_A = "headers_cookies_and_queries or slots_and_collect or me_pages or segment_files"
_A += " or identity_sequences"
GROUPS = {"a": (_A, 7.0), "b": (f"not ({_A})", 6.0)}
COUNTS: tuple[str, ...] = ("cases", "requests", "server_errors", "exceptions", "incomplete")
COUNTS += ("cache_violations", "ip_leaks", "identity_leaks", "non_browsers_remembered")
COUNTS += ("unavailable",)


def _pytest(group: str, base: int, stats: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        HYPOTHESIS_PROFILE="hostile",
        HOSTILE_EXAMPLES=str(base),
        HOSTILE_STATS=str(stats),
        PYTHONHASHSEED="0",
    )
    cmd = [sys.executable, "-m", "pytest", "tests/test_hostile.py", "-q", "-p", "no:cacheprovider"]
    cmd += ["-k", GROUPS[group][0], "-o", "markers=hostile: hostile-input tests"]
    cmd += ["--timeout", "0"]  # one long test per process: no per-test limit
    with log.open("wb") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _merge(parts: list[dict[str, object]]) -> dict[str, object]:
    total: dict[str, object] = {k: sum(int(p.get(k, 0)) for p in parts) for k in COUNTS}  # type: ignore[call-overload]
    for name in ("per_test", "statuses", "failures"):
        merged: dict[str, int] = {}
        for p in parts:
            for key, value in dict(p.get(name, {})).items():  # type: ignore[call-overload]
                merged[key] = merged.get(key, 0) + int(value)
        total[name] = dict(sorted(merged.items()))
    examples: dict[str, str] = {}
    for p in parts:
        examples.update(dict(p.get("examples", {})))  # type: ignore[call-overload]
    total["examples"] = examples
    return total


def _section(total: dict[str, object], command: str, seconds: float, rcs: list[int]) -> str:
    per_test = dict(total["per_test"])  # type: ignore[call-overload]
    statuses = dict(total["statuses"])  # type: ignore[call-overload]
    failures = dict(total["failures"])  # type: ignore[call-overload]
    ok = (
        int(total["cases"]) >= 100_000  # type: ignore[call-overload]
        and not failures
        and int(total["server_errors"]) == 0  # type: ignore[call-overload]
        and int(total["exceptions"]) == 0  # type: ignore[call-overload]
    )
    lines = [
        START,
        "## Hostile input (property-based, hypothesis)",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}",
        f"- command: `{command}`",
        "- what: `tests/test_hostile.py` with `HYPOTHESIS_PROFILE=hostile` (no shrinking; every "
        "problem counted, the run goes on): cookies, every header the middleware reads, query "
        "strings, paths, methods, bodies, the events API (also on an SQLite store that "
        "compacts every write: ids with lone surrogates, numbers that overflow), /slots and "
        "/collect, /me, login and erasure while the store is unreachable, the editor UI "
        "with real credentials and tokens, sequences of logins, logouts, erasures, planted "
        "and copied cookies and events, and editor YAML through SegmentLibrary, "
        "ContentLibrary, validate_content and `personalize check`",
        f"- duration: {seconds / 60:.1f} min ({len(rcs)} pytest process(es), exit codes "
        f"{', '.join(map(str, rcs))})",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| generated cases | {int(total['cases']):,} |",  # type: ignore[call-overload]
        f"| ASGI requests | {int(total['requests']):,} |",  # type: ignore[call-overload]
        f"| 5xx responses | {total['server_errors']} |",
        f"| exceptions escaping the middleware or a loader | {total['exceptions']} |",
        f"| incomplete responses | {total['incomplete']} |",
        f"| personalized responses not private | {total['cache_violations']} |",
        f"| client IPs found in the store | {total['ip_leaks']} |",
        f"| stale cookies that wrote into a known profile, erasures that left a link | "
        f"{total.get('identity_leaks', 0)} |",
        f"| non-browsers given a cookie or a profile | {total['non_browsers_remembered']} |",
        f"| 503 + Retry-After while the store is unreachable (expected) | {total['unavailable']} |",
        "",
        "Cases per test: "
        + ", ".join(f"{name} {count:,}" for name, count in sorted(per_test.items()))
        + ".",
        "",
        "Statuses: " + ", ".join(f"{code}: {n:,}" for code, n in sorted(statuses.items())) + ".",
        "",
    ]
    if failures:
        lines += ["Distinct problems (count):", ""]
        lines += [f"- `{problem}` ({count})" for problem, count in failures.items()]
        lines.append("")
    verdict = "PASS" if ok else "FAIL"
    lines.append(
        f"Acceptance (>= 100,000 generated cases, 0 server errors, 0 escaping exceptions): "
        f"**{verdict}**"
    )
    lines.append(END)  # the marks stay: the next run replaces this section, not appends one
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=105_000, help="generated cases to aim for")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(argv)
    weight = sum(w for _, w in GROUPS.values())
    base = max(1, math.ceil(args.cases / weight))
    command = "python -m benchmarks.hostile_run" + (
        f" --cases {args.cases}" if args.cases != 105_000 else ""
    )
    workdir = Path(tempfile.mkdtemp(prefix="hostile-run-"))
    started = time.monotonic()
    print(f"hostile run: {base} examples per unit of weight, logs in {workdir}", flush=True)
    groups = list(GROUPS)
    rcs: list[int] = []
    stats = [workdir / f"{g}.json" for g in groups]
    batches = [groups] if args.jobs >= 2 else [[g] for g in groups]
    for batch in batches:
        procs = [_pytest(g, base, workdir / f"{g}.json", workdir / f"{g}.log") for g in batch]
        rcs += [p.wait() for p in procs]
    seconds = time.monotonic() - started
    parts = [json.loads(p.read_text()) for p in stats if p.exists()]
    if len(parts) != len(groups):
        print(f"hostile run: a pytest process wrote no counts; see {workdir}", file=sys.stderr)
        return 2
    total = _merge(parts)
    (workdir / "total.json").write_text(json.dumps(total, indent=2))
    section = _section(total, ".venv/bin/" + command.replace("python", "python", 1), seconds, rcs)
    print(section)
    for problem, example in dict(total["examples"]).items():  # type: ignore[call-overload]
        print(f"first input for {problem}:\n  {example[:600]}\n")
    if not args.no_write:
        write_section(RESULTS, START, END, section)
        print(f"wrote the hostile section of {RESULTS}")
    return 0 if all(rc == 0 for rc in rcs) else 1


if __name__ == "__main__":
    sys.exit(main())
