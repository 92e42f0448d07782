"""The value of a rule leaf, checked against its attribute and operator and turned into the
form the operator uses: numbers for comparisons, frozensets for lists, compiled patterns.

``matches`` patterns are guarded: at most 200 characters, and no repeated group that itself
repeats (``(a+)+``) or has ambiguous alternatives (``(a|aa)*``), since Python's ``re`` has
no timeout and backtracking over those is exponential.

>>> from personalize.attributes import lookup
>>> expected_value("hour", lookup("hour"), "between", [22, 5])
(22, 5)
>>> sorted(expected_value("country", lookup("country"), "in", ["gb", "ie"]))
['GB', 'IE']
>>> expected_value("visits", lookup("visits"), "gte", "3")
Traceback (most recent call last):
...
personalize.rule_values.InvalidValue: expected a number, not the text '3'
"""

from __future__ import annotations

import math
import re
from typing import Any

from personalize.attributes import Attribute, label, suggest, weekday_number
from personalize.operators import is_number

MAX_PATTERN = 200  # characters in a `matches` pattern
MAX_LIST = 1000  # values in an `in` / `not_in` list


class InvalidValue(Exception):
    """A rule's value that does not fit its attribute or operator; the message says why."""


def kind_of(value: object) -> str:
    """What a value is, in an editor's words, for error messages."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    return {list: "a list", bool: "true/false", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def expected_value(name: str, attribute: Attribute, operator: str, value: object) -> Any:
    """The rule's value, checked against the operator and attribute, in the form it is used."""
    if operator == "exists":
        if not isinstance(value, bool):
            raise InvalidValue(f"exists takes true or false, not {kind_of(value)}")
        return value
    if operator in ("eq", "ne"):
        return _scalar(name, attribute, value)
    if operator in ("in", "not_in"):
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            raise InvalidValue(
                f"{operator} needs a list of 1 to {MAX_LIST} values, not {kind_of(value)}"
            )
        return frozenset(_scalar(name, attribute, v) for v in value)
    if operator in ("gt", "gte", "lt", "lte"):
        return _number(name, value)
    if operator == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise InvalidValue(
                f"between needs a list of two values [low, high], not {kind_of(value)}"
            )
        low, high = (_bounded(name, attribute, _number(name, v)) for v in value)
        if low > high and not attribute.cyclic:
            raise InvalidValue(
                f"between [{low:g}, {high:g}]: low is above high "
                "(only hour, minute and weekday windows wrap around)"
            )
        return (low, high)
    if operator == "contains":
        return _scalar(name, attribute, value, element=True)
    if operator == "matches":
        return _pattern(value)
    if operator == "within_days":
        days = _number(name, value)
        if not 0 < days <= 36_500:
            raise InvalidValue(f"within_days needs a number of days above 0, not {days:g}")
        return days
    raise AssertionError(operator)  # pragma: no cover - every operator is handled above


def _number(name: str, value: object) -> float:
    if name == "weekday" and isinstance(value, str):
        return _weekday(value)
    if not is_number(value) or not math.isfinite(value):  # type: ignore[arg-type]
        raise InvalidValue(f"expected a number, not {kind_of(value)}")
    return value  # type: ignore[return-value]


def _weekday(value: str) -> int:
    number = weekday_number(value)
    if number is None:
        raise InvalidValue(f"{value[:40]!r} is not a weekday: monday ... sunday, or 0-6")
    return number


def _bounded(name: str, attribute: Attribute, value: float) -> float:
    if attribute.bounds and not attribute.bounds[0] <= value <= attribute.bounds[1]:
        low, high = attribute.bounds
        raise InvalidValue(f"{name} is {low} to {high}, so {value:g} never matches")
    return value


