"""Segment rules as data: ``{attribute, operator, value}`` leaves under ``all``/``any``/``none``.

A rule is JSON/YAML-able data, validated and compiled once (:func:`compile_rule`) into nested
closures, so evaluating it per request costs a few dictionary lookups. A leaf whose attribute is
missing, ``None`` or of the wrong type simply does not match: evaluation never raises.

Operators (one record each in :data:`personalize.rules.operators.OPERATORS`: the test, the
value parser and the words):

============  ==============================================================================
eq, ne        equal / not equal (a missing attribute matches neither)
in, not_in    one of / none of a list; on a set attribute (languages, purchased): any overlap
gt gte lt lte numeric comparisons
between       ``[low, high]`` inclusive; for hour, minute and weekday, low > high wraps around
              (``hour between [22, 5]`` is 22:00 to 05:59)
contains      text contains a substring, or a set (languages, purchased) holds a value
matches       regular expression search (RE2 syntax, linear time); at most 200 characters, and
              only the first 1 KB of the attribute is searched
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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from personalize.exceptions import RuleError, RuleProblem, RuleValueError
from personalize.rules.attributes import DAY, Attribute, lookup, suggest, unknown_attribute_message
from personalize.rules.clusternames import cluster_value
from personalize.rules.operators import COLLECTIONS, OPERATORS, applicable, describe
from personalize.rules.values import is_number, kind_of

MAX_DEPTH = 16  # nested groups
GROUPS = ("all", "any", "none")
_LEAF_KEYS = ("attribute", "operator", "value")

Path = tuple[str | int, ...]
Attrs = Mapping[str, Any]


# -- compiling ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Node:
    test: Callable[[Attrs], bool]
    explain: Callable[[Attrs], list[str] | None]  # None when the node does not match
    text: str
    attributes: frozenset[str]
    compound: bool = True  # a group: wrapped in parentheses inside another group
    clock: bool = False  # reads the time ("now", for an age): its answer changes by itself


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

    @property
    def clock(self) -> bool:
        """True when the rule reads the time (an age: ``now`` less a date), so its answer can
        change with the same attributes; False when they decide it alone."""
        return self._node.clock

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


def compile_rule(
    data: object, *, where: str = "rule", clusters: Mapping[str, int] | None = None
) -> Rule:
    """Validate ``data`` and compile it; raises :class:`RuleError` listing every problem.

    ``clusters`` are the names editors gave learned clusters (name -> number): a ``cluster``
    condition may use them, and a named cluster is compared and explained by its name.

    >>> compile_rule({"attribute": "contry", "operator": "eq", "value": "GB"}, where="x.yaml")
    Traceback (most recent call last):
    ...
    personalize.exceptions.RuleError: x.yaml: attribute: unknown attribute 'contry' ...
    """
    problems: list[RuleProblem] = []
    node = _compile(data, (), problems, 0, clusters or {})
    if problems or node is None:
        raise RuleError(where, problems or [RuleProblem((), "empty rule")])
    return Rule(data, node)


def _compile(
    data: object, path: Path, problems: list[RuleProblem], depth: int, clusters: Mapping[str, int]
) -> _Node | None:
    if not isinstance(data, Mapping):
        problems.append(RuleProblem(path, _NOT_A_RULE + f", not {kind_of(data)}"))
        return None
    groups = [g for g in GROUPS if g in data]
    if groups:
        if len(data) != 1:
            others = ", ".join(str(k) for k in data if k != groups[0])
            problems.append(
                RuleProblem(path, f"a group has one key, all, any or none; also: {others}")
            )
            return None
        return _compile_group(groups[0], data[groups[0]], path, problems, depth, clusters)
    if not any(k in data for k in _LEAF_KEYS):
        keys = ", ".join(str(k) for k in data)[:80] or "nothing"
        close = difflib.get_close_matches(str(next(iter(data), "")), [*GROUPS, *_LEAF_KEYS], 1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(RuleProblem(path, f"{_NOT_A_RULE}; found {keys}{hint}"))
        return None
    return _compile_leaf(data, path, problems, clusters)


_NOT_A_RULE = "expected a group (all, any or none) or a condition (attribute, operator, value)"


def _compile_group(
    group: str,
    items: object,
    path: Path,
    problems: list[RuleProblem],
    depth: int,
    clusters: Mapping[str, int],
) -> _Node | None:
    path = (*path, group)
    if depth >= MAX_DEPTH:
        problems.append(RuleProblem(path, f"groups nested deeper than {MAX_DEPTH} levels"))
        return None
    if not isinstance(items, list) or not items:
        problems.append(
            RuleProblem(path, f"{group} needs a list of conditions, not {kind_of(items)}")
        )
        return None
    children = [
        _compile(item, (*path, i), problems, depth + 1, clusters) for i, item in enumerate(items)
    ]
    nodes = [c for c in children if c is not None]
    if len(nodes) != len(children):
        return None
    tests = tuple(n.test for n in nodes)
    attributes = frozenset().union(*(n.attributes for n in nodes))
    clock = any(n.clock for n in nodes)
    if group == "all":
        text = " and ".join(_wrap(n) for n in nodes)
        return _Node(_all(tests), _explain_all(nodes), text, attributes, clock=clock)
    if group == "any":
        text = " or ".join(_wrap(n) for n in nodes)
        return _Node(_any(tests), _explain_any(nodes), text, attributes, clock=clock)
    text = " and ".join(f"not ({n.text})" for n in nodes)
    return _Node(_none(tests), _explain_none(nodes), text, attributes, clock=clock)


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


def _compile_leaf(
    data: Mapping[Any, Any], path: Path, problems: list[RuleProblem], clusters: Mapping[str, int]
) -> _Node | None:
    before = len(problems)
    for key in data:
        if key not in _LEAF_KEYS:
            hint = suggest(str(key), _LEAF_KEYS)
            problems.append(RuleProblem((*path, key), f"unknown key {str(key)[:40]!r}{hint}"))
    name, operator = data.get("attribute"), data.get("operator")
    attribute: Attribute | None = None
    if not isinstance(name, str):
        problems.append(
            RuleProblem((*path, "attribute"), f"attribute must be a name, not {kind_of(name)}")
        )
    else:
        attribute = lookup(name)
        if attribute is None:
            problems.append(RuleProblem((*path, "attribute"), unknown_attribute_message(name)))
    if not isinstance(operator, str) or operator not in OPERATORS:
        shown = repr(operator[:40]) if isinstance(operator, str) else kind_of(operator)
        hint = suggest(operator, tuple(OPERATORS)) if isinstance(operator, str) else ""
        problems.append(
            RuleProblem(
                (*path, "operator"),
                f"unknown operator {shown}{hint}; one of {', '.join(OPERATORS)}",
            )
        )
        return None
    if attribute is None or not isinstance(name, str):
        return None
    op = OPERATORS[operator]
    if attribute.type not in op.types:
        problems.append(
            RuleProblem(
                (*path, "operator"),
                f"{operator} does not apply to {name} ({attribute.type}); "
                f"use {', '.join(applicable(attribute.type))}",
            )
        )
        return None
    if "value" not in data and op.needs_value:
        problems.append(RuleProblem(path, f"{operator} needs a value"))
        return None
    try:
        expected = op.parse(name, attribute, data.get("value", True))
        if name == "cluster":
            expected = cluster_value(expected, clusters)
    except RuleValueError as exc:
        problems.append(RuleProblem((*path, "value"), str(exc)))
        return None
    if len(problems) > before:
        return None
    return _leaf(name, operator, expected, attribute.type)


def _leaf(name: str, operator: str, expected: Any, kind: str) -> _Node:
    op = OPERATORS[operator]
    check = op.test
    # The wrong shape is no match: a list where a country belongs, a text where a set belongs.
    wants_set = kind == "set"
    check_shape = kind != "any" and not op.on_age
    get: Callable[[Attrs], Any]
    if op.on_age:

        def get(attrs: Attrs) -> Any:
            ts: Any = attrs.get(name)
            now: Any = attrs.get("now")
            if not is_number(ts):
                return None
            return ((now if is_number(now) else time.time()) - ts) / DAY
    else:

        def get(attrs: Attrs) -> Any:
            return attrs.get(name)

    absent_matches = op.matches_absent

    def test(attrs: Attrs) -> bool:
        try:
            actual = get(attrs)
            if actual is None:
                return absent_matches and check(actual, expected) is True
            if check_shape and isinstance(actual, COLLECTIONS) is not wants_set:
                return False
            return check(actual, expected) is True
        except Exception:  # a value of a type nobody expected: no match, never an error
            return False

    text, reason = describe(name, operator, expected)

    def explain(attrs: Attrs) -> list[str] | None:
        if not test(attrs):
            return None
        try:
            return [reason(get(attrs))]
        except Exception:
            return [text]

    return _Node(test, explain, text, frozenset((name,)), compound=False, clock=op.on_age)
