"""The signed, persistent visitor cookie.

The cookie carries a random visitor id and, after login, the user id it is bound to. It is
signed with itsdangerous; several secrets may be given for key rotation: the first signs, all
verify, and a cookie that only an older secret verifies is re-issued with the first.

>>> jar = VisitorCookie(["a-new-secret-of-32-characters..", "the-old-secret-still-verifies.."])
>>> value = jar.dump(CookieState(visitor_id="abc"))
>>> jar.load(value).state
CookieState(visitor_id='abc', user_id=None, consent=False, opted_out=False, epoch=0)
>>> jar.load("tampered" + value).state is None
True
"""

from __future__ import annotations

import binascii
import hmac
import json
import secrets
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from personalize.exceptions import ConfigurationError
from personalize.util.frozen import fast_init

SameSite = Literal["lax", "strict", "none"]

_MAX_COOKIE_LENGTH = 1024  # a valid cookie is ~120 characters; longer ones are not ours
_MAX_COOKIE_HEADER = 8192  # characters of a Cookie header searched for ours
# Where our cookie sits is remembered for this many Cookie headers of up to this many bytes.
_FOUND_SIZE = 8192
_MAX_FOUND_HEADER = 2048
_ID_LENGTH = 16  # bytes of randomness in a visitor id (22 URL-safe characters)
# Payloads up to this many bytes of JSON are signed uncompressed: zlib's six bytes of framing
# leave it nothing to win on a few dozen bytes of random id, and its set-up costs more than
# the rest of the signing. (Every itsdangerous reader accepts both forms.)
_COMPRESS_FROM = 65


def new_visitor_id() -> str:
    """A fresh random visitor id: 128 bits, URL-safe."""
    return secrets.token_urlsafe(_ID_LENGTH)


@dataclass(frozen=True, slots=True)
class CookieState:
    """What the cookie says: the visitor id and, after login, the bound user id.

    ``consent`` records that the visitor agreed to be remembered (consent mode "required");
    ``opted_out`` is the whole cookie of a visitor who opted out: no id at all.
    ``epoch`` is the known profile's cookie epoch when a login cookie was signed (see
    :mod:`personalize.profiles.revocation`).
    """

    visitor_id: str
    user_id: str | None = None
    consent: bool = False
    opted_out: bool = False
    epoch: int = 0


OPTED_OUT = CookieState(visitor_id="", opted_out=True)


@fast_init  # built on every request
@dataclass(frozen=True, slots=True)
class LoadedCookie:
    """The result of reading a cookie value.

    ``state`` is None for a missing, expired, malformed or tampered cookie. ``reissue`` is
    True when the cookie is valid but should be sent again: signed with an older secret, or
    older than half its lifetime (so returning visitors never expire).
    """

    state: CookieState | None
    reissue: bool = False


_NOT_LOADED = LoadedCookie(None)
_Verified = tuple[CookieState, float, bool, LoadedCookie]


