"""Instructions per slot decision, counted by valgrind: the deterministic companion of
:mod:`benchmarks.decision_bench` (whose times move with the machine's load).

    .venv/bin/python -m benchmarks.decision_instructions [--visitors 100,600]

On the demo's ``content/`` and ``segments/`` and decision_bench's visitors, a child process
under ``valgrind --tool=callgrind`` builds each visitor and their attributes, then decides the
four slots: ``none`` (no decision: the visitors alone), ``new`` (first decisions), ``again``
(first decisions, then the same four twice more: later pages of the session, as decision_bench's
``cached``). Each is run with the two visitor counts; the difference, per slot, less the
visitors' own cost, gives ``new`` and ``repeat`` = (``again`` - ``new``) / 2. Needs valgrind.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.decision_bench import SLOTS, _engine, _visitors

ROOT = Path(__file__).resolve().parent.parent


def _child(mode: str, visitors: int) -> None:
    engine = _engine()
    for visitor in _visitors(visitors, seed=200):
        visitor.attributes  # noqa: B018 - the page builds them anyway
        rounds = {"none": 0, "new": 1, "again": 3}[mode]
        for _ in range(rounds):
            for slot in SLOTS:
                engine.decide_sync(visitor, slot)


def _count(mode: str, visitors: int) -> int:
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
           "-m", "benchmarks.decision_instructions", "--child", mode, str(visitors)]  # fmt: skip
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=str(ROOT))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"valgrind run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--visitors", default="100,600", help="the two visitor counts")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return 0
    small, large = (int(n) for n in args.visitors.split(","))
    per: dict[str, float] = {}
    for mode in ("none", "new", "again"):
        per[mode] = (_count(mode, large) - _count(mode, small)) / (large - small) / len(SLOTS)
    new = per["new"] - per["none"]
    repeat = (per["again"] - per["new"]) / 2
    print(f"new decision: {new:,.0f} instructions per slot")
    print(f"repeat in the session: {repeat:,.0f} instructions per slot")
    print(f"(the visitor and their attributes: {per['none'] * len(SLOTS):,.0f} per visitor)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
