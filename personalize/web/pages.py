"""Server-rendered pages of the middleware (editor UI, the visitor's own page): shared plumbing.

Templates live in ``personalize/templates`` and render in a sandboxed, autoescaping Jinja2
environment, so anything an editor wrote (descriptions, variant HTML shown as source) is
escaped. Every page is private and never stored by any cache, and may not be framed; the CSS
is served by the middleware itself (no external assets).

>>> form = parse_form(b"a=1&b=x%20y&b=z")
>>> form.get("a"), form.getlist("b"), form.get("missing", "-")
('1', ['x y', 'z'], '-')
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from starlette.datastructures import MultiDict
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from personalize.exceptions import FormError

if TYPE_CHECKING:
    from personalize.visitor import Visitor

__all__ = ["NO_STORE", "parse_form", "read_form", "render", "stylesheet", "text"]

MAX_FORM = 64 * 1024  # bytes of a form post
MAX_FIELDS = 1000
NO_STORE = "private, no-store"
SECURITY_HEADERS = {
    "cache-control": NO_STORE,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}

ENVIRONMENT = SandboxedEnvironment(
    loader=jinja2.PackageLoader("personalize", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a typo in our own templates fails the tests
    trim_blocks=True,
    lstrip_blocks=True,
)
CSS = resources.files("personalize").joinpath("static/pages.css").read_bytes()
CSS_ETAG = '"' + hashlib.sha256(CSS).hexdigest()[:16] + '"'


def _when(ts: object) -> str:
    """Seconds since the epoch as a readable UTC time ('' for nothing)."""
    from datetime import UTC, datetime

    if not isinstance(ts, int | float) or isinstance(ts, bool):
        return ""
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return ""


_TIMED = ("_at", "_seen", "last", "ts")  # keys whose numbers are times


def _fact(value: object, key: str = "") -> str:
    """A stored fact for people: times as dates, mappings as ``key: value`` lists.

    >>> _fact({"boot-7": 1_700_000_000.0}, "purchased"), _fact(1_700_000_000.5, "last_seen")
    ('boot-7: 2023-11-14 22:13 UTC', '2023-11-14 22:13 UTC')
    >>> _fact({"t-1": {"status": "open", "topic": "delivery"}}), _fact(238.0, "revenue")
    ('t-1: (status: open, topic: delivery)', '238.0')
    """
    if isinstance(value, dict):
        inner = "last_seen" if key == "purchased" else ""  # product id -> when it was bought
        parts = []
        for k, v in sorted(value.items(), key=lambda item: str(item[0])):
            shown = _fact(v, inner or str(k))
            parts.append(f"{k}: ({shown})" if isinstance(v, dict) else f"{k}: {shown}")
        return ", ".join(parts)
    if key.endswith(_TIMED) and isinstance(value, int | float) and not isinstance(value, bool):
        return _when(value) or str(value)
    return str(value)


ENVIRONMENT.filters["when"] = _when
ENVIRONMENT.filters["fact"] = _fact


def render(
    template: str,
    prefix: str,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render ``template`` as a private, unframeable, never-cached page; ``prefix`` is where
    the built-in endpoints live (links and the stylesheet)."""
    html = ENVIRONMENT.get_template(template).render(prefix=prefix, **context)
    return HTMLResponse(
        html, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})}
    )


def text(message: str, status_code: int, headers: dict[str, str] | None = None) -> Response:
    """A short plain-text answer (errors), never cached."""
    return PlainTextResponse(
        message, status_code=status_code, headers={"cache-control": NO_STORE, **(headers or {})}
    )


def parse_form(body: bytes) -> MultiDict:
    """An ``application/x-www-form-urlencoded`` body as a MultiDict; FormError when invalid."""
    try:
        decoded = body.decode("utf-8")
        pairs = parse_qsl(
            decoded, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormError(400, f"the form could not be read: {exc}") from None
    return MultiDict(pairs)


async def read_form(request: Request) -> MultiDict:
    """The posted form (URL-encoded, at most MAX_FORM bytes); FormError otherwise."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise FormError(415, "post the form as application/x-www-form-urlencoded")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise FormError(413, f"the form is larger than {MAX_FORM} bytes")
    return parse_form(bytes(body))


async def stylesheet(request: Request, visitor: Visitor) -> Response:
    """The stylesheet of the middleware's pages."""
    headers = {"etag": CSS_ETAG, "cache-control": "public, max-age=3600"}
    if request.headers.get("if-none-match") == CSS_ETAG:
        return Response(status_code=304, headers=headers)
    return Response(CSS, media_type="text/css", headers=headers)
