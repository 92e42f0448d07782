"""What each step of the middleware's request path costs, in instructions (valgrind callgrind).

    .venv/bin/python -m benchmarks.steps [--steps visitor,context,fold] [--no-write]

:mod:`benchmarks.bytecodes` ranks the hot path's functions by the bytecodes they execute, and
a bytecode is a poor stand-in for an instruction there: the context memo is 78 bytecodes and
about 9,000 instructions, the profile view's fold some 330 bytecodes and 16,000 (the calls,
the allocations and the hashing are in C). This harness measures a step itself. It runs the
requests of :mod:`benchmarks.instructions` (its child: warm-up, then returning visitors
rotating, page views written every ``--batch`` requests) on ``--app`` with one function
wrapped so that every call runs it twice (the first result thrown away), and again with the
same wrapper calling it once; the difference, per request, is what one call costs, the
wrapper's own cost cancelled. Each figure is, as in :mod:`benchmarks.instructions`, the
difference of a run with ``--requests`` requests and one with 1,000 more.

Only functions that can run twice without changing what the request does are steps: each
one below computes or looks up (the second call finds what the first found), and none of
them writes. Their side effects are counters (``stats``, ``counts``) and the near cache's
recency order, which a second call leaves as the first did. The cyclic collector is off in
every run (a collection falling in one run and not in the other would move a difference by
thousands), so the app's own total here is a little below its row in the instruction table.

Needs valgrind (``apt-get install valgrind``); two runs at a time (``--jobs``). Writes
benchmarks/RESULTS.md between the ``steps`` markers (other sections are kept).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import importlib
import os
import platform
import shutil
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.benchkit import command_line, write_section
from benchmarks.instructions import APPS, MORE_APPS, REFERENCE, measure

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START, END = "<!-- steps:start -->", "<!-- steps:end -->"
NONE = "none"  # the child's step when nothing is wrapped: the app's (and bare's) own total


@dataclass(frozen=True)
class Step:
    """A function of the request path: ``owner.attribute`` (``owner``: a module, or a class
    of ``module``), with what it does."""

    module: str
    owner: str | None
    attribute: str
    meaning: str
    part_of: str | None = None  # the step it runs inside, if any (shown indented)


STEPS = {
    "visitor": Step(
        "personalize.personalizer.app",
        "Personalizer",
        "_visitor",
        "building the visitor (`Personalizer._visitor`, whole): the headers' dict, the "
        "context, the cookie, the profile from the near cache, the page view, the Visitor",
    ),
    "context": Step(
        "personalize.context.builder",
        "ContextBuilder",
        "memoized",
        "the context, from its memo (`ContextBuilder.memoized`)",
        "visitor",
    ),
    "cookie": Step(
        "personalize.profiles.cookie",
        "VisitorCookie",
        "read",
        "the cookie, from its memo (`VisitorCookie.read`)",
        "visitor",
    ),
    "cached": Step(
        "personalize.services.nearcache",
        "CachedProfiles",
        "cached",
        "the stored profile, from the near cache (`CachedProfiles.cached`)",
        "visitor",
    ),
    "hit": Step(
        "personalize.personalizer.app",
        None,
        "page_view_of",
        "the page view (`page_view_of`: a `Hit` of 14 fields)",
        "visitor",
    ),
    "visitor_object": Step(
        "personalize.visitor",
        "Visitor",
        "__init__",
        "the `Visitor` object (`Visitor.__init__`)",
        "visitor",
    ),
    "fold": Step(
        "personalize.visitor",
        None,
        "hit_view",
        "the profile the page reads (`hit_view`: the page view folded into a new `Profile`)",
    ),
    "page_view": Step(
        "personalize.visitor",
        "Visitor",
        "page_view",
        "what the visitor hands over to be recorded (`Visitor.page_view`)",
    ),
}


def resolve(step: str) -> tuple[Any, str]:
    """The object that holds ``step``'s function, and the attribute's name."""
    spec = STEPS[step]
    owner: Any = importlib.import_module(spec.module)
    if spec.owner is not None:
        owner = getattr(owner, spec.owner)
    if not callable(getattr(owner, spec.attribute, None)):
        raise LookupError(f"step {step!r}: {spec.module}.{spec.owner}.{spec.attribute} is gone")
    return owner, spec.attribute


def doubled(function: Callable[..., Any], twice: bool) -> Callable[..., Any]:
    """``function`` behind a wrapper that calls it twice (the first result thrown away) or,
    with ``twice=False``, once: the two wrappers cost the same but for the call.

    >>> calls = []
    >>> doubled(lambda x: calls.append(x) or x * 2, twice=True)(21), calls
    (42, [21, 21])
    """

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if twice:
            function(*args, **kwargs)
        return function(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def wrapped(step: str, twice: bool) -> Iterator[None]:
    """``step``'s function run through :func:`doubled` while the block runs (as a plain
    attribute, so an app built inside the block sees it), put back after."""
    owner, attribute = resolve(step)
    original = owner.__dict__[attribute] if isinstance(owner, type) else getattr(owner, attribute)
    setattr(owner, attribute, doubled(original, twice))
    try:
        yield
    finally:
        setattr(owner, attribute, original)


def run_child(app: str, step: str, twice: bool, visitors: int, requests: int, batch: int) -> None:
    """What runs under valgrind: :mod:`benchmarks.instructions`' child with ``step`` wrapped
    (nothing for :data:`NONE`), the collector off."""
    from benchmarks.instructions import _child

    gc.collect()
    gc.disable()
    try:
        if step == NONE:
            asyncio.run(_child(app, visitors, requests, batch))
        else:
            with wrapped(step, twice):
                asyncio.run(_child(app, visitors, requests, batch))
    finally:
        gc.enable()


@dataclass(frozen=True)
class Row:
    step: str
    once: float  # instructions per request with the wrapper calling the step once
    twice: float  # ... twice

    @property
    def cost(self) -> float:
        return self.twice - self.once


def render(
    app: str, bare: str, totals: dict[str, float], rows: list[Row], args: argparse.Namespace
) -> str:
    added = totals[app] - totals[bare]
    lines = [
        START,
        "## What each step costs (in process, valgrind callgrind)",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}",
        f"- command: `{command_line('benchmarks.steps')}`",
        f"- {app}, {args.visitors} returning visitors, the requests of benchmarks.instructions "
        f"(page views written every {args.batch} requests); the collector off; one call of a "
        "step = (instructions per request with the step run twice per call - run once) where "
        f"per request = (a run with {args.requests + args.extra} requests - one with "
        f"{args.requests}) / {args.extra}",
        f"- {bare} {totals[bare]:,.0f} and {app} {totals[app]:,.0f} instructions per request, "
        f"so the middleware adds {added:,.0f}",
        "",
        "| step | what it does | instructions per request | share of what the middleware adds |",
        "|---|---|---:|---:|",
    ]
    for row in rows:
        spec = STEPS[row.step]
        name = f"- {row.step}" if spec.part_of is not None else row.step
        share = f"{row.cost / added:.0%}" if added > 0 else "-"
        lines.append(f"| {name} | {spec.meaning} | {row.cost:,.0f} | {share} |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", default=",".join(STEPS), help="comma-separated subset")
    parser.add_argument("--app", default="personalized_nowrite")
    parser.add_argument("--visitors", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batch", type=int, default=150, help="requests per write batch")
    parser.add_argument("--extra", type=int, default=1000, help="requests the second run adds")
    parser.add_argument("--jobs", type=int, default=2, help="valgrind runs at a time")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--step", default=NONE, help=argparse.SUPPRESS)
    parser.add_argument("--twice", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(args.child, args.step, args.twice, args.visitors, args.requests, args.batch)
        return 0
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        parser.error(f"unknown steps: {', '.join(unknown)} (known: {', '.join(STEPS)})")
    if args.app not in APPS + MORE_APPS or not args.app.startswith("personalized"):
        parser.error("--app must be an app of benchmarks.instructions with the middleware")
    if min(args.visitors, args.requests, args.batch, args.extra, args.jobs) < 1:
        parser.error("--visitors, --requests, --batch, --extra and --jobs must be positive")
    for step in steps:
        resolve(step)  # (a step whose function is gone fails here, before any run)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install valgrind", file=sys.stderr)
        return 2
    bare = REFERENCE.get(args.app, "bare")
    runs = [(bare, NONE, False), (args.app, NONE, False)]
    runs += [(args.app, step, twice) for step in steps for twice in (False, True)]

    def one(run: tuple[str, str, bool]) -> float:
        app, step, twice = run
        child = ["benchmarks.steps", "--step", step, *(["--twice"] if twice else [])]
        count = measure(app, args.visitors, args.requests, args.batch, args.extra, child)
        print(f"{app:24s} {step:16s} {'twice' if twice else 'once':5s} {count:12,.0f}", flush=True)
        return count

    with ThreadPoolExecutor(args.jobs) as pool:
        counts = dict(zip(runs, pool.map(one, runs), strict=True))
    totals = {bare: counts[(bare, NONE, False)], args.app: counts[(args.app, NONE, False)]}
    rows = [Row(s, counts[(args.app, s, False)], counts[(args.app, s, True)]) for s in steps]
    section = render(args.app, bare, totals, rows, args)
    print(section)
    if not args.no_write:
        write_section(RESULTS, START, END, section)
        print(f"updated {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
