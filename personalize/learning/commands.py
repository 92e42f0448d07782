"""The learning subcommands of ``personalize``: ``simulate``, ``evaluate`` and ``learner``.

>>> import io, contextlib, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "s.jsonl")
>>> out = io.StringIO()
>>> with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
...     a = run(parser().parse_args(["simulate", "-n", "1500", "--seed", "3", "-o", path]))
...     b = run(parser().parse_args(["evaluate", "--replay", path, "--every", "500", "--quiet"]))
>>> a, b, out.getvalue().splitlines()[0].split(), len(out.getvalue().splitlines())
(0, 0, ['sessions', 'positives', 'roc_auc', 'log_loss', 'ready'], 4)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

__all__ = ["COMMANDS", "add_commands", "parser", "run"]

COMMANDS = ("simulate", "evaluate", "learner")


def add_commands(commands: Any) -> None:
    """Add the learning subcommands to an ``add_subparsers()`` object."""
    sim = commands.add_parser("simulate", help="write synthetic sessions (JSONL) with ground truth")
    sim.add_argument("-n", "--sessions", type=int, default=10_000)
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--base-rate", type=float, default=0.03)
    sim.add_argument("--lift", type=float, default=3.0, help="planted group's conversion lift")
    sim.add_argument("--outlier-rate", type=float, default=0.0)
    sim.add_argument("-o", "--output", default="-", help="file (default: stdout)")

    ev = commands.add_parser("evaluate", help="prequential ROC AUC and log loss of a replay")
    ev.add_argument("--replay", required=True, metavar="FILE.jsonl")
    ev.add_argument("--every", type=int, default=1000, help="print a line every N sessions")
    ev.add_argument("--label", default="converted", help="the boolean label key")
    ev.add_argument("--learning-rate", type=float, default=0.02)
    ev.add_argument("--quiet", action="store_true", help="no progress bar")

    ln = commands.add_parser("learner", help="consume learning events from a Redis stream")
    ln.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    ln.add_argument("--stream", default="personalize:learn")
    ln.add_argument("--group", default="personalize-learner")
    ln.add_argument("--consumer", default=f"learner-{os.getpid()}")
    ln.add_argument("--prefix", default="personalize:models", help="snapshot key prefix")
    ln.add_argument("--publish-every", type=float, default=2.0, help="seconds")


def parser() -> argparse.ArgumentParser:
    """A standalone parser with just the learning commands (for tests and scripts)."""
    p = argparse.ArgumentParser(prog="personalize")
    add_commands(p.add_subparsers(dest="command"))
    return p


def run(args: argparse.Namespace) -> int:
    """Run the learning subcommand ``args.command``; returns the exit status."""
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "evaluate":
        return _evaluate(args)
    if args.command == "learner":
        return _learner(args)
    raise ValueError(f"not a learning command: {args.command}")


def _simulate(args: argparse.Namespace) -> int:
    from personalize.learning.simulate import simulate, write_jsonl

    records = simulate(
        args.sessions,
        seed=args.seed,
        base_rate=args.base_rate,
        lift=args.lift,
        outlier_rate=args.outlier_rate,
    )
    if args.output == "-":
        n = write_jsonl(records, sys.stdout)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            n = write_jsonl(records, f)
    print(f"personalize simulate: {n} sessions", file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from personalize.learning.evaluate import Progress, evaluate, read_jsonl
    from personalize.learning.propensity import PropensityModel

    try:
        with open(args.replay, encoding="utf-8") as f:
            total = sum(1 for line in f if line.strip())
    except OSError as exc:
        print(f"personalize evaluate: {exc}", file=sys.stderr)
        return 2
    model = PropensityModel(learning_rate=args.learning_rate)
    progress = None if args.quiet else Progress(total)
    try:
        points = evaluate(
            read_jsonl(args.replay), model=model, every=args.every, label=args.label,
            progress=progress,
        )  # fmt: skip
    except (KeyError, ValueError) as exc:
        print(f"personalize evaluate: bad record: {exc!r}", file=sys.stderr)
        return 2
    print(f"{'sessions':>10} {'positives':>10} {'roc_auc':>8} {'log_loss':>9} {'ready':>6}")
    for p in points:
        print(f"{p.n:>10} {p.positives:>10} {p.auc:>8.4f} {p.logloss:>9.4f} {p.ready!s:>6}")
    return 0


def _learner(args: argparse.Namespace) -> int:  # pragma: no cover - a long-running process
    from personalize.learning.scaleout import StreamLearner

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    learner = StreamLearner(
        redis_url=args.redis_url,
        stream=args.stream,
        group=args.group,
        consumer=args.consumer,
        prefix=args.prefix,
        publish_every=args.publish_every,
    )
    print(
        f"personalize learner: {args.stream} -> {args.prefix} (group {args.group}, "
        f"consumer {args.consumer}, version {learner.learner.version})",
        file=sys.stderr,
    )
    n = learner.run(stop)
    print(f"personalize learner: {n} events, version {learner.learner.version}", file=sys.stderr)
    return 0