class _Secret(str):
    """A secret string whose repr never shows its value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'********'"


class VisitorCookie:
    """Signs and verifies visitor cookies, with key rotation and a bounded verification cache.

    ``secret_key`` is one secret or a list of them, newest first. ``max_age`` is in seconds.
    The cookie's attributes (``name``, ``path``, ``domain``, ``same_site``, ``secure``) are
    used by :meth:`find` and :meth:`set_cookie`; ``secure=None`` sets Secure on https only.
    """

    def __init__(
        self,
        secret_key: str | Sequence[str],
        *,
        max_age: int = 365 * 24 * 3600,  # seconds
        name: str = "pz_visitor",
        path: str = "/",
        domain: str | None = None,
        same_site: SameSite = "lax",
        secure: bool | None = None,
        salt: str = "personalize.visitor",
        cache_size: int = 65536,
        clock: Callable[[], float] = time.time,
    ) -> None:
        keys = [secret_key] if isinstance(secret_key, str) else list(secret_key)
        if not keys or any(not isinstance(k, str) or len(k) < 16 for k in keys):
            raise ConfigurationError(
                "secret_key must be a string of at least 16 characters, or a non-empty list "
                "of them (newest first); generate one with: "
                'python -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        if max_age <= 0:
            raise ConfigurationError(f"cookie max_age must be positive seconds, got {max_age!r}")
        self._keys = [_Secret(k) for k in keys]
        self.max_age = max_age
        self._clock = clock
        # itsdangerous signs with the *last* key of the list and verifies with all of them.
        # Signed with the time of ``clock``, as it is checked (itsdangerous reads time.time).
        signer = _clock_signer(clock) if clock is not time.time else TimestampSigner
        self._current = URLSafeTimedSerializer(self._keys[0], salt=salt, signer=signer)
        self._all = URLSafeTimedSerializer(list(reversed(self._keys)), salt=salt, signer=signer)
        # The newest secret's derived key, once: itsdangerous derives it again for every value.
        self._signing_key: bytes | None = self._current.make_signer().derive_key()
        if self._current.loads(self._sign({"v": "probe"}, int(clock()))) != {"v": "probe"}:
            self._signing_key = None  # (a signer unlike TimestampSigner's: let it sign)
        # Verified values: (state, when signed, signed with an older secret, what load() says
        # of it while it is young enough not to be re-issued).
        self._cache: OrderedDict[str, _Verified] = OrderedDict()
        # Raw Cookie header -> this cookie's value in it, when it was signed, what load()
        # says of it while it is young enough not to be re-issued (verified values only).
        self._found: dict[bytes, tuple[str, float, LoadedCookie]] = {}
        self._cache_size = cache_size
        if same_site not in ("lax", "strict", "none"):
            raise ConfigurationError(f"cookie same_site is lax, strict or none, not {same_site!r}")
        if same_site == "none" and secure is False:
            raise ConfigurationError(
                "cookie_same_site='none' needs cookie_secure (browsers demand it)"
            )
        self.name = name
        self._prefix = name + "="
        attributes = f"; Path={path}; Max-Age={max_age}; HttpOnly"
        if domain:
            attributes += f"; Domain={domain}"
        self._attributes = attributes + f"; SameSite={same_site.capitalize()}"
        self._secure = secure

    def __repr__(self) -> str:
        return f"VisitorCookie(secret_key=[{len(self._keys)} secrets], max_age={self.max_age})"

    @property
    def signing_secret(self) -> str:
        """The newest secret, the one that signs new cookies. Other signers of the site (CSRF
        tokens of the editor UI and of /me) derive their keys from it with a purpose of their
        own, so every worker accepts what every other signed.

        >>> cookies = VisitorCookie(["new-secret-0123456789abcdef", "old-secret-0123456789abcdef"])
        >>> cookies.signing_secret
        'new-secret-0123456789abcdef'
        """
        return str(self._keys[0])

    def read(self, header: bytes | None) -> LoadedCookie:
        """:meth:`load` of this cookie in a raw ``Cookie`` header, as ASGI gives it; a header
        whose cookie verified is remembered by its bytes (with the verified value).

        >>> jar = VisitorCookie("s" * 32)
        >>> value = jar.dump(CookieState(visitor_id="abc"))
        >>> jar.read(b"theme=dark; pz_visitor=" + value.encode()).state.visitor_id
        'abc'
        >>> jar.read(None).state, jar.read(b"pz_visitor=forged").state
        (None, None)
        """
        if not header:
            return _NOT_LOADED
        found = self._found.get(header)
        if found is not None:
            # load() of a value verified before, written out: this runs for every request.
            age = self._clock() - found[1]
            if age > self.max_age / 2 or age < -300:
                return self.load(found[0])  # (expired, from the future, or to re-issue)
            return found[2]
        value = self.find(header.decode("latin-1"))
        if value is None:
            return _NOT_LOADED
        loaded = self.load(value)
        cached = self._cache.get(value)  # (verified: the header is remembered with it)
        if cached is not None and len(header) <= _MAX_FOUND_HEADER:
            memo = self._found
            if len(memo) >= _FOUND_SIZE:
                memo.pop(next(iter(memo)), None)  # the oldest: first in, first out
            memo[header] = (value, cached[1], cached[3])
        return loaded

    def find(self, header: str | None) -> str | None:
        """The value of this cookie in a ``Cookie`` header (the first, if repeated).

        >>> jar = VisitorCookie("s" * 32)
        >>> jar.find('a=1; xpz_visitor=no; b pz_visitor=no;\tpz_visitor="v1" ; pz_visitor=v2')
        'v1'
        >>> jar.find("pz_visitor =v1; pz_visitor"), jar.find("pz_visitor=")
        (None, '')
        """
        if not header or len(header) > _MAX_COOKIE_HEADER:
            return None
        # Find our cookie by name without splitting every cookie of the site.
        prefix = self._prefix
        start = header.find(prefix)
        while start != -1:
            # A name, not the end of another one: only whitespace since the last ";".
            before = header[header.rfind(";", 0, start) + 1 : start]
            if not before or before.isspace():
                end = header.find(";", start)
                value = header[start + len(prefix) : end if end != -1 else len(header)]
                return value.strip().strip('"')
            start = header.find(prefix, start + 1)
        return None

    def set_cookie(self, state: CookieState, *, https: bool) -> bytes:
        """The ``Set-Cookie`` header value that gives the browser ``state``.

        >>> VisitorCookie("s" * 32).set_cookie(OPTED_OUT, https=True).endswith(b"; Secure")
        True
        """
        secure = https if self._secure is None else self._secure
        header = f"{self.name}={self.dump(state)}{self._attributes}"
        return (header + "; Secure" if secure else header).encode("latin-1")

    def dump(self, state: CookieState) -> str:
        """Sign ``state`` into a cookie value with the newest secret."""
        if state.opted_out:
            return self._sign({"o": 1}, int(self._clock()))
        payload: dict[str, Any] = {"v": state.visitor_id}
        if state.user_id is not None:
            payload["u"] = state.user_id
            if state.epoch:
                payload["e"] = state.epoch
        if state.consent:
            payload["c"] = 1
        stamp = int(self._clock())
        value = self._sign(payload, stamp)
        if len(value) <= _MAX_COOKIE_LENGTH:  # the browser sends it back: verified already
            self._remember(value, (state, float(stamp), False, LoadedCookie(state)))
        return value

    def _sign(self, payload: dict[str, Any], stamp: int) -> str:
        """``URLSafeTimedSerializer.dumps(payload)`` with the newest secret at time ``stamp``,
        in its format (JSON, base64, timestamp, HMAC-SHA1 with the derived key), in one step."""
        key = self._signing_key
        if key is None:
            return self._current.dumps(payload)
        try:  # the same bytes as json.dumps(ensure_ascii=False, compact separators)
            data = orjson.dumps(payload)
        except orjson.JSONEncodeError:  # (what orjson refuses, json may take)
            data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        packed = _b64(data)
        if len(data) >= _COMPRESS_FROM:
            compressed = zlib.compress(data)
            if len(compressed) < len(data) - 1:
                packed = b"." + _b64(compressed)
        value = packed + b"." + _b64(stamp.to_bytes(8, "big").lstrip(b"\0"))
        return (value + b"." + _b64(hmac.digest(key, value, "sha1"))).decode("ascii")

    def _remember(self, value: str, verified: _Verified) -> None:
        self._cache[value] = verified
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def load(self, value: str | None) -> LoadedCookie:
        """Verify a cookie value; anything wrong with it gives ``LoadedCookie(None)``."""
        if not value or len(value) > _MAX_COOKIE_LENGTH:
            return _NOT_LOADED
        now = self._clock()
        cached = self._cache.get(value)
        if cached is None:
            cached = self._verify(value)
            if cached is None:
                return _NOT_LOADED
            self._remember(value, cached)
        state, signed_at, old_key, loaded = cached
        age = now - signed_at
        if age > self.max_age or age < -300:  # expired, or signed in the future (clock skew)
            self._cache.pop(value, None)
            return _NOT_LOADED
        if age > self.max_age / 2 and not old_key:
            return LoadedCookie(state, reissue=True)
        return loaded  # (the same object each time: it is frozen)

    def _verify(self, value: str) -> _Verified | None:
        old_key = False
        try:
            payload, signed_at = self._current.loads(value, return_timestamp=True)
        except BadSignature:
            if len(self._keys) == 1:
                return None
            try:
                payload, signed_at = self._all.loads(value, return_timestamp=True)
            except BadSignature:
                return None
            old_key = True
        except Exception:  # malformed payloads can raise beyond BadSignature
            return None
        state = _state_from_payload(payload)
        if state is None:
            return None
        return state, signed_at.timestamp(), old_key, LoadedCookie(state, reissue=old_key)


def _b64(data: bytes) -> bytes:
    """``base64.urlsafe_b64encode(data)`` without padding (and its two Python frames)."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _state_from_payload(payload: object) -> CookieState | None:
    if not isinstance(payload, dict):
        return None
    if payload.get("o") == 1:
        return OPTED_OUT
    visitor_id = payload.get("v")
    user_id = payload.get("u")
    if not isinstance(visitor_id, str) or not 0 < len(visitor_id) <= 64:
        return None
    if user_id is not None and (not isinstance(user_id, str) or not 0 < len(user_id) <= 256):
        return None
    epoch = payload.get("e", 0)
    if type(epoch) is not int or not 0 <= epoch < 2**31:
        return None
    return CookieState(
        visitor_id=visitor_id, user_id=user_id, consent=payload.get("c") == 1, epoch=epoch
    )


def _clock_signer(clock: Callable[[], float]) -> type[TimestampSigner]:
    """A :class:`TimestampSigner` that stamps the time of ``clock`` (a simulated clock's
    cookies verify under the same clock)."""

    class ClockSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    return ClockSigner
