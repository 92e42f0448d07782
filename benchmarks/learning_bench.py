"""Learning benchmark: propensity learn events/s and predict latency on simulated sessions.

    .venv/bin/python -m benchmarks.learning_bench [--sessions 50000 --repeats 3]

Features are computed up front (``features_from_record``), so the figures are the model's
own cost: ``learn_one`` (which includes the prequential predict and metric updates) and
``predict_proba_one``; ``session_features`` is timed separately from a real VisitorContext
and Profile. Writes benchmarks/RESULTS.md between the ``learning`` markers (other sections
are left as they are).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from benchmarks.benchkit import write_section
from personalize.context import Clock, Device, Geo, Source, VisitorContext
from personalize.learning import PropensityModel, features_from_record, session_features, simulate
from personalize.learning.metrics import BinnedAUC
from personalize.profiles.profile import Profile, SessionRecord

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START, END = "<!-- learning:start -->", "<!-- learning:end -->"
LEARN_TARGET, PREDICT_TARGET = 10_000, 50.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _session_features_us(n: int = 20_000) -> float:
    ctx = VisitorContext(
        geo=Geo(country="GB"), device=Device(type="mobile", os="iOS"),
        source=Source(channel="paid_search"), clock=Clock(hour=20, daypart="evening"),
    )  # fmt: skip
    profile = Profile(
        key="v:1", visits=3, page_views=12, first_seen=0.0, affinities={"shoes": 4.0, "bags": 1.0},
        sessions=[SessionRecord(started=0.0, last_seen=0.0, page_views=3)],
    )  # fmt: skip
    start = time.perf_counter()
    for _ in range(n):
        session_features(ctx, profile, now=86400.0)
    return (time.perf_counter() - start) / n * 1e6


def run(sessions: int, repeats: int) -> dict[str, float]:
    train = [(features_from_record(r), bool(r["converted"])) for r in simulate(sessions, seed=1)]
    holdout = list(simulate(5000, seed=2))
    test = [features_from_record(r) for r in holdout]
    rates, model = [], PropensityModel()
    for _ in range(repeats):
        model = PropensityModel()
        start = time.perf_counter()
        for x, y in train:
            model.learn_one(x, y)
        rates.append(len(train) / (time.perf_counter() - start))
    latencies = []
    predict = model.predict_proba_one
    clock = time.perf_counter_ns
    for _ in range(repeats):
        for x in test:
            t0 = clock()
            predict(x)
            latencies.append((clock() - t0) / 1000)
    auc = BinnedAUC()
    for x, r in zip(test, holdout, strict=True):
        auc.update(bool(r["converted"]), predict(x)[True])
    return {
        "learn_per_s": statistics.median(rates),
        "learn_per_s_min": min(rates),
        "predict_p50_us": statistics.median(latencies),
        "predict_p99_us": _percentile(latencies, 0.99),
        "features_us": _session_features_us(),
        "prequential_auc": model.quality.auc,
        "holdout_auc": auc.get(),
    }


def _section(figures: dict[str, float], command: str, sessions: int, repeats: int) -> str:
    ok = figures["learn_per_s"] >= LEARN_TARGET and figures["predict_p50_us"] <= PREDICT_TARGET
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            START,
            "## Learning (propensity model, river)",
            "",
            f"- date: {now}",
            f"- machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}",
            f"- command: `{command}`",
            f"- data: `personalize simulate` sessions (seed 1), {sessions} learned per repeat, "
            f"{repeats} repeats; 5000 held-out sessions (seed 2) for latency and AUC",
            "- learn = `PropensityModel.learn_one` incl. its prequential predict + AUC/log loss "
            "update; features precomputed",
            "",
            "| figure | value | target |",
            "|---|---:|---:|",
            f"| learn events/s (median of repeats) | {figures['learn_per_s']:,.0f} "
            f"| >= {LEARN_TARGET:,} |",
            f"| learn events/s (worst repeat) | {figures['learn_per_s_min']:,.0f} | |",
            f"| predict_proba_one median | {figures['predict_p50_us']:.1f} us "
            f"| <= {PREDICT_TARGET:.0f} us |",
            f"| predict_proba_one p99 | {figures['predict_p99_us']:.1f} us | |",
            f"| session_features | {figures['features_us']:.1f} us | ~10 us |",
            f"| prequential ROC AUC after training | {figures['prequential_auc']:.3f} | |",
            f"| held-out ROC AUC | {figures['holdout_auc']:.3f} | |",
            "",
            f"Acceptance (>= {LEARN_TARGET:,} learn events/s, <= {PREDICT_TARGET:.0f} us per "
            f"prediction): **{'PASS' if ok else 'FAIL'}**",
            END,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.learning_bench")
    parser.add_argument("--sessions", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args(argv)
    figures = run(args.sessions, args.repeats)
    command = ".venv/bin/python -m benchmarks.learning_bench" + (
        f" --sessions {args.sessions} --repeats {args.repeats}"
        if (args.sessions, args.repeats) != (50_000, 3)
        else ""
    )
    section = _section(figures, command, args.sessions, args.repeats)
    print(section)
    if not args.no_write:
        write_section(RESULTS, START, END, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
