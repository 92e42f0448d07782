"""Who may use the editor UI: HTTP Basic authentication against ``admin_users``, rate limited.

Basic authentication works the same from a browser, ``curl -u`` and Playwright's
``http_credentials``. A missing or malformed header gets ``401`` with a challenge and counts
for nothing. Every password check is counted *before* the hash is computed, per client address
and per user name, so guesses sent in parallel count as they arrive: after ``free`` failures
within ``window`` seconds, further attempts wait an exponentially growing delay (``429`` with
``Retry-After``, no hash computed), capped at ``max_delay`` seconds for a client and
``max_user_delay`` for a user name, so nobody locks an editor out for good; a correct password
clears both. At most ``concurrency`` scrypt checks (32 MiB and ~0.1 s each) run at once in a
process; an attempt that cannot get a turn within ``queue_wait`` seconds gets ``429``. Unknown
user names cost as much as known ones.

>>> parse_basic("Basic " + base64.b64encode(b"ann:s3cret:with:colons").decode())
('ann', 's3cret:with:colons')
>>> parse_basic("Bearer abc") is None, parse_basic("Basic !!!") is None, parse_basic(None) is None
(True, True, True)
>>> limits = Backoff(free=2, window=600, max_delay=60)
>>> [limits.attempt("x", now=0.0) for _ in range(3)], limits.attempt("x", now=2.0)
([0.0, 0.0, 2.0], 0.0)
>>> limits.attempt("x", now=2.0)  # the third failure doubles the wait
4.0
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MultiDict
from starlette.requests import Request
from starlette.responses import Response

from personalize.web.admin.passwords import hash_password, is_password_hash, verify_password
from personalize.web.pages import text

__all__ = ["Backoff", "Editor", "Guard", "parse_basic"]

logger = logging.getLogger("personalize.admin")

REALM = 'Basic realm="personalize editor", charset="UTF-8"'
_MAX_TRACKED = 10_000  # clients (and user names) tracked; the least recent are dropped first
_MAX_HEADER = 1024
DISABLED = (
    "The editor UI is off: no editor account is configured, and there is no default "
    "password.\n\n"
    "In your application: PersonalizeMiddleware(..., admin_users={'<name>': '<hash>'}), "
    "with the hash printed by `personalize hash-password`.\n"
    "In the demo shop: start it with PERSONALIZE_ADMIN_USER=<name> scripts/demo (it asks "
    "for a password), or set both PERSONALIZE_ADMIN_USER and "
    "PERSONALIZE_ADMIN_PASSWORD_HASH.\n"
)
_dummy: list[str] = []
_dummy_lock = threading.Lock()


@dataclass(slots=True)
class Editor:
    """The authenticated editor of a request, the CSRF token for their forms, and the post."""

    name: str
    csrf: str
    form: MultiDict = field(default_factory=MultiDict)


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


class Backoff:
    """Failures per key with an exponential wait after ``free`` of them within ``window``.

    :meth:`attempt` counts an attempt as a failure at once (it is undone by :meth:`success`)
    and returns how long the caller must still wait (0: go ahead).
    """

    def __init__(self, *, free: int, window: float, max_delay: float) -> None:
        self.free = free
        self.window = window  # seconds after the last failure when the count starts over
        self.max_delay = max_delay  # seconds
        # key -> [failures, time of the last failure, time before which nothing is allowed]
        self._entries: OrderedDict[str, list[float]] = OrderedDict()

    def wait(self, key: str, now: float) -> float:
        """Seconds ``key`` must still wait before its next attempt (0: none)."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        if now - entry[1] > self.window:
            del self._entries[key]
            return 0.0
        return max(0.0, entry[2] - now)

    def attempt(self, key: str, now: float) -> float:
        """Count an attempt (as a failure until :meth:`success`); the wait, 0 to go ahead."""
        waiting = self.wait(key, now)
        if waiting:
            return waiting
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = [0.0, now, now]
            while len(self._entries) > _MAX_TRACKED:
                self._entries.popitem(last=False)
        self._entries.move_to_end(key)
        entry[0] += 1
        entry[1] = now
        excess = entry[0] - self.free
        if excess >= 0:  # the budget is spent: the next attempt waits 2, 4, 8... seconds
            entry[2] = now + min(2.0 ** (excess + 1), self.max_delay)
        return 0.0

    def success(self, key: str) -> None:
        """A correct password: forget the key's failures."""
        self._entries.pop(key, None)


