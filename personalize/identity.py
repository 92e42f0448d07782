"""Which user ids may bind a visitor: the guard against over-merging.

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

DEFAULT_JUNK_IDS = frozenset(
    {
        "",
        "0",
        "-1",
        "1",
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
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise IdentityError("user id contains control characters")
    return text
