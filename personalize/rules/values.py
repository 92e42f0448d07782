"""Checking the value of a rule leaf against its attribute, and putting it in the form the
operator uses: numbers for comparisons, frozensets for lists, compiled patterns.

Each operator (:mod:`personalize.rules.operators`) names the parser its value goes through.
``matches`` patterns compile with RE2 (``google-re2``), whose matching time is linear in the
input: no pattern an editor writes can make a request take exponential time. What RE2 does not
support (backreferences, lookaround) is refused when the file is loaded.

>>> from personalize.rules.attributes import lookup
>>> number("visits", lookup("visits"), 3)
3
>>> scalar("country", lookup("country"), "gb")
'GB'
>>> number("visits", lookup("visits"), "3")
Traceback (most recent call last):
...
personalize.exceptions.RuleValueError: expected a number, not the text '3'
>>> pattern("(?=lookahead)")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
personalize.exceptions.RuleValueError: pattern '(?=lookahead)' is not supported: ...
"""

from __future__ import annotations

import math
import re
from typing import Any, Protocol

import re2

from personalize.exceptions import RuleValueError
from personalize.rules.attributes import WEEKDAYS, Attribute, label, suggest

__all__ = [
    "MAX_LIST",
    "MAX_PATTERN",
    "Pattern",
    "is_number",
    "kind_of",
    "number",
    "pattern",
    "scalar",
    "weekday_number",
]

MAX_PATTERN = 200  # characters in a `matches` pattern
MAX_LIST = 1000  # values in an `in` / `not_in` list
_RE2 = re2.Options()
_RE2.log_errors = False  # refused patterns are reported to the editor, not logged to stderr
_RE2.never_capture = True  # rules only ask whether there is a match


class Pattern(Protocol):
    """A compiled ``matches`` pattern (RE2)."""

    @property
    def pattern(self) -> str: ...

    def search(self, text: str) -> object | None: ...


def is_number(x: object) -> bool:
    """An int or a float, but not a bool (``True > 0`` must not make a rule match)."""
    return isinstance(x, int | float) and not isinstance(x, bool)


def kind_of(value: object) -> str:
    """What a value is, in an editor's words, for error messages."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    return {list: "a list", bool: "true/false", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def number(name: str, attribute: Attribute, value: object) -> float:
    """A finite number, within the attribute's bounds; weekday names for ``weekday``."""
    if name == "weekday" and isinstance(value, str):
        found = weekday_number(value)
        if found is None:
            raise RuleValueError(f"{value[:40]!r} is not a weekday: monday ... sunday, or 0-6")
        return found
    if not is_number(value) or not math.isfinite(value):  # type: ignore[arg-type]
        raise RuleValueError(f"expected a number, not {kind_of(value)}")
    return value  # type: ignore[return-value]


def bounded(name: str, attribute: Attribute, value: float) -> float:
    """``value`` if the attribute can take it at all (an hour of 25 never matches)."""
    if attribute.bounds and not attribute.bounds[0] <= value <= attribute.bounds[1]:
        low, high = attribute.bounds
        raise RuleValueError(f"{name} is {low} to {high}, so {value:g} never matches")
    return value


def scalar(name: str, attribute: Attribute, value: object, *, element: bool = False) -> Any:
    """One value of the attribute's type (``element``: one member of a set attribute)."""
    kind = attribute.type
    if value is None or isinstance(value, list | dict):
        raise RuleValueError(f"expected a single value, not {kind_of(value)}")
    if kind in ("number", "timestamp"):
        return bounded(name, attribute, number(name, attribute, value))
    if kind == "bool":
        if not isinstance(value, bool):
            raise RuleValueError(f"{name} is true or false, not {kind_of(value)}")
        return value
    if kind in ("text", "set") and not isinstance(value, str):
        quote = "; YAML reads yes/no/on/off as true/false: put the value in quotes"
        extra = quote if isinstance(value, bool) else "; put it in quotes"
        raise RuleValueError(f"{name} is text, not {kind_of(value)}{extra}")
    if kind == "any" and not isinstance(value, str | int | float | bool):
        raise RuleValueError(f"expected text, a number or true/false, not {kind_of(value)}")
    if isinstance(value, str):
        if name in ("country", "continent"):
            value = value.upper()
        elif name in ("language", "languages"):
            value = value.lower()
        if attribute.choices and value not in attribute.choices and not element:
            raise RuleValueError(
                f"{value[:40]!r} is not a {label(name)}{suggest(value, attribute.choices)}; "
                f"one of {', '.join(attribute.choices)}"
            )
    return value


def pattern(value: object) -> Pattern:
    """A ``matches`` pattern compiled with RE2; RuleValueError for what RE2 refuses."""
    if not isinstance(value, str) or not value:
        raise RuleValueError(f"matches needs a regular expression as text, not {kind_of(value)}")
    if len(value) > MAX_PATTERN:
        raise RuleValueError(f"pattern longer than {MAX_PATTERN} characters")
    try:
        re.compile(value)
    except re.error as exc:
        raise RuleValueError(
            f"pattern {value[:40]!r} is not a valid regular expression: {exc}"
        ) from None
    try:
        compiled: Pattern = re2.compile(value, _RE2)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RuleValueError(
            f"pattern {value[:40]!r} is not supported: {reason} (patterns use RE2 syntax: no "
            "backreferences or lookaround)"
        ) from None
    return compiled


def weekday_number(value: object) -> int | None:
    """A weekday name ("saturday", "Sat") as its number (Monday is 0); None if it is not one.

    >>> weekday_number("Saturday"), weekday_number("sun"), weekday_number("someday")
    (5, 6, None)
    """
    if not isinstance(value, str) or len(value) < 3:
        return None
    text = value.strip().lower()
    for number, day in enumerate(WEEKDAYS):
        if day == text or (len(text) >= 3 and day.startswith(text)):
            return number
    return None