def _dummy_hash() -> str:
    # Checked for unknown user names so they take as long as known ones.
    with _dummy_lock:
        if not _dummy:
            _dummy.append(hash_password(secrets.token_urlsafe(24)))
        return _dummy[0]


class Guard:
    """HTTP Basic authentication of editors, with the limits of the module docstring."""

    def __init__(
        self,
        users: Mapping[str, str],
        client_of: Callable[[Request], str | None],
        *,
        free: int = 10,  # failed attempts per client or user name before the waits begin
        window: float = 600.0,  # seconds
        max_delay: float = 300.0,  # seconds a client waits at most
        max_user_delay: float = 30.0,  # seconds a user name waits at most
        concurrency: int = 2,  # password hashes computed at once in this process
        queue_wait: float = 2.0,  # seconds an attempt may wait for a turn
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.users = dict(users)
        self._client_of = client_of
        self._salt = secrets.token_bytes(16)
        self.clients = Backoff(free=free, window=window, max_delay=max_delay)
        self.names = Backoff(free=free, window=window, max_delay=max_user_delay)
        self._concurrency = concurrency
        self._turns: asyncio.Semaphore | None = None
        self._turns_loop: asyncio.AbstractEventLoop | None = None
        self._queue_wait = queue_wait
        self._clock = clock
        self.checked = 0  # password hashes computed (for tests and the hostile-input runs)
        for name, hashed in self.users.items():
            if not is_password_hash(hashed):
                logger.error(
                    "personalize: admin_users[%r] is not a password hash; make one with "
                    "`personalize hash-password`",
                    name,
                )

    def _client(self, request: Request) -> str:
        # Only a keyed digest is kept (in memory, for the rate limit): never the address.
        ip = self._client_of(request) or "?"
        return hashlib.blake2b(ip.encode(), key=self._salt, digest_size=12).hexdigest()

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._turns is None or self._turns_loop is not loop:  # one per event loop
            self._turns, self._turns_loop = asyncio.Semaphore(self._concurrency), loop
        return self._turns

    async def authenticate(self, request: Request) -> str | Response:
        """The editor's name, or the response that refuses the request."""
        if not self.users:
            return text(DISABLED, 404)
        credentials = parse_basic(request.headers.get("authorization"))
        if credentials is None:  # absent or malformed: ask, count nothing
            return _challenge()
        user, password = credentials
        client, name = self._client(request), "user:" + user[:256]
        now = self._clock()
        wait = max(self.clients.wait(client, now), self.names.wait(name, now))
        if wait:
            return _too_many(wait)
        self.clients.attempt(client, now)
        self.names.attempt(name, now)
        hashed = self.users.get(user)
        target = hashed if hashed is not None and is_password_hash(hashed) else _dummy_hash()
        turns = self._semaphore()
        try:
            async with asyncio.timeout(self._queue_wait):  # wait_for may swallow a cancel
                await turns.acquire()
        except TimeoutError:
            return _too_many(self._queue_wait)
        try:
            self.checked += 1
            # scrypt takes a tenth of a second on purpose: not on the event loop.
            ok = await run_in_threadpool(verify_password, password, target)
        finally:
            turns.release()
        if not ok or hashed is None:
            logger.warning("personalize: failed editor login")
            return _challenge()
        self.clients.success(client)
        self.names.success(name)
        return user


def _challenge() -> Response:
    return text("Authentication required.", 401, {"www-authenticate": REALM})


def _too_many(wait: float) -> Response:
    seconds = str(max(1, int(wait + 0.999)))
    return text("Too many failed attempts; try again later.", 429, {"retry-after": seconds})
