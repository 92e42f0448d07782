"""Impact end to end: an uplift planted in a shop, measured through the real middleware.

    .venv/bin/python -m benchmarks.impact_e2e [--visitors 10000] [--days 14] [--uplift 0.5]
        [--store sqlite|memory] [--no-write]

A Starlette shop behind :class:`~personalize.PersonalizeMiddleware` (a SQLite store by
default) whose content file holds back 20 % of visitors (``holdout: 0.2``) on its one slot,
``hero``: its rule shows every personalized visitor the variant ``picked``, the holdout sees
the default ``welcome``. Simulated visitors (each a fresh cookie and a browser's User-Agent,
spread evenly over ``--days`` simulated days by the settings' clock) open the home page and
then buy, through ``POST /buy`` (``visitor.track("order")``), with probability 8 % when they
were shown ``welcome`` and 8 % x (1 + uplift) when shown ``picked``; order values are uniform
in 20..80, whatever was shown. Nothing in the shop knows the arms: the planted uplift is an
effect of the content, and what the report finds comes from the exposures and orders the
middleware recorded. At shutdown (the ASGI lifespan) the impact log is written; the report is
then read back from the store by a new store object, as ``personalize report`` does.

The same shop with no planted uplift (an A/A run, another seed) is run beside it. Writes
benchmarks/RESULTS.md between the ``impact-e2e`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from benchmarks.benchkit import command_line, write_section
from personalize import MemoryStore, PersonalizeMiddleware, SQLiteStore, get_visitor
from personalize.impact.report import Report, build_report, interval_text
from personalize.services.impact import ImpactLog
from personalize.stores.base import ProfileStore
from personalize.stores.state import StateStore

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
START, END = "<!-- impact-e2e:start -->", "<!-- impact-e2e:end -->"
BASE_RATE = 0.08  # conversion of a visitor shown the default
SHARE = 0.2
SECRET = "impact-e2e-secret-of-32-characters!!"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
CONTENT = f"""\
holdout: {SHARE}
slots:
  hero:
    variants:
      - {{id: welcome, html: Welcome}}
      - {{id: picked, html: Picked for you}}
    rules:
      - when: {{attribute: hour, operator: between, value: [0, 23]}}
        variants: [picked]
    default: [welcome]
"""


async def home(request: Request) -> Response:
    visitor = get_visitor(request)
    decision = await visitor.decide("hero")
    return PlainTextResponse(decision.variant or "")


async def buy(request: Request) -> Response:
    params = request.query_params
    props = {"order_id": params["order"], "products": ["p1"], "value": float(params["value"])}
    await get_visitor(request).track("order", props)
    return PlainTextResponse("thanks")


class Clock:
    """The simulated time every part of the site reads (Settings.clock)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Outcome:
    """One shop run: what was shown and bought, what the report says, how long it took."""

    uplift: float
    shown: dict[str, int]  # variant -> visitors
    orders: dict[str, int]  # variant -> orders
    report: Report
    seconds: float


def simulation_start(days: int, now: float) -> float:
    """When ``days`` simulated days start: 06:00 UTC ``days + 1`` days before ``now``'s day,
    so that they end at 06:00 UTC yesterday, in the past, and always touch ``days + 1``
    calendar days (starting ``days`` days before ``now`` spilled into one more day when run
    in the minutes before midnight UTC: the orders' seconds push the end past it).

    >>> import datetime as dt
    >>> late = dt.datetime(2026, 12, 3, 23, 59, tzinfo=dt.timezone.utc).timestamp()
    >>> dt.datetime.fromtimestamp(simulation_start(2, late), dt.timezone.utc).isoformat()
    '2026-11-30T06:00:00+00:00'
    """
    midnight = now - now % 86_400
    return midnight - (days + 1) * 86_400 + 6 * 3_600


