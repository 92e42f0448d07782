"""Segment rules as data: ``{attribute, operator, value}`` leaves under ``all``/``any``/``none``.

A rule is JSON/YAML-able data, validated and compiled once (:func:`compile_rule`) into nested
closures, so evaluating it per request costs a few dictionary lookups. A leaf whose attribute is
missing, ``None`` or of the wrong type simply does not match: evaluation never raises.

Operators (a dispatch table of tiny pure functions, :data:`OPERATORS`):

============  ==============================================================================
eq, ne        equal / not equal (a missing attribute matches neither)
in, not_in    one of / none of a list; on a set attribute (languages, purchased): any overlap
gt gte lt lte numeric comparisons
between       ``[low, high]`` inclusive; for hour, minute and weekday, low > high wraps around
              (``hour between [22, 5]`` is 22:00 to 05:59)
contains      text contains a substring, or a set (languages, purchased) holds a value
matches       regular expression search; at most 200 characters, no nested quantifiers such as
              ``(a+)+``, and only the first 1 KB of the attribute is searched
exists        ``true``: the attribute is known; ``false``: it is not
within_days   a timestamp attribute at most N days before now (``last_purchase_at``)
============  ==============================================================================

>>> rule = compile_rule({"all": [
...     {"attribute": "country", "operator": "eq", "value": "GB"},
...     {"attribute": "hour", "operator": "between", "value": [18, 23]}]}, where="example")
>>> rule.evaluate({"country": "GB", "hour": 21}), rule.evaluate({"country": "GB"})
(True, False)
>>> rule.explain({"country": "GB", "hour": 21})
['country is GB', 'local hour 21 is between 18 and 23']
"""

from __future__ import annotations

import difflib
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from personalize.attributes import (
    DAY,
    WEEKDAYS,
    Attribute,
    label,
    lookup,
    suggest,
    unknown_attribute_message,
    weekday_number,
)
from personalize.exceptions import ConfigurationError

MAX_PATTERN = 200  # characters in a `matches` pattern
MAX_INPUT = 1024  # characters of the attribute a pattern searches
MAX_LIST = 1000  # values in an `in` / `not_in` list
MAX_DEPTH = 16  # nested groups
GROUPS = ("all", "any", "none")
_LEAF_KEYS = ("attribute", "operator", "value")
_COLLECTIONS = (frozenset, set, tuple, list)

Path = tuple[str | int, ...]
Attrs = Mapping[str, Any]


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _eq(actual: Any, expected: Any) -> bool:
    return isinstance(actual, bool) == isinstance(expected, bool) and bool(actual == expected)


def _ne(actual: Any, expected: Any) -> bool:
    return not _eq(actual, expected)


def _in(actual: Any, expected: frozenset[Any]) -> bool:
    if isinstance(actual, _COLLECTIONS):
        return not expected.isdisjoint(actual)
    return actual in expected


def _not_in(actual: Any, expected: frozenset[Any]) -> bool:
    if isinstance(actual, _COLLECTIONS):
        return expected.isdisjoint(actual)
    return actual not in expected


def _gt(actual: Any, expected: float) -> bool:
    return _is_number(actual) and bool(actual > expected)


def _gte(actual: Any, expected: float) -> bool:
    return _is_number(actual) and bool(actual >= expected)


def _lt(actual: Any, expected: float) -> bool:
    return _is_number(actual) and bool(actual < expected)


def _lte(actual: Any, expected: float) -> bool:
    return _is_number(actual) and bool(actual <= expected)


def _between(actual: Any, expected: tuple[float, float]) -> bool:
    low, high = expected
    if not _is_number(actual):
        return False
    if low <= high:
        return bool(low <= actual <= high)
    return bool(actual >= low or actual <= high)  # a window across midnight


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    return isinstance(actual, _COLLECTIONS) and expected in actual


def _matches(actual: Any, expected: re.Pattern[str]) -> bool:
    return isinstance(actual, str) and expected.search(actual[:MAX_INPUT]) is not None


def _exists(actual: Any, expected: bool) -> bool:
    return (actual is not None) == expected


