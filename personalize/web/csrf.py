"""CSRF protection for the middleware's own forms (editor UI and the visitor page).

A token is signed with a key derived from the cookie secret and names the subject it was issued
for (the editor's user name, or the visitor's profile key), so a token taken from one session is
useless in another; it expires after ``max_age`` seconds. A form post must carry a valid token
for its subject, and, when the browser sends ``Origin`` (or ``Referer``), come from this host.

>>> signer = CsrfSigner("a-cookie-secret-of-32-characters", purpose="admin")
>>> token = signer.token("editor:ann")
>>> signer.check(token, "editor:ann"), signer.check(token, "editor:bob")
(True, False)
>>> signer.check("forged", "editor:ann"), signer.check(None, "editor:ann")
(False, False)
>>> same_origin({"host": "shop.example", "origin": "https://shop.example"}, scheme="https")
True
>>> same_origin({"host": "shop.example", "origin": "https://evil.example"}, scheme="https")
False
>>> same_origin({"host": "shop.example", "origin": "https://shop.example"}, scheme="http")
False
>>> same_origin({"host": "shop.example:8443", "origin": "https://shop.example:8443"},
...             scheme="https")
True
>>> same_origin({"host": "shop.example"}, scheme="https")  # no Origin nor Referer: the token
True
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

__all__ = ["FIELD", "CsrfSigner", "same_origin"]

FIELD = "csrf_token"  # the hidden form field that carries the token
MAX_AGE = 12 * 3600  # seconds a form stays valid


class CsrfSigner:
    """Issues and checks CSRF tokens bound to a subject, for one ``purpose``."""

    def __init__(
        self,
        secret: str,
        *,
        purpose: str,
        max_age: int = MAX_AGE,  # seconds
        clock: Callable[[], float] = time.time,
    ) -> None:
        # A key of its own: a CSRF token can never be replayed as a cookie, nor the reverse.
        key = hashlib.blake2b(f"csrf:{purpose}:{secret}".encode(), digest_size=32).hexdigest()
        self._serializer = URLSafeTimedSerializer(key, salt=f"personalize.web.csrf.{purpose}")
        self._max_age = max_age
        self._clock = clock

    def __repr__(self) -> str:
        return "CsrfSigner(secret='********')"

    def token(self, subject: str) -> str:
        """A token for forms shown to ``subject``."""
        return str(self._serializer.dumps({"s": _digest(subject)}))

    def check(self, token: str | None, subject: str) -> bool:
        """True when ``token`` was issued by this signer for ``subject`` and has not expired."""
        if not token or len(token) > 512:
            return False
        try:
            data = self._serializer.loads(token, max_age=self._max_age)
        except (BadSignature, SignatureExpired, ValueError):
            return False
        issued = data.get("s") if isinstance(data, dict) else None
        return isinstance(issued, str) and hmac.compare_digest(
            issued.encode("utf-8", "surrogateescape"), _digest(subject).encode()
        )


def _digest(subject: str) -> str:
    # The token payload is readable (only signed): it carries a digest, not the user name.
    return hashlib.blake2b(subject.encode(), digest_size=16).hexdigest()


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(scheme: str, netloc: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) with the scheme's default port filled in; None if unreadable."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS.get(scheme)


def same_origin(headers: Mapping[str, str], *, scheme: str) -> bool:
    """False when ``Origin`` (or, without it, ``Referer``) names another origin than this
    request's: another scheme, host or port than ``scheme`` and the ``Host`` header."""
    host = (headers.get("host") or "").strip().lower()
    origin = headers.get("origin")
    if origin is not None:
        if origin.strip().lower() == "null":
            return False  # sandboxed frames, file:// pages, some redirects: never our form
        claimed = origin
    else:
        referer = headers.get("referer")
        if referer is None:
            return True
        claimed = referer
    try:
        parts = urlsplit(claimed.strip())
    except ValueError:
        return False
    netloc = parts.netloc.lower().rpartition("@")[2]
    seen = _origin(parts.scheme.lower(), netloc)
    ours = _origin(scheme.lower(), host)
    if seen is None or ours is None:
        return False
    # Bytes: compare_digest refuses non-ASCII str, and a Host header may hold any byte.
    return hmac.compare_digest(
        repr(seen).encode("utf-8", "surrogateescape"), repr(ours).encode("utf-8", "surrogateescape")
    )
