"""Who a profile belongs to: the profile key scheme, and which user ids may bind a visitor.

A profile is stored under ``u:<user id>`` once the visitor is known and ``v:<visitor id>``
while anonymous (:func:`known_key`, :func:`anonymous_key`); nothing else spells the prefixes.

>>> known_key("ann"), anonymous_key("x1"), visitor_id_of("v:x1"), visitor_id_of("u:ann")
('u:ann', 'v:x1', 'x1', None)

Sign-up forms and tag managers send placeholders ("null", "undefined", "guest"...) as user
ids; merging on one would pour thousands of strangers into a single profile. Such ids are
refused before anything is merged.

>>> check_user_id("  ann@example.com ")
'ann@example.com'
>>> check_user_id("undefined")
Traceback (most recent call last):
...
personalize.exceptions.IdentityError: refusing user id 'undefined': it is a placeholder, not a user
"""

from __future__ import annotations

from collections.abc import Iterable

from personalize.exceptions import IdentityError
from personalize.profiles.bounds import bad_text

KNOWN_PREFIX = "u:"
ANONYMOUS_PREFIX = "v:"


def known_key(user_id: str) -> str:
    """The key of a known user's profile."""
    return KNOWN_PREFIX + user_id


def anonymous_key(visitor_id: str) -> str:
    """The key of an anonymous browser's profile."""
    return ANONYMOUS_PREFIX + visitor_id


def profile_key(visitor_id: str | None, user_id: str | None) -> str | None:
    """The key a browser's profile is stored under: the user's once it is bound to one,
    else its own (None without an id: a bot, or a visitor remembered by nobody)."""
    if visitor_id is None:
        return None
    return KNOWN_PREFIX + user_id if user_id is not None else ANONYMOUS_PREFIX + visitor_id


def is_anonymous_key(key: str) -> bool:
    """True for the key of an anonymous profile (those expire; known ones do not)."""
    return key.startswith(ANONYMOUS_PREFIX)


def anonymous_key_range() -> tuple[str, str]:
    """The bounds of anonymous profiles' keys, ``low <= key < high`` (for a store that
    finds them in a sorted index).

    >>> low, high = anonymous_key_range()
    >>> low <= anonymous_key("x1") < high, low <= known_key("ann") < high
    (True, False)
    """
    last = ANONYMOUS_PREFIX[-1]
    return ANONYMOUS_PREFIX, ANONYMOUS_PREFIX[:-1] + chr(ord(last) + 1)


def visitor_id_of(key: str) -> str | None:
    """The visitor id of an anonymous profile's key; None for a known profile's key."""
    return key[len(ANONYMOUS_PREFIX) :] if key.startswith(ANONYMOUS_PREFIX) else None


def user_id_of(key: str) -> str | None:
    """The user id of a known profile's key; None for an anonymous profile's key.

    >>> user_id_of("u:ann"), user_id_of("v:x1")
    ('ann', None)
    """
    return key[len(KNOWN_PREFIX) :] if key.startswith(KNOWN_PREFIX) else None


# Not "1": it is the first user of every auto-increment users table (Django's pk).
DEFAULT_JUNK_IDS = frozenset(
    {
        "",
        "0",
        "-1",
        "null",
        "nil",
        "none",
        "undefined",
        "nan",
        "true",
        "false",
        "anonymous",
        "anon",
        "guest",
        "unknown",
        "user",
        "test",
        "n/a",
        "na",
        "[object object]",
        "{}",
        "[]",
        "00000000-0000-0000-0000-000000000000",
    }
)
MAX_USER_ID_LENGTH = 256


def check_user_id(user_id: object, junk: Iterable[str] = DEFAULT_JUNK_IDS) -> str:
    """The user id, stripped; raises :class:`IdentityError` for ids that must not merge."""
    if not isinstance(user_id, str | int) or isinstance(user_id, bool):
        raise IdentityError(f"user id must be a string, not {type(user_id).__name__}")
    text = str(user_id).strip()
    lowered = text.lower()
    junk_set = junk if isinstance(junk, frozenset | set) else frozenset(junk)
    if lowered in junk_set:
        raise IdentityError(f"refusing user id {text!r}: it is a placeholder, not a user")
    if len(text) > MAX_USER_ID_LENGTH:
        raise IdentityError(f"user id longer than {MAX_USER_ID_LENGTH} characters")
    if bad_text(text):
        raise IdentityError("user id contains control characters or lone surrogates")
    return text
