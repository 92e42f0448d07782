"""Learning wired into the middleware: page views and orders teach the models, and their
scores reach segment rules."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2 as httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from personalize import MemoryStore, PersonalizeMiddleware, SegmentLibrary, get_visitor
from personalize.learning import ModelSet, PropensityModel, SessionClusterer
from personalize.learning.anomaly import AnomalyScorer
from personalize.learning.runtime import LocalLearning
from tests.apps import SECRET

UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


async def page(request: Request) -> Response:
    v = get_visitor(request)
    return HTMLResponse(f"<p>{sorted(v.segment_names)}|{sorted(v.attributes)}</p>")


async def buy(request: Request) -> Response:
    n = request.query_params["n"]
    await get_visitor(request).track("order", {"order_id": n, "products": ["p"], "value": 5})
    return JSONResponse({})


async def attrs(request: Request) -> Response:
    a = get_visitor(request).attributes
    return JSONResponse({k: a.get(k) for k in ("propensity", "cluster", "anomaly", "anomalous")})


def make(learning: LocalLearning) -> PersonalizeMiddleware:
    segments = SegmentLibrary.from_data(
        [
            {
                "name": "unusual",
                "description": "far from the norm",
                "rule": {"attribute": "anomaly", "operator": "gte", "value": 0.0},
            }
        ]
    )
    app = Starlette(routes=[Route("/", page), Route("/buy", buy), Route("/attrs", attrs)])
    return PersonalizeMiddleware(
        app,
        secret_key=SECRET,
        store=MemoryStore(),
        segments=segments,
        learning=learning,
        flush_interval=0,
    )


def test_page_views_and_orders_feed_the_models_and_scores_reach_rules() -> None:
    models = ModelSet(
        PropensityModel(min_labelled=5, min_auc=0.0),
        SessionClusterer(n_clusters=2, init_size=5),
        AnomalyScorer(window_size=10, threshold=0.9),
    )
    learning = LocalLearning(models)
    pz = make(learning)

    async def scenario() -> dict[str, Any]:
        for i in range(12):
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=pz),
                base_url="http://shop.test",
                headers={"user-agent": UA},
            ) as c:
                await c.get("/")
                await c.get("/")
                if i % 3 == 0:
                    await c.get(f"/buy?n=o{i}")
                    await c.get("/")
                last = (await c.get("/attrs")).json()
                r = await c.get("/")
        assert "unusual" in r.text
        return dict(last)

    last = asyncio.run(scenario())
    status = learning.status()
    assert status["events"] >= 30 and status["dropped"] == 0
    assert last["anomaly"] is not None and 0.0 <= last["anomaly"] <= 1.0
    assert last["anomalous"] is (last["anomaly"] > 0.9)
    assert last["cluster"] is not None


def test_scores_are_missing_until_their_model_is_ready_never_a_silent_zero() -> None:
    learning = LocalLearning()  # defaults: nothing is ready after a few sessions
    pz = make(learning)

    async def scenario() -> dict[str, Any]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=pz),
            base_url="http://shop.test",
            headers={"user-agent": UA},
        ) as c:
            for _ in range(5):
                await c.get("/")
            return dict((await c.get("/attrs")).json())

    assert asyncio.run(scenario()) == dict.fromkeys(
        ("propensity", "cluster", "anomaly", "anomalous")
    )


def test_bots_and_unremembered_visitors_teach_nothing() -> None:
    learning = LocalLearning()
    pz = make(learning)

    async def scenario() -> None:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=pz), base_url="http://shop.test"
        ) as c:
            await c.get("/", headers={"user-agent": "Googlebot/2.1"})
            await c.get("/", headers={"user-agent": UA, "sec-gpc": "1"})

    asyncio.run(scenario())
    assert learning.status()["events"] == 0