def _scalar(name: str, attribute: Attribute, value: object, *, element: bool = False) -> Any:
    kind = attribute.type
    if value is None or isinstance(value, list | dict):
        raise InvalidValue(f"expected a single value, not {kind_of(value)}")
    if kind in ("number", "timestamp"):
        return _bounded(name, attribute, _number(name, value))
    if kind == "bool":
        if not isinstance(value, bool):
            raise InvalidValue(f"{name} is true or false, not {kind_of(value)}")
        return value
    if kind in ("text", "set") and not isinstance(value, str):
        quote = "; YAML reads yes/no/on/off as true/false: put the value in quotes"
        extra = quote if isinstance(value, bool) else "; put it in quotes"
        raise InvalidValue(f"{name} is text, not {kind_of(value)}{extra}")
    if kind == "any" and not isinstance(value, str | int | float | bool):
        raise InvalidValue(f"expected text, a number or true/false, not {kind_of(value)}")
    if isinstance(value, str):
        if name in ("country", "continent"):
            value = value.upper()
        elif name in ("language", "languages"):
            value = value.lower()
        if attribute.choices and value not in attribute.choices and not element:
            raise InvalidValue(
                f"{value[:40]!r} is not a {label(name)}{suggest(value, attribute.choices)}; "
                f"one of {', '.join(attribute.choices)}"
            )
    return value


def _pattern(value: object) -> re.Pattern[str]:
    if not isinstance(value, str) or not value:
        raise InvalidValue(f"matches needs a regular expression as text, not {kind_of(value)}")
    if len(value) > MAX_PATTERN:
        raise InvalidValue(f"pattern longer than {MAX_PATTERN} characters")
    if nested_quantifier(value) or ambiguous_alternation(value):
        raise InvalidValue(
            f"pattern {value[:40]!r} repeats a group that itself repeats, e.g. (a+)+; "
            "such patterns can take exponential time"
        )
    try:
        return re.compile(value)
    except re.error as exc:
        raise InvalidValue(
            f"pattern {value[:40]!r} is not a valid regular expression: {exc}"
        ) from None


_REPEAT = re.compile(r"\{\d*,?\d*\}")
_LITERAL = re.compile(r"[^\\.^$*+?{}\[\]|()]+")
_ALTERNATION = re.compile(r"\((\?:)?([^()]*\|[^()]*)\)([*+]|\{\d*,)")


def ambiguous_alternation(pattern: str) -> bool:
    """True when a repeated group has alternatives that are not plain literals with distinct
    first characters, like ``(a|aa)*`` or ``(x|x)+``: backtracking over them is exponential.

    >>> ambiguous_alternation("(a|aa)*c"), ambiguous_alternation("(red|blue)+ shoes?")
    (True, False)
    """
    for m in _ALTERNATION.finditer(pattern):
        branches = m.group(2).split("|")
        if not all(_LITERAL.fullmatch(b) for b in branches):
            return True
        firsts = [b[0] for b in branches]
        if len(set(firsts)) != len(firsts):
            return True
    return False


def nested_quantifier(pattern: str) -> bool:
    """True when a repeated group contains a repetition, like ``(a+)+`` or ``(\\w*x){2,}``.

    A cheap guard against catastrophic backtracking (Python's ``re`` has no timeout); together
    with the 1 KB input cap it keeps every ``matches`` bounded.

    >>> nested_quantifier("(a+)+"), nested_quantifier("((ab)*c)*"), nested_quantifier("sale|deal")
    (True, True, False)
    >>> nested_quantifier("^/shoes/[a-z-]+$"), nested_quantifier("(red|blue)+ shoes?")
    (False, False)
    """
    inner: list[bool] = []  # per open group: does it repeat something inside?
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":  # a character class: skip it, `]` first in it is literal
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            i += 1
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
        elif c == "(":
            inner.append(False)
        elif c == ")":
            repeats = inner.pop() if inner else False
            following = pattern[i + 1 : i + 2]
            if repeats and (following in ("*", "+") or _REPEAT.match(pattern, i + 1)):
                return True
            if inner and repeats:
                inner[-1] = True
        elif c in "*+" or (c == "{" and _REPEAT.match(pattern, i)):
            if inner:
                inner[-1] = True
        elif c == "?" and inner and pattern[i - 1] != "(":  # `(?:`, `(?P<` are group syntax
            inner[-1] = True
        i += 1
    return False
