"""Who may use the editor UI: HTTP Basic authentication against ``admin_users``, CSRF on posts.

Basic authentication works the same from a browser, ``curl -u`` and Playwright's
``http_credentials``. A missing or wrong header gets ``401`` with a challenge and nothing else;
failed attempts are counted per client in memory, and a client with too many recent failures
gets ``429`` before any password is checked. Unknown user names cost as much as known ones.
Every form post must carry the CSRF token issued to the same editor and, when the browser says
where the form came from (``Origin`` / ``Referer``), come from this host.

>>> parse_basic("Basic " + base64.b64encode(b"ann:s3cret:with:colons").decode())
('ann', 's3cret:with:colons')
>>> parse_basic("Bearer abc") is None, parse_basic("Basic !!!") is None, parse_basic(None) is None
(True, True, True)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import secrets
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MultiDict
from starlette.requests import Request
from starlette.responses import Response

from personalize.csrf import FIELD, CsrfSigner, same_origin
from personalize.endpoints import endpoint
from personalize.pages import FormError, read_form, text
from personalize.passwords import hash_password, is_password_hash, verify_password

if TYPE_CHECKING:
    from personalize.middleware import PersonalizeMiddleware
    from personalize.visitor import Visitor

logger = logging.getLogger("personalize.admin")

REALM = 'Basic realm="personalize editor", charset="UTF-8"'
MAX_FAILURES = 10  # failed attempts per client ...
FAILURE_WINDOW = 600.0  # ... within this many seconds, then 429 until the oldest one ages out
_MAX_CLIENTS = 10_000  # clients tracked; the oldest are dropped first
_MAX_HEADER = 1024
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
DISABLED = (
    "The editor UI is disabled. Enable it with PersonalizeMiddleware(admin_users={'<name>': "
    "'<hash>'}); make the hash with `personalize hash-password`. There is no default password."
)
_dummy: list[str] = []
_dummy_lock = threading.Lock()


@dataclass(slots=True)
class Editor:
    """The authenticated editor of a request, the CSRF token for their forms, and the post."""

    name: str
    csrf: str
    form: MultiDict = field(default_factory=MultiDict)


@dataclass(slots=True)
class AdminState:
    """What the editor UI keeps per middleware, in memory."""

    csrf: CsrfSigner
    salt: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)
    cache: dict[str, tuple[float, Any]] = field(default_factory=dict)  # page caches (members)
    write_lock: threading.Lock = field(default_factory=threading.Lock)


_states: weakref.WeakKeyDictionary[PersonalizeMiddleware, AdminState] = weakref.WeakKeyDictionary()


def state_of(pz: PersonalizeMiddleware) -> AdminState:
    """The editor UI's state for this middleware (created on first use)."""
    state = _states.get(pz)
    if state is None:
        # A CSRF key derived from the cookie secret: every worker of the site accepts the
        # forms of every other.
        secret = pz.cookies.signing_secret
        state = _states[pz] = AdminState(CsrfSigner(secret, purpose="admin"))
    return state


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """``(user, password)`` from an ``Authorization: Basic`` header, or None."""
    if not header or len(header) > _MAX_HEADER:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or not user or not password:
        return None
    return user, password


def _dummy_hash() -> str:
    # Checked for unknown user names so they take as long as known ones.
    with _dummy_lock:
        if not _dummy:
            _dummy.append(hash_password(secrets.token_urlsafe(24)))
        return _dummy[0]


def _client(request: Request, pz: PersonalizeMiddleware, state: AdminState) -> str:
    peer = request.client.host if request.client else None
    headers = request.headers
    ip = pz.context.ips.resolve(peer, headers.get("x-forwarded-for"), headers.get("forwarded"))
    # Only a keyed digest is kept (in memory, for the rate limit): never the address.
    return hashlib.blake2b((ip or "?").encode(), key=state.salt, digest_size=12).hexdigest()


def _recent(state: AdminState, client: str, now: float) -> deque[float]:
    times = state.failures.get(client)
    if times is None:
        return deque()
    while times and times[0] < now - FAILURE_WINDOW:
        times.popleft()
    if not times:
        del state.failures[client]
    return times


def _fail(state: AdminState, client: str, now: float) -> None:
    times = state.failures.setdefault(client, deque(maxlen=MAX_FAILURES))
    state.failures.move_to_end(client)
    times.append(now)
    while len(state.failures) > _MAX_CLIENTS:
        state.failures.popitem(last=False)


def _challenge() -> Response:
    return text("Authentication required.", 401, {"www-authenticate": REALM})


async def authenticate(request: Request, pz: PersonalizeMiddleware) -> str | Response:
    """The editor's name, or the response that refuses the request."""
    if not pz.admin_users:
        return text(DISABLED, 404)
    state = state_of(pz)
    client = _client(request, pz, state)
    now = time.monotonic()
    recent = _recent(state, client, now)
    if len(recent) >= MAX_FAILURES:
        wait = max(1, int(recent[0] + FAILURE_WINDOW - now) + 1)
        return text("Too many failed attempts; try again later.", 429, {"retry-after": str(wait)})
    credentials = parse_basic(request.headers.get("authorization"))
    if credentials is None:
        if request.headers.get("authorization"):
            _fail(state, client, now)
        return _challenge()
    user, password = credentials
    hashed = pz.admin_users.get(user)
    if hashed is not None and not is_password_hash(hashed):
        logger.error(
            "personalize: admin_users[%r] is not a password hash; make one with "
            "`personalize hash-password`",
            user,
        )
    target = hashed if hashed is not None else _dummy_hash()
    # scrypt takes a tenth of a second on purpose: not on the event loop.
    ok = await run_in_threadpool(verify_password, password, target)
    if not ok or hashed is None:
        _fail(state, client, now)
        logger.warning("personalize: failed editor login")
        return _challenge()
    return user


AdminHandler = Callable[[Request, "Visitor", "PersonalizeMiddleware", Editor], Awaitable[Response]]


def admin_route(
    path: str, methods: Iterable[str] = ("GET",)
) -> Callable[[AdminHandler], AdminHandler]:
    """Register an editor page at ``<prefix>/admin<path>``, behind authentication and CSRF.

    Every method reaches the guard, so without credentials no route can be told from another.
    """
    allowed = {m.upper() for m in methods}
    if "GET" in allowed:
        allowed.add("HEAD")

    def register(handler: AdminHandler) -> AdminHandler:
        async def guarded(
            request: Request, visitor: Visitor, pz: PersonalizeMiddleware
        ) -> Response:
            who = await authenticate(request, pz)
            if isinstance(who, Response):
                return who
            if request.method not in allowed:
                return text("Method Not Allowed", 405, {"allow": ", ".join(sorted(allowed))})
            state = state_of(pz)
            subject = f"editor:{who}"
            editor = Editor(who, state.csrf.token(subject))
            if request.method == "POST":
                try:
                    editor.form = await read_form(request)
                except FormError as exc:
                    return text(str(exc), exc.status)
                if not same_origin(request.headers):
                    return text("Refused: this form was posted from another site.", 403)
                if not state.csrf.check(editor.form.get(FIELD), subject):
                    return text(
                        "Refused: the form's security token is missing or expired. Go back, "
                        "reload the page and submit again.",
                        403,
                    )
            return await handler(request, visitor, pz, editor)

        guarded.__doc__ = handler.__doc__
        endpoint("/admin" + path, methods=ALL_METHODS)(guarded)
        return handler

    return register
