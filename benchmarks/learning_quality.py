"""Learning quality: what the models find, at decision time, in traffic with known ground truth,
and what the propensity defaults reach on a real public stream of shop sessions.

    .venv/bin/python -m benchmarks.learning_quality [--uci PATH/online_shoppers_intention.csv]

1. ``personalize simulate -n 30000 --seed 1 --lift 4`` (four personas; paid search on a phone
   in the evening converts 4x), replayed as ``personalize evaluate --cluster-names
   benchmarks/sim_clusters.yaml`` does: decision-time and end-of-session ROC AUC, the AUC with
   which the landing page's propensity picks out the planted sessions (target >= 0.85), and the
   persona purity of each named cluster (target >= 0.8 for every one, not on average), over
   the last 10,000 sessions.
2. With ``--uci``: the UCI "Online Shoppers Purchasing Intention" data set (12,330 sessions,
   Sakar et al. 2018, CC BY 4.0; not shipped here), replayed prequentially in file order
   through ``PropensityModel()`` and the same model with hand-picked ``log1p`` and with none.

Writes benchmarks/RESULTS.md between the ``learning-quality`` markers.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.benchkit import write_section
from personalize.learning.commands import report
from personalize.learning.evaluate import evaluate
from personalize.learning.propensity import PropensityModel
from personalize.learning.simulate import simulate
from personalize.rules.clusternames import load_cluster_names

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
NAMES = HERE / "sim_clusters.yaml"
START, END = "<!-- learning-quality:start -->", "<!-- learning-quality:end -->"
PLANTED_TARGET, PURITY_TARGET = 0.85, 0.8

UCI_NUMBERS = (
    "Administrative", "Administrative_Duration", "Informational", "Informational_Duration",
    "ProductRelated", "ProductRelated_Duration", "BounceRates", "ExitRates", "PageValues",
    "SpecialDay",
)  # fmt: skip
UCI_CATEGORIES = ("Month", "OperatingSystems", "Browser", "Region", "TrafficType", "VisitorType")
#: What a person tuning by hand would log-scale: the counts, the durations and the page values.
HAND_LOG1P = tuple(k for k in UCI_NUMBERS if k not in ("BounceRates", "ExitRates", "SpecialDay"))


def uci_sessions(path: Path) -> Iterator[tuple[dict[str, Any], bool]]:
    """(features, purchased) per row, in file order; numbers raw, as the file has them."""
    with path.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            x: dict[str, Any] = {k: float(row[k]) for k in UCI_NUMBERS}
            x.update({k: row[k] for k in UCI_CATEGORIES})
            x["Weekend"] = 1.0 if row["Weekend"] == "TRUE" else 0.0
            yield x, row["Revenue"] == "TRUE"


def uci(path: Path) -> dict[str, float]:
    """Prequential ROC AUC of the default model and two hand-set variants."""
    data = list(uci_sessions(path))
    out = {"sessions": float(len(data)), "positives": float(sum(y for _, y in data))}
    for name, model in (
        ("default", PropensityModel()),
        ("hand", PropensityModel(log1p=HAND_LOG1P)),
        ("none", PropensityModel(log1p=())),
    ):
        for x, y in data:
            model.learn_one(x, y)
        out[name] = model.quality.auc
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.learning_quality")
    parser.add_argument("--uci", type=Path, help="online_shoppers_intention.csv (UCI)")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args(argv)
    names = load_cluster_names(NAMES)
    points = evaluate(simulate(30_000, seed=1, lift=4.0), names=names, every=10_000)
    last = points[-1]
    planted_ok = (last.planted_auc or 0.0) >= PLANTED_TARGET
    named = {c.name: c for c in last.clusters if c.name is not None}
    missing = sorted(set(names) - set(named))  # a name no session of the window fell under
    purity_ok = not missing and (last.purity_min or 0.0) >= PURITY_TARGET
    lines = [
        START,
        "## Learning quality (what the models find, at decision time)",
        "",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "- command: `.venv/bin/python -m benchmarks.learning_quality"
        + (" --uci online_shoppers_intention.csv`" if args.uci else "`"),
        "- the same figures by hand: `personalize simulate -n 30000 --seed 1 --lift 4 -o s.jsonl`"
        " then `personalize evaluate --replay s.jsonl --every 10000 --cluster-names "
        "benchmarks/sim_clusters.yaml`",
        "- decision time = each page's start (what a slot decision saw), scored before the "
        "session is learned; planted AUC = landing-page propensity, planted vs other sessions; "
        "purity = share of a named cluster's sessions from its main persona (last 10,000 "
        "sessions); `purity` is the size-weighted mean over the named clusters, `min_purity` "
        "the least pure named cluster's, which acceptance judges: a name promises its cluster",
        "",
        "```",
        *report(points),
        "```",
        "",
        "Each named cluster (last window):",
        "",
        "| name | cluster | sessions | main persona | purity | >= " + f"{PURITY_TARGET} |",
        "|---|---:|---:|---|---:|---|",
        *(
            f"| {n} | {c.cluster} | {c.size:,} | {c.persona} | {c.purity:.1%} | "
            f"{'yes' if c.purity >= PURITY_TARGET else 'no'} |"
            for n, c in sorted(named.items())
        ),
        *(f"| {n} | {names[n]} | 0 | - | - | no |" for n in missing),
        "",
        f"Acceptance (planted AUC >= {PLANTED_TARGET} at decision time, persona purity of "
        f"each named cluster >= {PURITY_TARGET}): "
        f"**{'PASS' if planted_ok and purity_ok else 'FAIL'}**",
    ]
    if args.uci:
        figures = uci(args.uci)
        lines += [
            "",
            f"Real sessions: UCI Online Shoppers Purchasing Intention, {figures['sessions']:,.0f} "
            f"sessions ({figures['positives']:,.0f} purchases), prequential in file order, raw "
            "numbers as the file has them:",
            "",
            "| model | prequential ROC AUC |",
            "|---|---:|",
            f"| `PropensityModel()` (automatic log scaling) | {figures['default']:.4f} |",
            f"| hand-tuned: `log1p` on counts, durations, page values | {figures['hand']:.4f} |",
            f"| no log scaling (`log1p=()`, the old default) | {figures['none']:.4f} |",
        ]
    lines.append(END)
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        write_section(RESULTS, START, END, section)
    return 0 if planted_ok and purity_ok else 1


if __name__ == "__main__":
    sys.exit(main())
