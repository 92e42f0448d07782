"""The decision endpoints under ``/_personalize``: slots for single-page apps, the beacon.

- ``GET /slots?slot=hero&slot=banner``: ``{"decisions": [{slot, id, variant, html, why}]}``;
- ``POST /collect``: ``{"decision_id": "...", "type": "click" | "conversion", "value": 12.5}``
  from the beacon (``text/plain`` as ``navigator.sendBeacon`` sends it, or JSON); 204 when
  counted, 4xx with the problem otherwise;
- ``GET /beacon.js``: the script (< 2 KB) that reports clicks on ``[data-pz-decision]``
  elements and ``window.personalize.convert(decisionId, value)``.

>>> len(BEACON) < 2048, ETAG.startswith('"')
(True, True)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from personalize.content.decisions import DecisionEngine
from personalize.profiles.bounds import amount_problem

if TYPE_CHECKING:
    from personalize.visitor import Visitor

__all__ = ["DecisionsApi", "beacon"]

MAX_BODY = 2048  # bytes: a beacon is one small JSON object
MAX_SLOTS = 20  # per /slots request
BEACON = resources.files("personalize").joinpath("static/beacon.js").read_bytes()
ETAG = '"' + hashlib.sha256(BEACON).hexdigest()[:16] + '"'
_TYPES = ("click", "conversion")
_NO_CONTENT = "no content configured: pass content='content/' to PersonalizeMiddleware"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _parse(body: bytes) -> dict[str, Any] | str:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # absurd nesting too
        return "body is not valid JSON"
    if not isinstance(data, dict):
        return "body is a JSON object {decision_id, type}"
    extra = set(data) - {"decision_id", "type", "value"}
    if extra:
        return f"unknown fields: {', '.join(sorted(extra))[:100]}"
    if not isinstance(data.get("decision_id"), str) or not 0 < len(data["decision_id"]) <= 300:
        return "decision_id must be the data-pz-decision string"
    if data.get("type") not in _TYPES:
        return "type must be click or conversion"
    value = data.get("value", 0.0)
    problem = amount_problem(value, "value")
    if problem is not None:
        return problem
    if value and data["type"] != "conversion":
        return "value is a conversion's value"
    return data


class DecisionsApi:
    """``GET <prefix>/slots`` and ``POST <prefix>/collect`` for one site's decision engine."""

    def __init__(
        self,
        decisions: DecisionEngine | None,
        converted: Callable[[Visitor, float], None] | None = None,
    ) -> None:
        self.decisions = decisions
        self.converted = converted  # a conversion also labels the visitor's session

    async def slots(self, request: Request, visitor: Visitor) -> Response:
        """The named slots' decisions for this visitor, as JSON."""
        if self.decisions is None:
            return _error(404, _NO_CONTENT)
        names = request.query_params.getlist("slot")
        if not names or len(names) > MAX_SLOTS or any(not 0 < len(n) <= 64 for n in names):
            return _error(400, f"name 1 to {MAX_SLOTS} slots: ?slot=hero&slot=banner")
        decisions = await self.decisions.decide_all(visitor, dict.fromkeys(names))
        return JSONResponse(
            {"decisions": [d.to_dict() for d in decisions.values()]},
            headers={"cache-control": "no-store"},
        )

    async def collect(self, request: Request, visitor: Visitor) -> Response:
        """A click or conversion reported by the beacon; 204 when counted."""
        if self.decisions is None:
            return _error(404, _NO_CONTENT)
        ctype = request.headers.get("content-type", "text/plain").split(";")[0].strip().lower()
        if ctype not in ("text/plain", "application/json"):
            return _error(415, "send JSON (text/plain or application/json)")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _error(413, f"body larger than {MAX_BODY} bytes")
        data = _parse(body)
        if isinstance(data, str):
            return _error(422 if body.startswith(b"{") else 400, data)
        if visitor.id is None:
            return Response(status_code=204)  # bots never feed learning
        try:
            self.decisions.record(
                data["decision_id"],
                data["type"],
                visitor_key=visitor.profile_key or "",
                value=float(data.get("value", 0.0)),
            )
        except ValueError as exc:
            return _error(422, str(exc))
        if data["type"] == "conversion" and self.converted is not None:
            self.converted(visitor, float(data.get("value", 0.0)))
        return Response(status_code=204)


async def beacon(request: Request, visitor: Visitor) -> Response:
    """The beacon script (cached by browsers for a week)."""
    headers = {
        "etag": ETAG,
        "cache-control": "public, max-age=604800, stale-while-revalidate=86400",
    }
    if request.headers.get("if-none-match") == ETAG:
        return Response(status_code=304, headers=headers)
    return Response(BEACON, media_type="text/javascript; charset=utf-8", headers=headers)