def run_shop(
    folder: Path,
    *,
    visitors: int,
    days: int,
    uplift: float,
    seed: int,
    store: str = "sqlite",
) -> Outcome:
    """Run the shop in ``folder`` for ``visitors`` simulated visitors; return its report."""
    content = folder / "content"
    content.mkdir(parents=True, exist_ok=True)
    (content / "hero.yaml").write_text(CONTENT, encoding="utf-8")
    clock = Clock(simulation_start(days, time.time()))
    profiles: ProfileStore = (
        SQLiteStore(folder / "shop.sqlite3") if store == "sqlite" else MemoryStore()
    )
    state: StateStore = profiles.state_store()
    app = Starlette(routes=[Route("/", home), Route("/buy", buy, methods=["POST"])])
    shop = PersonalizeMiddleware(
        app, secret_key=SECRET, store=profiles, state_store=state, content=str(content),
        clock=clock, flush_interval=0.0,
    )  # fmt: skip
    rng = random.Random(seed)
    shown = {"welcome": 0, "picked": 0}
    orders = {"welcome": 0, "picked": 0}
    started = time.perf_counter()
    step = days * 86_400 / visitors
    with TestClient(shop, headers={"user-agent": BROWSER}) as client:
        for i in range(visitors):
            clock.now += step
            client.cookies.clear()  # a new visitor
            variant = client.get("/").text
            shown[variant] += 1
            rate = BASE_RATE * (1 + uplift) if variant == "picked" else BASE_RATE
            if rng.random() < rate:
                clock.now += 1
                value = round(rng.uniform(20, 80), 2)
                bought = client.post(f"/buy?order=o{i}&value={value}")
                assert bought.status_code == 200, bought.text
                orders[variant] += 1
    seconds = time.perf_counter() - started  # the lifespan's shutdown wrote the impact log

    async def read() -> Report:
        fresh: StateStore = state
        if store == "sqlite":
            from personalize.stores.state_sqlite import SQLiteStateStore

            fresh = SQLiteStateStore(folder / "shop.sqlite3")
        daily = await ImpactLog(fresh).daily(clock(), days=days + 2)
        await fresh.close()
        return build_report(daily)

    return Outcome(uplift, shown, orders, asyncio.run(read()), seconds)


def _row(found: Outcome) -> str:
    site = found.report.scope("site")
    assert site is not None, "the report has no whole-site figures"
    p = site.latest
    conv, value = p.conversion, p.value
    covered = conv is not None and conv.low <= found.uplift <= conv.high
    return (
        f"| {found.uplift:+.0%} | {p.personalized.visitors:,} / {p.holdout.visitors:,} "
        f"| {p.personalized.converted:,} / {p.holdout.converted:,} "
        f"| {interval_text(conv)} | {'yes' if covered else 'no'} "
        f"| {conv.winner if conv is not None and conv.winner else 'none'} "
        f"| {interval_text(value)} | {found.seconds:.0f} s |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--visitors", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--uplift", type=float, default=0.5)
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    runs = []
    for uplift, seed in ((args.uplift, args.seed), (0.0, args.seed + 1)):
        with tempfile.TemporaryDirectory(prefix="pz-impact-e2e-") as tmp:
            runs.append(
                run_shop(
                    Path(tmp),
                    visitors=args.visitors,
                    days=args.days,
                    uplift=uplift,
                    seed=seed,
                    store=args.store,
                )
            )
    planted, null = runs
    site = planted.report.scope("site")
    conv = site.latest.conversion if site is not None else None
    ok = conv is not None and conv.low > 0 and conv.low <= args.uplift <= conv.high
    lines = [
        START,
        "## Impact end to end (a planted uplift through the real middleware)",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- command: `{command_line('benchmarks.impact_e2e')}`",
        f"- a shop behind PersonalizeMiddleware ({args.store} store), `holdout: {SHARE}` in its "
        f"content, {args.visitors:,} simulated visitors over {args.days} simulated days; a "
        f"visitor shown the personalized variant buys with probability {BASE_RATE:.0%} x "
        '(1 + uplift), one shown the default with {:.0%} (`visitor.track("order")`, '
        "values 20..80); the report is read back from the store after the lifespan's "
        "shutdown, as `personalize report` does".format(BASE_RATE),
        "- whole site, last day; P / H = personalized / holdout; intervals are 95 % "
        "confidence sequences (docs/impact.md)",
        "",
        "| planted uplift | visitors P / H | converted P / H | conversion uplift [interval] "
        "| covers the truth | winner | value per visitor uplift | time |",
        "|---:|---:|---:|---|---|---|---|---:|",
        _row(planted),
        _row(null),
        "",
        f"Acceptance (the planted {args.uplift:+.0%} is found: its conversion interval excludes "
        f"0 and covers the truth): **{'PASS' if ok else 'FAIL'}**",
        END,
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        write_section(RESULTS, START, END, section)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
