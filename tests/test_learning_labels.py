"""Labels learning gets from a mounted site: one example per session, whatever logins happen
in it, and every order counts for the session it belongs to (in-app, events API, beacon)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx2 as httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from personalize import MemoryStore, PersonalizeMiddleware, get_visitor
from personalize.learning import ModelSet, PropensityModel, SessionClusterer
from personalize.learning.anomaly import AnomalyScorer
from personalize.learning.runtime import LocalLearning
from tests.apps import SECRET

API_KEY = "k" * 24
TIMEOUT = 600  # seconds: a short session timeout keeps the simulated day short
UAS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
)


class Clock:
    def __init__(self) -> None:
        # Ahead of real time only: cookies are signed with the real time, and the events API
        # refuses timestamps from tomorrow.
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def page(request: Request) -> Response:
    get_visitor(request).profile  # noqa: B018 - a personalized page
    return HTMLResponse("<p>page</p>")


async def login(request: Request) -> Response:
    await get_visitor(request).identify(request.query_params["u"])
    return JSONResponse({})


async def checkout(request: Request) -> Response:
    order = request.query_params["o"]
    await get_visitor(request).track("order", {"order_id": order, "products": ["p"], "value": 9})
    return HTMLResponse("<p>thanks</p>")


def site(clock: Clock) -> tuple[PersonalizeMiddleware, LocalLearning]:
    models = ModelSet(
        PropensityModel(), SessionClusterer(init_size=20), AnomalyScorer(window_size=20)
    )
    learning = LocalLearning(models, clock=clock, timeout=TIMEOUT)
    app = Starlette(
        routes=[Route("/", page), Route("/p", page), Route("/login", login, methods=["POST"]),
                Route("/checkout", checkout)]
    )  # fmt: skip
    pz = PersonalizeMiddleware(
        app, secret_key=SECRET, store=MemoryStore(), learning=learning, flush_interval=0,
        api_keys=[API_KEY], clock=clock, session_timeout=TIMEOUT,
    )  # fmt: skip
    return pz, learning


def test_logins_before_checkout_lose_no_conversion_and_teach_no_false_negative() -> None:
    clock = Clock()
    pz, learning = site(clock)
    expected = {"orders": 0, "sessions": 0}

    async def visit(c: httpx.AsyncClient, i: int, session: int) -> None:
        expected["sessions"] += 1
        await c.get("/")
        clock.now += 40
        await c.get("/p")
        clock.now += 40
        kind = (i + session) % 5
        if kind in (0, 1, 2):
            await c.post("/login", params={"u": f"user-{i}"})  # logging in mid-session
            clock.now += 5
        if kind == 0:  # checkout right after the login
            await c.get("/checkout", params={"o": f"o{i}-{session}"})
            expected["orders"] += 1
        elif kind == 1:  # the order reaches the profile from the shop's backend
            await c.get("/p")
            reply = await c.post(
                "/_personalize/events",
                headers={"authorization": f"Bearer {API_KEY}"},
                json={"type": "order", "user_id": f"user-{i}", "ts": clock.now,
                      "properties": {"order_id": f"o{i}-{session}", "products": ["p"],
                                     "value": 9}},
            )  # fmt: skip
            assert reply.status_code == 202, reply.text
            expected["orders"] += 1
        elif kind == 3:  # an anonymous order, then the thank-you page of the same session
            await c.get("/checkout", params={"o": f"o{i}-{session}"})
            expected["orders"] += 1
        await c.get("/")  # the page after: the session goes on, it must not open again
        clock.now += 60

    async def scenario() -> None:
        for i in range(20):
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=pz),
                base_url="http://shop.test",
                headers={"user-agent": UAS[i % 2]},
            ) as c:
                for session in range(2):  # a returning visitor: a second session hours later
                    await visit(c, i, session)
                    clock.now += TIMEOUT + 100
        for _ in range(3):
            await learning.drain()
        learning.learner.tick(clock.now + 3600)

    asyncio.run(scenario())
    labeller = learning.learner.labeller
    assert labeller.positives == expected["orders"] == 24
    assert labeller.negatives == expected["sessions"] - expected["orders"] == 16
    assert labeller.late == 0 and len(labeller) == 0 and labeller.dropped == 0
    quality = learning.learner.models.propensity.quality
    assert (quality.n_labelled, quality.n_positive) == (40, 24)


def test_a_beacon_conversion_labels_the_session_once(tmp_path: Path) -> None:
    clock = Clock()
    (tmp_path / "home.yaml").write_text(CONTENT)
    learning = LocalLearning(clock=clock)
    app = Starlette(routes=[Route("/", banner), Route("/checkout", checkout)])
    pz = PersonalizeMiddleware(
        app, secret_key=SECRET, store=MemoryStore(), content=tmp_path, learning=learning,
        flush_interval=0, clock=clock,
    )  # fmt: skip

    async def scenario() -> None:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=pz), base_url="http://shop.test",
            headers={"user-agent": UAS[0]},
        ) as c:  # fmt: skip
            decision = (await c.get("/")).text
            clock.now += 30
            beacon = {"decision_id": decision, "type": "conversion", "value": 9.0}
            r = await c.post("/_personalize/collect", content=json.dumps(beacon))
            assert r.status_code == 204, r.text
            # The shop reports the same order too, then shows a page: still one positive.
            await c.get("/checkout", params={"o": "o1"})
            await c.get("/")
            await learning.drain()
            learning.learner.tick(clock.now + 3600)

    asyncio.run(scenario())
    labeller = learning.learner.labeller
    assert (labeller.positives, labeller.negatives, labeller.late) == (1, 0, 0)


CONTENT = """\
slots:
  banner:
    reward: conversion
    variants:
      - {id: free_returns, html: "<p>Free returns</p>"}
    default: [free_returns]
"""


async def banner(request: Request) -> Response:
    decision = await get_visitor(request).decide("banner")
    return HTMLResponse(decision.decision_id)
