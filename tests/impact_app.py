"""A shop page behind the middleware with a 20 % holdout, for the impact tests.

``GET /`` decides the ``hero`` slot and answers ``<visitor id>|<variant>``; ``POST /buy``
tracks an order (``?order=<id>&value=<amount>``). Separate servers run it with
``uvicorn tests.impact_app:from_env --factory`` and ``PZ_IMPACT_DIR`` naming a folder that
holds ``content/`` and the SQLite file every server shares.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from personalize import PersonalizeMiddleware, SQLiteStore, get_visitor
from personalize.services.impact import Arm, Exposure, ImpactLog

SECRET = "impact-test-secret-of-32-characters!"
API_KEY = "impact-test-api-key-0123456789"
HERO = """\
holdout: 0.2
slots:
  hero:
    variants:
      - {id: welcome, html: Welcome}
      - {id: picked, html: Picked for you}
    rules:
      - when: {attribute: hour, operator: between, value: [0, 23]}
        variants: [picked]
    default: [welcome]
"""


def write_content(folder: Path) -> Path:
    """``folder/content`` with the hero slot and its holdout."""
    content = folder / "content"
    content.mkdir(parents=True, exist_ok=True)
    (content / "hero.yaml").write_text(HERO, encoding="utf-8")
    return content


async def home(request: Request) -> Response:
    visitor = get_visitor(request)
    decision = await visitor.decide("hero")
    return PlainTextResponse(f"{visitor.id}|{decision.variant}")


async def buy(request: Request) -> Response:
    params = request.query_params
    props = {"order_id": params["order"], "products": ["p1"], "value": float(params["value"])}
    await get_visitor(request).track("order", props)
    return PlainTextResponse("thanks")


def make_app(folder: Path, **options: object) -> PersonalizeMiddleware:
    """The shop in ``folder`` (its content written there if absent), sharing its SQLite file."""
    content = folder / "content"
    if not content.exists():
        write_content(folder)
    app = Starlette(routes=[Route("/", home), Route("/buy", buy, methods=["POST"])])
    options = {"flush_interval": 0.0, **options}
    return PersonalizeMiddleware(
        app,
        secret_key=SECRET,
        store=SQLiteStore(folder / "shop.sqlite3"),
        content=str(content),
        api_keys=[API_KEY],
        **options,  # type: ignore[arg-type]
    )


def from_env() -> PersonalizeMiddleware:
    return make_app(Path(os.environ["PZ_IMPACT_DIR"]))


async def plant(
    log: ImpactLog,
    now: float,
    *,
    days: int = 14,
    per_day: int = 400,
    share: float = 0.2,
    base: float = 0.05,
    uplift: float = 0.3,
    seed: int = 1,
) -> None:
    """Write ``days`` days of synthetic exposures and orders up to ``now`` into ``log``: a
    ``share`` of each day's new visitors held out, who convert at ``base``; the others at
    ``base * (1 + uplift)``, with order values uniform in 20..80."""
    rng = random.Random(seed)
    # Each day's records in the hour before ``now``'s time of day, or in the first half of
    # ``now``'s day so far when that is shorter: each day's stay on its own calendar day
    # (run in the first hour after midnight UTC, "today" used to land on yesterday).
    span = min(3_600.0, (now % 86_400) / 2)
    for day in range(days - 1, -1, -1):
        start = now - day * 86_400 - span
        for i in range(per_day):
            unit = f"v:{day}-{i}"
            arm: Arm = "holdout" if rng.random() < share else "personalized"
            segment = "uk_visitors" if rng.random() < 0.5 else "(default)"
            ts = start + rng.random() * span * 0.8
            log.exposed(Exposure(unit, "hero", "welcome", arm, arm, segment, ts))
            rate = base if arm == "holdout" else base * (1 + uplift)
            if rng.random() < rate:
                log.converted(unit, rng.uniform(20, 80), ts + min(60.0, span / 10))
        await log.flush()
