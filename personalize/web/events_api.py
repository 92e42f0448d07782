"""``POST /_personalize/events``: events from other channels, server to server.

Authenticated with ``Authorization: Bearer <api key>`` (keys from the middleware's
``api_keys``). The body is one event or a list of up to 1,000::

    {"type": "order", "user_id": "ann", "ts": "2026-11-26T10:00:00+00:00",
     "properties": {"order_id": "o-17", "products": ["boots-42"], "value": 89.0}}

``type`` is ``order`` (order_id, products, value), ``return`` (order_id, products),
``ticket`` (ticket_id, status: open | closed), ``preference`` (what the visitor said, e.g.
from a preference centre: ``{"promotions": "never", "interest.shoes": "less", "origin":
"call_centre"}``, see :mod:`personalize.profiles.preferences`; categories must be the site's)
or ``custom`` (with a ``name``). Each event names ``user_id`` or ``visitor_id``, checked
as a login checks a user id (no placeholders such as "null", no control characters).

Invalid input gets a 4xx and nothing is stored: a body that is not UTF-8 JSON 400, invalid
events 422 with every problem listed by index (numbers must be finite; an order's value is
at most 10^12, and an order that would take a profile's revenue past 10^15 is refused).
Valid events are stored atomically per profile before the 202 answer. 503 (with
Retry-After) means the store could not be reached and nothing was stored: send them again.
Then ``stored`` (the site's learning) hears of them: an order converts the session it
happened in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from personalize.exceptions import EventError, StoreError
from personalize.profiles.events import REVENUE_OVERFLOW, Event, parse_event, revenue_overflow
from personalize.services.profiles import ProfileService
from personalize.web.apikeys import ApiKeys

if TYPE_CHECKING:
    from personalize.visitor import Visitor

__all__ = ["EventsApi"]

logger = logging.getLogger("personalize")

MAX_BODY = 1024 * 1024  # bytes
MAX_EVENTS_PER_REQUEST = 1000


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


class EventsApi:
    """``POST <prefix>/events`` for the events of one site's profile service."""

    def __init__(
        self,
        profiles: ProfileService,
        keys: ApiKeys,
        categories: Sequence[str] = (),
        *,
        stored: Callable[[Mapping[str, Sequence[Event]]], Awaitable[object]] | None = None,
    ) -> None:
        self.profiles = profiles
        self.keys = keys
        self.categories = tuple(categories)  # the site's interest categories
        self.stored = stored

    async def post(self, request: Request, visitor: Visitor) -> Response:
        """Validate every event, then store them all; see the module docstring."""
        if not self.keys:
            return _error(403, "the events API is disabled: configure api_keys on the middleware")
        if not self.keys.allow(request.headers):
            return JSONResponse(
                {"error": "missing or wrong API key (Authorization: Bearer <key>)"},
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
        if not request.headers.get("content-type", "").startswith("application/json"):
            return _error(415, "send the events as application/json")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _error(413, f"body larger than {MAX_BODY} bytes")
        try:
            payload = json.loads(body.decode("utf-8-sig"))  # a BOM is allowed, as before
        except RecursionError:
            return _error(400, "body is nested too deeply")
        except UnicodeDecodeError as exc:
            return _error(400, f"body is not UTF-8: {exc}")
        except ValueError as exc:
            return _error(400, f"body is not valid JSON: {exc}")
        items = payload if isinstance(payload, list) else [payload]
        if not items:
            return _error(422, "no events given")
        if len(items) > MAX_EVENTS_PER_REQUEST:
            return _error(413, f"at most {MAX_EVENTS_PER_REQUEST} events per request")
        problems = []
        by_key: dict[str, list[Event]] = {}
        indexes: dict[str, list[int]] = {}
        junk = self.profiles.junk_user_ids
        for index, item in enumerate(items):
            try:
                key, event = parse_event(item, categories=self.categories, junk=junk)
            except EventError as exc:
                problems.append({"index": index, "error": str(exc)})
                continue
            by_key.setdefault(key, []).append(event)
            indexes.setdefault(key, []).append(index)
        if problems:
            return _error(422, "invalid events; nothing was stored", problems=problems)
        try:
            problems = await self._overflows(by_key, indexes)
            if problems:
                return _error(422, "invalid events; nothing was stored", problems=problems)
            await self.profiles.ingest(by_key)
        except StoreError as exc:  # unreachable: nothing was stored, the sender retries
            return JSONResponse(
                {"error": f"profile store unavailable ({type(exc).__name__}); retry later"},
                status_code=503,
                headers={"retry-after": "5"},
            )
        if self.stored is not None:
            try:
                await self.stored(by_key)
            except Exception:  # stored already: learning missing an order is no reason to fail
                logger.exception("personalize: learning could not take the stored events")
        return JSONResponse({"accepted": len(items)}, status_code=202)

    async def _overflows(
        self, by_key: Mapping[str, Sequence[Event]], indexes: Mapping[str, Sequence[int]]
    ) -> list[dict[str, Any]]:
        """Orders that would take their profile's revenue past its bound, as problems."""
        problems = []
        for key, events in by_key.items():
            if not any(e.kind == "order" for e in events):
                continue
            at = revenue_overflow(await self.profiles.read(key), events)
            if at is not None:
                problems.append({"index": indexes[key][at], "error": REVENUE_OVERFLOW})
        return sorted(problems, key=lambda p: p["index"])