def _within_days(age_days: Any, expected: float) -> bool:
    return _is_number(age_days) and bool(age_days <= expected)


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


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a rule: where in the data (keys and list indexes) and what."""

    path: Path
    message: str

    def __str__(self) -> str:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path)
        return f"{where.lstrip('.')}: {self.message}" if where else self.message


class RuleError(ConfigurationError):
    """A rule is not valid; ``problems`` lists every problem, each with its place in the data."""

    def __init__(self, where: str, problems: Sequence[Problem]) -> None:
        self.where = where
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{where}: {p}" for p in self.problems))


class _Invalid(Exception):
    """A value problem found while compiling one leaf."""


# -- values as people read them ---------------------------------------------------------------


def _show(value: Any, attribute: str = "", timestamp: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if attribute == "weekday" and isinstance(value, int) and 0 <= value <= 6:
        return WEEKDAYS[value].capitalize()
    if _is_number(value):
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


def _words(name: str, operator: str, expected: Any) -> tuple[str, Callable[[Any], str]]:
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
        if isinstance(actual, _COLLECTIONS):
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


# -- compiling ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Node:
    test: Callable[[Attrs], bool]
    explain: Callable[[Attrs], list[str] | None]  # None when the node does not match
    text: str
    attributes: frozenset[str]
    compound: bool = True  # a group: wrapped in parentheses inside another group


class Rule:
    """A compiled rule: :meth:`evaluate` per request, :meth:`explain` for the reasons.

    >>> rule = compile_rule({"any": [{"attribute": "channel", "operator": "eq",
    ...                               "value": "paid_search"},
    ...                              {"attribute": "visits", "operator": "gte", "value": 3}]})
    >>> rule.evaluate({"channel": "email", "visits": 4}), rule.explain({"visits": 4})
    (True, ['visits 4 is at least 3'])
    >>> rule
    <Rule channel is paid_search or visits is at least 3>
    """

    __slots__ = ("_node", "data")

    def __init__(self, data: Any, node: _Node) -> None:
        self.data = data  # the rule as it was written
        self._node = node

    def evaluate(self, attrs: Attrs) -> bool:
        """True when the attributes match; never raises."""
        return self._node.test(attrs)

    def explain(self, attrs: Attrs) -> list[str]:
        """Sentences for the conditions that made the rule match; empty when it does not."""
        return self._node.explain(attrs) or []

    @property
    def attributes(self) -> frozenset[str]:
        """The attribute names the rule reads."""
        return self._node.attributes

    @property
    def text(self) -> str:
        """The rule in words."""
        return self._node.text

    def __repr__(self) -> str:
        return f"<Rule {self._node.text}>"


def compile_rule(data: object, *, where: str = "rule") -> Rule:
    """Validate ``data`` and compile it; raises :class:`RuleError` listing every problem.

    >>> compile_rule({"attribute": "contry", "operator": "eq", "value": "GB"}, where="x.yaml")
    Traceback (most recent call last):
    ...
    personalize.rules.RuleError: x.yaml: attribute: unknown attribute 'contry' (did you mean ...?)
    """
    problems: list[Problem] = []
    node = _compile(data, (), problems, 0)
    if problems or node is None:
        raise RuleError(where, problems or [Problem((), "empty rule")])
    return Rule(data, node)


def _compile(data: object, path: Path, problems: list[Problem], depth: int) -> _Node | None:
    if not isinstance(data, Mapping):
        problems.append(Problem(path, _NOT_A_RULE + f", not {_kind(data)}"))
        return None
    groups = [g for g in GROUPS if g in data]
    if groups:
        if len(data) != 1:
            others = ", ".join(str(k) for k in data if k != groups[0])
            problems.append(Problem(path, f"a group has one key, all, any or none; also: {others}"))
            return None
        return _compile_group(groups[0], data[groups[0]], path, problems, depth)
    if not any(k in data for k in _LEAF_KEYS):
        keys = ", ".join(str(k) for k in data)[:80] or "nothing"
        close = difflib.get_close_matches(str(next(iter(data), "")), [*GROUPS, *_LEAF_KEYS], 1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(Problem(path, f"{_NOT_A_RULE}; found {keys}{hint}"))
        return None
    return _compile_leaf(data, path, problems)


_NOT_A_RULE = "expected a group (all, any or none) or a condition (attribute, operator, value)"


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    return {list: "a list", bool: "true/false", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _compile_group(
    group: str, items: object, path: Path, problems: list[Problem], depth: int
) -> _Node | None:
    path = (*path, group)
    if depth >= MAX_DEPTH:
        problems.append(Problem(path, f"groups nested deeper than {MAX_DEPTH} levels"))
        return None
    if not isinstance(items, list) or not items:
        problems.append(Problem(path, f"{group} needs a list of conditions, not {_kind(items)}"))
        return None
    children = [_compile(item, (*path, i), problems, depth + 1) for i, item in enumerate(items)]
    nodes = [c for c in children if c is not None]
    if len(nodes) != len(children):
        return None
    tests = tuple(n.test for n in nodes)
    attributes = frozenset().union(*(n.attributes for n in nodes))
    if group == "all":
        text = " and ".join(_wrap(n) for n in nodes)
        return _Node(_all(tests), _explain_all(nodes), text, attributes)
    if group == "any":
        text = " or ".join(_wrap(n) for n in nodes)
        return _Node(_any(tests), _explain_any(nodes), text, attributes)
    text = " and ".join(f"not ({n.text})" for n in nodes)
    return _Node(_none(tests), _explain_none(nodes), text, attributes)


def _wrap(node: _Node) -> str:
    return f"({node.text})" if node.compound else node.text


def _all(tests: tuple[Callable[[Attrs], bool], ...]) -> Callable[[Attrs], bool]:
    def test(attrs: Attrs) -> bool:
        for t in tests:  # noqa: SIM110 - a plain loop is faster than any()/all() on a generator
            if not t(attrs):
                return False
        return True

    return test


def _any(tests: tuple[Callable[[Attrs], bool], ...]) -> Callable[[Attrs], bool]:
    def test(attrs: Attrs) -> bool:
        for t in tests:  # noqa: SIM110 - a plain loop is faster than any()/all() on a generator
            if t(attrs):
                return True
        return False

    return test


def _none(tests: tuple[Callable[[Attrs], bool], ...]) -> Callable[[Attrs], bool]:
    def test(attrs: Attrs) -> bool:
        for t in tests:  # noqa: SIM110 - a plain loop is faster than any()/all() on a generator
            if t(attrs):
                return False
        return True

    return test


def _explain_all(nodes: list[_Node]) -> Callable[[Attrs], list[str] | None]:
    def explain(attrs: Attrs) -> list[str] | None:
        reasons: list[str] = []
        for node in nodes:
            found = node.explain(attrs)
            if found is None:
                return None
            reasons.extend(found)
        return reasons

    return explain


def _explain_any(nodes: list[_Node]) -> Callable[[Attrs], list[str] | None]:
    def explain(attrs: Attrs) -> list[str] | None:
        found = [r for node in nodes for r in node.explain(attrs) or ()]
        return found or None

    return explain


def _explain_none(nodes: list[_Node]) -> Callable[[Attrs], list[str] | None]:
    def explain(attrs: Attrs) -> list[str] | None:
        if any(node.test(attrs) for node in nodes):
            return None
        return [f"not ({node.text})" for node in nodes]

    return explain


def _compile_leaf(data: Mapping[Any, Any], path: Path, problems: list[Problem]) -> _Node | None:
    before = len(problems)
    for key in data:
        if key not in _LEAF_KEYS:
            hint = suggest(str(key), _LEAF_KEYS)
            problems.append(Problem((*path, key), f"unknown key {str(key)[:40]!r}{hint}"))
    name, operator = data.get("attribute"), data.get("operator")
    attribute: Attribute | None = None
    if not isinstance(name, str):
        problems.append(
            Problem((*path, "attribute"), f"attribute must be a name, not {_kind(name)}")
        )
    else:
        attribute = lookup(name)
        if attribute is None:
            problems.append(Problem((*path, "attribute"), unknown_attribute_message(name)))
    if not isinstance(operator, str) or operator not in OPERATORS:
        shown = repr(operator[:40]) if isinstance(operator, str) else _kind(operator)
        hint = suggest(operator, tuple(OPERATORS)) if isinstance(operator, str) else ""
        problems.append(
            Problem(
                (*path, "operator"),
                f"unknown operator {shown}{hint}; one of {', '.join(OPERATORS)}",
            )
        )
        return None
    if attribute is None or not isinstance(name, str):
        return None
    if operator not in APPLIES[attribute.type]:
        problems.append(
            Problem(
                (*path, "operator"),
                f"{operator} does not apply to {name} ({attribute.type}); "
                f"use {', '.join(APPLIES[attribute.type])}",
            )
        )
        return None
    if "value" not in data and operator != "exists":
        problems.append(Problem(path, f"{operator} needs a value"))
        return None
    try:
        expected = _expected(name, attribute, operator, data.get("value", True))
    except _Invalid as exc:
        problems.append(Problem((*path, "value"), str(exc)))
        return None
    if len(problems) > before:
        return None
    return _leaf(name, operator, expected, attribute.type)


def _leaf(name: str, operator: str, expected: Any, kind: str) -> _Node:
    op = OPERATORS[operator]
    # The wrong shape is no match: a list where a country belongs, a text where a set belongs.
    wants_set = kind == "set"
    check_shape = kind != "any" and operator != "within_days"
    get: Callable[[Attrs], Any]
    if operator == "within_days":

        def get(attrs: Attrs) -> Any:
            ts: Any = attrs.get(name)
            now: Any = attrs.get("now")
            if not _is_number(ts):
                return None
            return ((now if _is_number(now) else time.time()) - ts) / DAY
    else:

        def get(attrs: Attrs) -> Any:
            return attrs.get(name)

    absent_matches = operator == "exists"

    def test(attrs: Attrs) -> bool:
        try:
            actual = get(attrs)
            if actual is None:
                return absent_matches and op(actual, expected) is True
            if check_shape and isinstance(actual, _COLLECTIONS) is not wants_set:
                return False
            return op(actual, expected) is True
        except Exception:  # a value of a type nobody expected: no match, never an error
            return False

    text, reason = _words(name, operator, expected)

    def explain(attrs: Attrs) -> list[str] | None:
        if not test(attrs):
            return None
        try:
            return [reason(get(attrs))]
        except Exception:
            return [text]

    return _Node(test, explain, text, frozenset((name,)), compound=False)


# -- values ------------------------------------------------------------------------------------


def _expected(name: str, attribute: Attribute, operator: str, value: object) -> Any:
    """The rule's value, checked against the operator and attribute, in the form it is used."""
    if operator == "exists":
        if not isinstance(value, bool):
            raise _Invalid(f"exists takes true or false, not {_kind(value)}")
        return value
    if operator in ("eq", "ne"):
        return _scalar(name, attribute, value)
    if operator in ("in", "not_in"):
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            raise _Invalid(f"{operator} needs a list of 1 to {MAX_LIST} values, not {_kind(value)}")
        return frozenset(_scalar(name, attribute, v) for v in value)
    if operator in ("gt", "gte", "lt", "lte"):
        return _number(name, value)
    if operator == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise _Invalid(f"between needs a list of two values [low, high], not {_kind(value)}")
        low, high = (_bounded(name, attribute, _number(name, v)) for v in value)
        if low > high and not attribute.cyclic:
            raise _Invalid(
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
            raise _Invalid(f"within_days needs a number of days above 0, not {days:g}")
        return days
    raise AssertionError(operator)  # pragma: no cover - every operator is handled above


def _number(name: str, value: object) -> float:
    if name == "weekday" and isinstance(value, str):
        return _weekday(value)
    if not _is_number(value) or not math.isfinite(value):  # type: ignore[arg-type]
        raise _Invalid(f"expected a number, not {_kind(value)}")
    return value  # type: ignore[return-value]


def _weekday(value: str) -> int:
    number = weekday_number(value)
    if number is None:
        raise _Invalid(f"{value[:40]!r} is not a weekday: monday ... sunday, or 0-6")
    return number


def _bounded(name: str, attribute: Attribute, value: float) -> float:
    if attribute.bounds and not attribute.bounds[0] <= value <= attribute.bounds[1]:
        low, high = attribute.bounds
        raise _Invalid(f"{name} is {low} to {high}, so {value:g} never matches")
    return value


def _scalar(name: str, attribute: Attribute, value: object, *, element: bool = False) -> Any:
    kind = attribute.type
    if value is None or isinstance(value, list | dict):
        raise _Invalid(f"expected a single value, not {_kind(value)}")
    if kind in ("number", "timestamp"):
        return _bounded(name, attribute, _number(name, value))
    if kind == "bool":
        if not isinstance(value, bool):
            raise _Invalid(f"{name} is true or false, not {_kind(value)}")
        return value
    if kind in ("text", "set") and not isinstance(value, str):
        quote = "; YAML reads yes/no/on/off as true/false: put the value in quotes"
        extra = quote if isinstance(value, bool) else "; put it in quotes"
        raise _Invalid(f"{name} is text, not {_kind(value)}{extra}")
    if kind == "any" and not isinstance(value, str | int | float | bool):
        raise _Invalid(f"expected text, a number or true/false, not {_kind(value)}")
    if isinstance(value, str):
        if name in ("country", "continent"):
            value = value.upper()
        elif name in ("language", "languages"):
            value = value.lower()
        if attribute.choices and value not in attribute.choices and not element:
            raise _Invalid(
                f"{value[:40]!r} is not a {label(name)}{suggest(value, attribute.choices)}; "
                f"one of {', '.join(attribute.choices)}"
            )
    return value


def _pattern(value: object) -> re.Pattern[str]:
    if not isinstance(value, str) or not value:
        raise _Invalid(f"matches needs a regular expression as text, not {_kind(value)}")
    if len(value) > MAX_PATTERN:
        raise _Invalid(f"pattern longer than {MAX_PATTERN} characters")
    if nested_quantifier(value) or ambiguous_alternation(value):
        raise _Invalid(
            f"pattern {value[:40]!r} repeats a group that itself repeats, e.g. (a+)+; "
            "such patterns can take exponential time"
        )
    try:
        return re.compile(value)
    except re.error as exc:
        raise _Invalid(f"pattern {value[:40]!r} is not a valid regular expression: {exc}") from None


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
