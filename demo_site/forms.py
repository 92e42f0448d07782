"""POST forms without extra dependencies: a bounded url-encoded body parser and CSRF tokens.

Starlette's ``request.form()`` needs python-multipart; the shop only sends url-encoded forms,
so it parses them itself, with limits, and answers 4xx for anything else.

CSRF protection is the double-submit pattern: a random token in an HttpOnly, SameSite=Lax
cookie, the same token in a hidden field of every form; a POST whose field does not match the
cookie (compared in constant time) is refused with 403. A cross-site page can neither read
the cookie nor set it, so it cannot forge the pair.

>>> read_form_body(b"a=1&b=x+y&a=2")
{'a': '1', 'b': 'x y'}
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

MAX_BODY = 16 * 1024  # bytes
MAX_FIELDS = 32
CSRF_COOKIE = "demo_csrf"
CSRF_FIELD = "csrf_token"


def read_form_body(body: bytes) -> dict[str, str]:
    """The first value of each field; raises HTTPException(400) for garbage."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False,
                          max_num_fields=MAX_FIELDS, errors="strict")  # fmt: skip
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "The form could not be read.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form


async def read_form(request: Request) -> dict[str, str]:
    """The url-encoded body of a POST, checked for size, type and the CSRF token."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise HTTPException(415, "Send the form as application/x-www-form-urlencoded.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, "The form is too large.")
    form = read_form_body(body)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get(CSRF_FIELD, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
        raise HTTPException(
            403, "The form expired or did not come from this site. Reload and retry."
        )
    return form


def csrf_token(request: Request) -> str:
    """This browser's CSRF token (a new one if it has none yet; see :func:`set_csrf_cookie`)."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if not (20 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum()):
        token = request.scope.setdefault("demo.csrf", secrets.token_urlsafe(24))
    return token


def set_csrf_cookie(request: Request, response: Response) -> None:
    """Send the token cookie when this request had to make one."""
    token = request.scope.get("demo.csrf")
    if token:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="lax",
                            secure=request.url.scheme == "https")  # fmt: skip
