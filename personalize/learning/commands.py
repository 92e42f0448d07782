"""The learning subcommands of ``personalize``: ``simulate``, ``evaluate`` and ``learner``.

>>> import io, contextlib, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "s.jsonl")
>>> out = io.StringIO()
>>> with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
...     a = run(parser().parse_args(["simulate", "-n", "1500", "--seed", "3", "-o", path]))
...     b = run(parser().parse_args(["evaluate", "--replay", path, "--every", "500", "--quiet"]))
>>> a, b, out.getvalue().splitlines()[0].split()  # doctest: +NORMALIZE_WHITESPACE
(0, 0, ['sessions', 'positives', 'auc@decision', 'auc@end', 'log_loss', 'planted_auc',
        'purity', 'min_purity', 'ready'])
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from personalize.learning.evaluate import EvalPoint, Progress, Replay, ReplayError
from personalize.learning.simulate import GROUPS
from personalize.util.cli_types import fraction, positive_number, whole_number

__all__ = ["COMMANDS", "add_commands", "parser", "report", "run"]

COMMANDS = ("simulate", "evaluate", "learner")


def add_commands(commands: Any) -> None:
    """Add the learning subcommands to an ``add_subparsers()`` object."""
    sim = commands.add_parser(
        "simulate",
        help="write synthetic sessions (JSONL) with ground truth",
        description="Write synthetic sessions, one JSON object per line, with the planted "
        "ground truth (planted, p, converted) to evaluate the models against.",
    )
    sim.add_argument(
        "-n",
        "--sessions",
        type=whole_number(1),
        default=10_000,
        metavar="N",
        help="how many sessions (default: %(default)s)",
    )
    sim.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed: the same seed writes the same file (default: %(default)s)",
    )
    sim.add_argument(
        "--base-rate",
        type=fraction,
        default=0.03,
        metavar="RATE",
        help="conversion rate of an ordinary session, 0-1 (default: %(default)s)",
    )
    sim.add_argument(
        "--lift",
        type=positive_number,
        default=3.0,
        help="how many times the planted group converts (default: %(default)s)",
    )
    sim.add_argument(
        "--effect",
        action="append",
        metavar="FIELD=VALUE,...:LIFT",
        help="plant an effect instead of the default (paid search on a phone in the evening "
        "at --lift), e.g. channel=email,daypart=morning:2; repeat for more",
    )
    sim.add_argument(
        "--personas",
        metavar="NAME,...",
        help=f"personas to draw from (default: all of {', '.join(GROUPS)})",
    )
    sim.add_argument(
        "--outlier-rate",
        type=fraction,
        default=0.0,
        metavar="RATE",
        help="share of anomalous sessions, 0-1 (default: %(default)s)",
    )
    sim.add_argument(
        "-o",
        "--output",
        default="-",
        metavar="FILE",
        help="where to write (default: standard output)",
    )
    _progress_options(sim)

    ev = commands.add_parser(
        "evaluate",
        help="prequential ROC AUC and log loss of a replay",
        description="Replay labelled sessions through the models, predicting each before "
        "learning from it; every N sessions print the ROC AUC at decision time (each page's "
        "start) and at the end of sessions, the log loss and, where the records carry ground "
        "truth, the planted group's AUC and the clusters' persona purity.",
    )
    ev.add_argument(
        "--replay",
        required=True,
        metavar="FILE.jsonl",
        help="sessions, one JSON object per line (e.g. from `personalize simulate`)",
    )
    ev.add_argument(
        "--every",
        type=whole_number(1),
        default=1000,
        metavar="N",
        help="print a line every N sessions (default: %(default)s)",
    )
    ev.add_argument(
        "--label",
        default="converted",
        help="the key of the boolean outcome in each record (default: %(default)s)",
    )
    ev.add_argument(
        "--learning-rate",
        type=positive_number,
        default=0.02,
        metavar="RATE",
        help="the model's learning rate (default: %(default)s)",
    )
    ev.add_argument(
        "--clusters",
        type=whole_number(2),
        default=8,
        metavar="N",
        help="clusters to form (default: %(default)s)",
    )
    ev.add_argument(
        "--cluster-names",
        metavar="FILE.yaml",
        help="a file with a clusters: mapping (name: number); purity is then the named ones'",
    )
    _progress_options(ev)

    ln = commands.add_parser("learner", help="consume learning events from a Redis stream")
    ln.add_argument(
        "--redis-url",
        default=None,
        metavar="URL",
        help="the Redis server (default: $REDIS_URL, else redis://127.0.0.1:6379/0)",
    )
    ln.add_argument(
        "--stream",
        default="personalize:learn",
        help="the stream the workers write to (default: %(default)s)",
    )
    ln.add_argument(
        "--group", default="personalize-learner", help="the consumer group (default: %(default)s)"
    )
    ln.add_argument(
        "--consumer", default=None, help="this learner's name in the group (default: learner-<pid>)"
    )
    ln.add_argument(
        "--prefix",
        default="personalize:models",
        help="key prefix of the published snapshots (default: %(default)s)",
    )
    ln.add_argument(
        "--publish-every",
        type=positive_number,
        default=2.0,
        metavar="SECONDS",
        help="seconds between published snapshots (default: %(default)s)",
    )


def _progress_options(command: argparse.ArgumentParser) -> None:
    shown = command.add_mutually_exclusive_group()
    shown.add_argument(
        "--progress",
        action="store_true",
        help="show a progress bar on stderr (default: when it is a terminal)",
    )
    shown.add_argument("--quiet", action="store_true", help="no progress bar")


def _progress(args: argparse.Namespace, total: int | None) -> Progress | None:
    wanted = args.progress or (not args.quiet and sys.stderr.isatty())
    return Progress(total) if wanted else None


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


def _counted(records: Iterable[Any], progress: Progress) -> Iterator[Any]:
    n = 0
    for n, record in enumerate(records, start=1):
        yield record
        progress.update(n)
    progress.close(n)


def _simulate(args: argparse.Namespace) -> int:
    from personalize.learning.simulate import Effect, simulate, write_jsonl

    try:
        effects = [Effect.parse(e) for e in args.effect] if args.effect else None
        personas = args.personas.split(",") if args.personas else None
        unknown = [p for p in personas or () if p not in GROUPS]
        if unknown:
            raise ValueError(f"unknown personas {', '.join(unknown)}; known: {', '.join(GROUPS)}")
    except ValueError as exc:
        print(f"personalize simulate: {exc}", file=sys.stderr)
        return 2
    records: Iterable[Any] = simulate(
        args.sessions,
        seed=args.seed,
        base_rate=args.base_rate,
        lift=args.lift,
        effects=effects,
        personas=personas,
        outlier_rate=args.outlier_rate,
    )
    progress = _progress(args, args.sessions)
    if progress is not None:  # a 2-million-session run takes half a minute
        records = _counted(records, progress)
    try:
        if args.output == "-":
            n = write_jsonl(records, sys.stdout)
        else:
            with open(args.output, "w", encoding="utf-8") as f:
                n = write_jsonl(records, f)
    except OSError as exc:
        if progress is not None:
            progress.clear()
        print(f"personalize simulate: {exc}", file=sys.stderr)
        return 2
    print(f"personalize simulate: {n} sessions", file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from personalize.exceptions import SegmentError
    from personalize.learning.clusters import SessionClusterer
    from personalize.learning.evaluate import evaluate
    from personalize.learning.propensity import PropensityModel
    from personalize.rules.clusternames import load_cluster_names

    try:
        with open(args.replay, encoding="utf-8") as f:
            total = sum(1 for line in f if line.strip())
    except (OSError, UnicodeDecodeError) as exc:
        print(f"personalize evaluate: {args.replay}: {exc}", file=sys.stderr)
        return 2
    try:
        names = load_cluster_names(args.cluster_names) if args.cluster_names else None
    except SegmentError as exc:
        print(f"personalize evaluate: {exc}", file=sys.stderr)
        return 2
    model = PropensityModel(learning_rate=args.learning_rate)
    clusterer = SessionClusterer(n_clusters=args.clusters, seed=1)
    progress = _progress(args, total)
    replay = Replay(args.replay)

    def show(p: EvalPoint) -> None:  # as soon as it is computed, between redraws of the bar
        if progress is not None:
            progress.clear()
        print(point_line(p), flush=True)

    print(HEADER, flush=True)
    try:
        points = evaluate(
            replay, model=model, clusterer=clusterer, names=names, every=args.every,
            label=args.label, progress=progress, on_point=show,
        )  # fmt: skip
    except ReplayError as exc:
        problem = str(exc)
    except KeyError as exc:
        problem = str(replay.error(f"the record has no {exc.args[0]!r} (the --label key)"))
    except (ValueError, TypeError, AttributeError) as exc:
        problem = str(replay.error(f"a value cannot be used: {exc}"))
    else:
        lines = cluster_lines(points)
        if lines:
            print("\n".join(lines), flush=True)
        return 0
    if progress is not None:
        progress.end_line()  # it shows how far the replay got; the problem goes below it
    print(problem, file=sys.stderr)
    return 2


HEADER = (
    f"{'sessions':>10} {'positives':>10} {'auc@decision':>13} {'auc@end':>8} "
    f"{'log_loss':>9} {'planted_auc':>12} {'purity':>7} {'min_purity':>10} {'ready':>6}"
)


def point_line(p: EvalPoint) -> str:
    """One line of figures (``-`` where the records carry no ground truth)."""
    planted = f"{p.planted_auc:.4f}" if p.planted_auc is not None else "-"
    purity = f"{p.purity:.3f}" if p.purity is not None else "-"
    least = f"{p.purity_min:.3f}" if p.purity_min is not None else "-"
    return (
        f"{p.n:>10} {p.positives:>10} {p.auc:>13.4f} {p.auc_end:>8.4f} {p.logloss:>9.4f} "
        f"{planted:>12} {purity:>7} {least:>10} {p.ready!s:>6}"
    )


def cluster_lines(points: list[EvalPoint]) -> list[str]:
    """The clusters of the last window: name, size, main persona's share, description."""
    if not points or not points[-1].clusters:
        return []
    lines = ["", "clusters in the last window (decision time):"]
    for c in points[-1].clusters:
        lines.append(
            f"  {c.cluster:>2} {c.name or '-':<20} {c.size:>6} sessions  {c.purity:>6.1%} "
            f"{c.persona:<16} {c.description}"
        )
    return lines


def report(points: list[EvalPoint]) -> list[str]:
    """The whole evaluation as lines of text: figures over time, then the clusters."""
    return [HEADER, *(point_line(p) for p in points), *cluster_lines(points)]


def _learner(args: argparse.Namespace) -> int:  # pragma: no cover - a long-running process
    from personalize.learning.scaleout import StreamLearner

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    learner = StreamLearner(
        redis_url=args.redis_url or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        stream=args.stream,
        group=args.group,
        consumer=args.consumer or f"learner-{os.getpid()}",
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
