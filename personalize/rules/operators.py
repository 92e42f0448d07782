"""The operators of segment rules: one record each, with its test, its value parser and its words.

A test takes the visitor's value and the rule's value (already parsed) and returns a bool; a
missing value or one of the wrong type is simply no match, never an exception. To add an
operator, write its three small functions and add one :class:`Operator` to :data:`OPERATORS`.

>>> OPERATORS["between"].test(23, (22, 5)), OPERATORS["in"].test(frozenset({"en"}), {"en"})
(True, True)
>>> text, reason = describe("visits", "gte", 3)
>>> text, reason(4)
('visits is at least 3', 'visits 4 is at least 3')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from personalize.exceptions import RuleValueError
from personalize.rules.attributes import WEEKDAYS, Attribute, AttributeType, label, lookup
from personalize.rules.values import (
    MAX_LIST,
    Pattern,
    bounded,
    is_number,
    kind_of,
    number,
    pattern,
    scalar,
)

__all__ = ["COLLECTIONS", "MAX_INPUT", "OPERATORS", "Operator", "applicable", "describe"]

MAX_INPUT = 1024  # characters of the attribute a `matches` pattern searches
COLLECTIONS = (frozenset, set, tuple, list)

Show = Callable[[Any], str]


@dataclass(frozen=True, slots=True)
class Operator:
    """One operator: how it tests, how its value is read, and how it is put in words.

    ``text(label, expected, shown)`` is the condition ("visits is at least 3");
    ``reason(label, actual, expected, show)`` why it matched a value, None when the text says
    it already. ``types`` are the attribute types it applies to.
    """

    name: str
    test: Callable[[Any, Any], bool]
    parse: Callable[[str, Attribute, object], Any]
    text: Callable[[str, Any, str], str]
    reason: Callable[[str, Any, Any, Show], str] | None
    types: frozenset[AttributeType]
    needs_value: bool = True  # False: the value may be left out (exists: true)
    matches_absent: bool = False  # a missing attribute can match (exists: false)
    on_age: bool = False  # tests the age in days of a timestamp attribute (within_days)


# -- tests ----------------------------------------------------------------------------------


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


def _matches(actual: Any, expected: Pattern) -> bool:
    return isinstance(actual, str) and expected.search(actual[:MAX_INPUT]) is not None


def _exists(actual: Any, expected: bool) -> bool:
    return (actual is not None) == expected


def _within_days(age_days: Any, expected: float) -> bool:
    return is_number(age_days) and bool(age_days <= expected)


# -- values ---------------------------------------------------------------------------------


def _one(name: str, attribute: Attribute, value: object) -> Any:
    return scalar(name, attribute, value)


def _member(name: str, attribute: Attribute, value: object) -> Any:
    return scalar(name, attribute, value, element=True)


def _list(operator: str) -> Callable[[str, Attribute, object], frozenset[Any]]:
    def parse(name: str, attribute: Attribute, value: object) -> frozenset[Any]:
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            raise RuleValueError(
                f"{operator} needs a list of 1 to {MAX_LIST} values, not {kind_of(value)}"
            )
        return frozenset(scalar(name, attribute, v) for v in value)

    return parse


def _number(name: str, attribute: Attribute, value: object) -> float:
    return number(name, attribute, value)


def _range(name: str, attribute: Attribute, value: object) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise RuleValueError(
            f"between needs a list of two values [low, high], not {kind_of(value)}"
        )
    low, high = (bounded(name, attribute, number(name, attribute, v)) for v in value)
    if low > high and not attribute.cyclic:
        raise RuleValueError(
            f"between [{low:g}, {high:g}]: low is above high "
            "(only hour, minute and weekday windows wrap around)"
        )
    return (low, high)


def _pattern(name: str, attribute: Attribute, value: object) -> Pattern:
    return pattern(value)


def _flag(name: str, attribute: Attribute, value: object) -> bool:
    if not isinstance(value, bool):
        raise RuleValueError(f"exists takes true or false, not {kind_of(value)}")
    return value


def _days(name: str, attribute: Attribute, value: object) -> float:
    days = number(name, attribute, value)
    if not 0 < days <= 36_500:
        raise RuleValueError(f"within_days needs a number of days above 0, not {days:g}")
    return days


# -- words ----------------------------------------------------------------------------------


def _phrase(template: str) -> Callable[[str, Any, str], str]:
    return lambda lab, expected, shown: template.format(l=lab, e=shown)


def _because(template: str) -> Callable[[str, Any, Any, Show], str]:
    def reason(lab: str, actual: Any, expected: Any, show: Show) -> str:
        return template.format(l=lab, a=show(actual), e=show(expected))

    return reason


def _is(lab: str, expected: Any, shown: str) -> str:
    if isinstance(expected, bool):
        return lab if expected else f"not {lab}"
    return f"{lab} is {shown}"


def _is_not(lab: str, expected: Any, shown: str) -> str:
    if isinstance(expected, bool):
        return f"not {lab}" if expected else lab
    return f"{lab} is not {shown}"


def _is_not_because(lab: str, actual: Any, expected: Any, show: Show) -> str:
    if isinstance(expected, bool):
        return _is_not(lab, expected, "")
    return f"{lab} is {show(actual)}, not {show(expected)}"


def _one_of_because(lab: str, actual: Any, expected: Any, show: Show) -> str:
    if isinstance(actual, COLLECTIONS):
        return f"{lab} include {show(expected.intersection(actual))}"
    return f"{lab} is {show(actual)} (one of {show(expected)})"


def _none_of_because(lab: str, actual: Any, expected: Any, show: Show) -> str:
    if isinstance(actual, COLLECTIONS):
        return f"{lab} include none of {show(expected)}"
    return f"{lab} is {show(actual)} (none of {show(expected)})"


def _contains_because(lab: str, actual: Any, expected: Any, show: Show) -> str:
    if isinstance(actual, COLLECTIONS):
        return f"{lab} include {show(expected)}"
    return f"{lab} {show(actual)} contains {show(expected)}"


def _known(lab: str, expected: Any, shown: str) -> str:
    return f"{lab} is {'known' if expected else 'unknown'}"


def _known_because(lab: str, actual: Any, expected: Any, show: Show) -> str:
    return f"{lab} is {show(actual)}" if expected else f"{lab} is unknown"


def _count_days(days: float) -> str:
    whole = int(days) if days >= 1 else days
    return f"{whole:g} day" if whole == 1 else f"{whole:g} days"


def _within(lab: str, expected: Any, shown: str) -> str:
    return f"{lab} was within {_count_days(expected)}"


def _within_because(lab: str, age: Any, expected: Any, show: Show) -> str:
    ago = "less than a day ago" if age < 1 else f"{_count_days(age)} ago"
    return f"{lab} was {ago} (within {_count_days(expected)})"


_ALL: frozenset[AttributeType] = frozenset({"text", "number", "bool", "set", "timestamp", "any"})


def _op(
    name: str,
    test: Callable[[Any, Any], bool],
    parse: Callable[[str, Attribute, object], Any],
    text: Callable[[str, Any, str], str],
    reason: Callable[[str, Any, Any, Show], str] | None,
    types: str,
    **flags: bool,
) -> Operator:
    kinds = frozenset(types.split()) if types != "*" else _ALL
    return Operator(name, test, parse, text, reason, kinds, **flags)  # type: ignore[arg-type]


#: Every operator, in the order the editor UI and error messages list them.
OPERATORS: Mapping[str, Operator] = {
    op.name: op
    for op in (
        _op("eq", _eq, _one, _is, None, "text number bool any"),
        _op("ne", _ne, _one, _is_not, _is_not_because, "text number bool any"),
        _op("in", _in, _list("in"), _phrase("{l} is one of {e}"), _one_of_because,
            "text number set any"),
        _op("not_in", _not_in, _list("not_in"), _phrase("{l} is none of {e}"), _none_of_because,
            "text number set any"),
        _op("gt", _gt, _number, _phrase("{l} is more than {e}"),
            _because("{l} {a} is more than {e}"), "number timestamp any"),
        _op("gte", _gte, _number, _phrase("{l} is at least {e}"),
            _because("{l} {a} is at least {e}"), "number timestamp any"),
        _op("lt", _lt, _number, _phrase("{l} is less than {e}"),
            _because("{l} {a} is less than {e}"), "number timestamp any"),
        _op("lte", _lte, _number, _phrase("{l} is at most {e}"),
            _because("{l} {a} is at most {e}"), "number timestamp any"),
        _op("between", _between, _range, _phrase("{l} is between {e}"),
            _because("{l} {a} is between {e}"), "number timestamp any"),
        _op("contains", _contains, _member, _phrase("{l} contains {e}"), _contains_because,
            "text set any"),
        _op("matches", _matches, _pattern, _phrase("{l} matches {e}"),
            _because("{l} {a} matches {e}"), "text any"),
        _op("exists", _exists, _flag, _known, _known_because, "*", needs_value=False,
            matches_absent=True),
        _op("within_days", _within_days, _days, _within, _within_because, "timestamp any",
            on_age=True),
    )
}  # fmt: skip


def applicable(attribute_type: AttributeType) -> tuple[str, ...]:
    """The operators that make sense for an attribute type, in :data:`OPERATORS` order.

    >>> applicable("bool")
    ('eq', 'ne', 'exists')
    """
    return tuple(name for name, op in OPERATORS.items() if attribute_type in op.types)


# -- in words -------------------------------------------------------------------------------


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
        if len(value) == 2 and isinstance(value, tuple) and all(map(is_number, value)):
            return f"{_show(value[0], attribute, timestamp)} and {_show(value[1], attribute, timestamp)}"  # noqa: E501
        items = sorted(_show(v, attribute, timestamp) for v in value)
        return ", ".join(items[:5]) + (", ..." if len(items) > 5 else "")
    shown_pattern = getattr(value, "pattern", None)
    if isinstance(shown_pattern, str) and not isinstance(value, str):
        return f"/{shown_pattern}/"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(name: str, operator: str, expected: Any) -> tuple[str, Callable[[Any], str]]:
    """The condition in words, and a function giving the reason it matched a value."""
    op = OPERATORS[operator]
    lab = label(name)
    timestamp = (lookup(name) or _ANY).type == "timestamp" and not op.on_age

    def show(value: Any) -> str:
        return _show(value, name, timestamp)

    text = op.text(lab, expected, show(expected))
    because = op.reason

    def reason(actual: Any) -> str:
        return text if because is None else because(lab, actual, expected, show)

    return text, reason


_ANY = Attribute("any", "")
