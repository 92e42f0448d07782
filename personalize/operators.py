"""The operators of segment rules: tiny pure functions in a dispatch table, and their words.

Each operator takes the visitor's value and the rule's value (already checked by
:mod:`personalize.rule_values`) and returns a bool; a missing value or one of the wrong type is
simply no match, never an exception. :func:`describe` gives a condition in words and the
reason it matched, for explanations and the editor UI.

>>> OPERATORS["between"](23, (22, 5)), OPERATORS["in"](frozenset({"en", "de"}), frozenset({"de"}))
(True, True)
>>> text, reason = describe("visits", "gte", 3)
>>> text, reason(4)
('visits is at least 3', 'visits 4 is at least 3')
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from personalize.attributes import WEEKDAYS, Attribute, label, lookup

MAX_INPUT = 1024  # characters of the attribute a `matches` pattern searches
COLLECTIONS = (frozenset, set, tuple, list)


def is_number(x: object) -> bool:
    """An int or a float, but not a bool (``True > 0`` must not make a rule match)."""
    return isinstance(x, int | float) and not isinstance(x, bool)


def _eq(actual: Any, expected: Any) -> bool:
    return isinstance(actual, bool) == isinstance(expected, bool) and bool(actual == expected)


def _ne(actual: Any, expected: Any) -> bool:
    return not _eq(actual, expected)


def _in(actual: Any, expected: frozenset[Any]) -> bool:
    if isinstance(actual, COLLECTIONS):
        return not expected.isdisjoint(actual)
    return actual in expected


def _not_in(actual: Any, expected: frozenset[Any]) -> bool:
    if isinstance(actual, COLLECTIONS):
        return expected.isdisjoint(actual)
    return actual not in expected


def _gt(actual: Any, expected: float) -> bool:
    return is_number(actual) and bool(actual > expected)


def _gte(actual: Any, expected: float) -> bool:
    return is_number(actual) and bool(actual >= expected)


def _lt(actual: Any, expected: float) -> bool:
    return is_number(actual) and bool(actual < expected)


def _lte(actual: Any, expected: float) -> bool:
    return is_number(actual) and bool(actual <= expected)


def _between(actual: Any, expected: tuple[float, float]) -> bool:
    low, high = expected
    if not is_number(actual):
        return False
    if low <= high:
        return bool(low <= actual <= high)
    return bool(actual >= low or actual <= high)  # a window across midnight


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    return isinstance(actual, COLLECTIONS) and expected in actual


def _matches(actual: Any, expected: re.Pattern[str]) -> bool:
    return isinstance(actual, str) and expected.search(actual[:MAX_INPUT]) is not None


def _exists(actual: Any, expected: bool) -> bool:
    return (actual is not None) == expected


def _within_days(age_days: Any, expected: float) -> bool:
    return is_number(age_days) and bool(age_days <= expected)


OPERATORS: Mapping[str, Callable[[Any, Any], bool]] = {
    "eq": _eq,
    "ne": _ne,
    "in": _in,
    "not_in": _not_in,
    "gt": _gt,
    "gte": _gte,
    "lt": _lt,
    "lte": _lte,
    "between": _between,
    "contains": _contains,
    "matches": _matches,
    "exists": _exists,
    "within_days": _within_days,
}
_ORDER = ("gt", "gte", "lt", "lte", "between")
APPLIES: Mapping[str, tuple[str, ...]] = {  # attribute type -> operators that make sense
    "text": ("eq", "ne", "in", "not_in", "contains", "matches", "exists"),
    "number": ("eq", "ne", "in", "not_in", *_ORDER, "exists"),
    "bool": ("eq", "ne", "exists"),
    "set": ("contains", "in", "not_in", "exists"),
    "timestamp": (*_ORDER, "within_days", "exists"),
    "any": tuple(OPERATORS),
}


# -- in words -------------------------------------------------------------------------------------


def _show(value: Any, attribute: str = "", timestamp: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if attribute == "weekday" and isinstance(value, int) and 0 <= value <= 6:
        return WEEKDAYS[value].capitalize()
    if is_number(value):
        if timestamp and math.isfinite(value):
            return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M UTC")
        return f"{value:g}"
    if isinstance(value, frozenset | set | tuple | list):
        items = sorted(_show(v, attribute, timestamp) for v in value)
        return ", ".join(items[:5]) + (", ..." if len(items) > 5 else "")
    if isinstance(value, re.Pattern):
        return f"/{value.pattern}/"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


_TEXTS = {  # the condition itself, for `none` groups and descriptions
    "eq": "{l} is {e}",
    "ne": "{l} is not {e}",
    "in": "{l} is one of {e}",
    "not_in": "{l} is none of {e}",
    "gt": "{l} is more than {e}",
    "gte": "{l} is at least {e}",
    "lt": "{l} is less than {e}",
    "lte": "{l} is at most {e}",
    "between": "{l} is between {e}",
    "contains": "{l} contains {e}",
    "matches": "{l} matches {e}",
}
_REASONS = {  # why a leaf matched, with the visitor's value
    "ne": "{l} is {a}, not {e}",
    "in": "{l} is {a} (one of {e})",
    "not_in": "{l} is {a} (none of {e})",
    "gt": "{l} {a} is more than {e}",
    "gte": "{l} {a} is at least {e}",
    "lt": "{l} {a} is less than {e}",
    "lte": "{l} {a} is at most {e}",
    "between": "{l} {a} is between {e}",
    "contains": "{l} {a} contains {e}",
    "matches": "{l} {a} matches {e}",
}


def describe(name: str, operator: str, expected: Any) -> tuple[str, Callable[[Any], str]]:
    """The condition in words, and a function giving the reason it matched a value."""
    lab = label(name)
    ts = (lookup(name) or _ANY).type == "timestamp"
    if operator == "between":
        shown = f"{_show(expected[0], name, ts)} and {_show(expected[1], name, ts)}"
    else:
        shown = _show(expected, name, ts and operator != "within_days")
    if operator == "exists":
        text = f"{lab} is {'known' if expected else 'unknown'}"
    elif operator in ("eq", "ne") and isinstance(expected, bool):
        text = lab if expected == (operator == "eq") else f"not {lab}"
    elif operator == "within_days":
        text = f"{lab} was within {_days(expected)}"
    else:
        text = _TEXTS[operator].format(l=lab, e=shown)

    def reason(actual: Any) -> str:
        if operator == "exists" and expected:
            return f"{lab} is {_show(actual, name, ts)}"
        if operator not in _REASONS or (operator == "ne" and isinstance(expected, bool)):
            if operator == "within_days":
                ago = "less than a day ago" if actual < 1 else f"{_days(actual)} ago"
                return f"{lab} was {ago} (within {_days(expected)})"
            return text
        if isinstance(actual, COLLECTIONS):
            if operator == "contains":
                return f"{lab} include {shown}"
            if operator == "in":
                return f"{lab} include {_show(expected.intersection(actual), name)}"
            return f"{lab} include none of {shown}"
        return _REASONS[operator].format(l=lab, a=_show(actual, name, ts), e=shown)

    return text, reason


def _days(days: float) -> str:
    whole = int(days) if days >= 1 else days
    return f"{whole:g} day" if whole == 1 else f"{whole:g} days"


_ANY = Attribute("any", "")
