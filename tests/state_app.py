"""A small site that the tests run in several uvicorn processes sharing one store
(``uvicorn --factory tests.state_app:create_app``).

From the environment: ``PZ_TEST_STORE`` (an SQLite path or a Redis URL), ``PZ_TEST_PREFIX``
(the Redis key prefix), ``PZ_TEST_CONTENT`` (the content folder), ``PZ_TEST_STATE_TTL`` (the
state cache's bound, seconds), ``PZ_TEST_EDITOR_HASH`` (optional: the editor UI is on, for
user ``editor`` with that password hash), ``PZ_TEST_LEARNING`` (optional: in-process
learning, saving its models to the shared state after every lesson).

``/`` answers what the slots show as JSON (an HTML page, so its page view is recorded), with
the visitor's profile key and page views as this worker sees them; ``/counts`` the exposures
of every arm as this worker sees them; ``/stats`` its profile near-cache's counters.
"""

from __future__ import annotations

import os

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from personalize import PersonalizeMiddleware, Personalizer, SQLiteStore, get_visitor
from personalize.learning.runtime import LocalLearning
from personalize.stores.base import ProfileStore

SECRET = "change-me-to-32-random-characters"


def store_from_env() -> ProfileStore:
    where = os.environ["PZ_TEST_STORE"]
    if where.startswith("redis://"):
        from personalize.stores.redis import RedisStore

        return RedisStore(where, prefix=os.environ.get("PZ_TEST_PREFIX", "pztest:"))
    return SQLiteStore(where)


async def home(request: Request) -> Response:
    visitor = get_visitor(request)
    shown: dict[str, object] = {}
    for slot in ("hero", "teaser"):
        decision = await visitor.decide(slot)
        shown[slot] = decision.variant
        shown[f"{slot}_why"] = decision.explanation.lines()
    shown["key"] = visitor.profile_key
    shown["page_views"] = visitor.profile.page_views
    return Response(orjson.dumps(shown), media_type="text/html")


async def health(request: Request) -> Response:
    return Response("ok")


def create_app() -> PersonalizeMiddleware:
    """The site, configured from the environment."""
    personalizer = Personalizer(
        secret_key=SECRET,
        store=store_from_env(),
        content=os.environ["PZ_TEST_CONTENT"],
        flush_interval=0.01,
        state_cache_ttl=float(os.environ.get("PZ_TEST_STATE_TTL", "1")),
        learning=(
            LocalLearning(snapshot_every=0.0) if os.environ.get("PZ_TEST_LEARNING") else None
        ),
        admin_users=(
            {"editor": os.environ["PZ_TEST_EDITOR_HASH"]}
            if "PZ_TEST_EDITOR_HASH" in os.environ
            else None
        ),
    )

    async def counts(request: Request) -> JSONResponse:
        engine = personalizer.decisions
        assert engine is not None
        slots = engine.library.slots
        arms = [f"{name}/{v}" for name, slot in slots.items() for v in slot.variants]
        keys = [f"arm:{arm}|*" for arm in arms]
        found = await personalizer.state.counters(keys)
        trials = {arm: found[k].get("trials", 0.0) for arm, k in zip(arms, keys, strict=True)}
        return JSONResponse(trials)

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(personalizer.profiles.stats)

    routes = [
        Route("/", home),
        Route("/counts", counts),
        Route("/stats", stats),
        Route("/health", health),
    ]
    return PersonalizeMiddleware(Starlette(routes=routes), personalizer)
