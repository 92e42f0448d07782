"""Rules: every operator, matching / not matching / missing / None / wrong type; groups; errors."""

from __future__ import annotations

import time
import timeit
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from personalize.exceptions import ConfigurationError
from personalize.rules.attributes import ATTRIBUTES
from personalize.rules.operators import MAX_INPUT, OPERATORS
from personalize.rules.rule import Rule, RuleError, compile_rule

DATA = Path(__file__).parent / "data"
CASES: list[dict[str, Any]] = yaml.safe_load((DATA / "rules.yaml").read_text(encoding="utf-8"))
ERRORS: list[dict[str, Any]] = yaml.safe_load(
    (DATA / "rule_errors.yaml").read_text(encoding="utf-8")
)


def _attrs(raw: dict[str, Any]) -> dict[str, Any]:
    # Set attributes arrive as frozensets from build_attributes; YAML can only say lists.
    return {
        k: frozenset(v) if k in ("languages", "purchased") and isinstance(v, list) else v
        for k, v in raw.items()
    }


def _rows(kind: str) -> list[Any]:
    return [
        pytest.param(case["rule"], attrs, id=f"{case['id']}-{i}")
        for case in CASES
        for i, attrs in enumerate(case.get(kind, []))
    ]


@pytest.mark.parametrize(("rule", "attrs"), _rows("match"))
def test_matches(rule: dict[str, Any], attrs: dict[str, Any]) -> None:
    assert compile_rule(rule, where="case").evaluate(_attrs(attrs)) is True
    assert compile_rule(rule, where="case").evaluate(attrs) is True  # lists work like sets


@pytest.mark.parametrize(("rule", "attrs"), _rows("no_match"))
def test_does_not_match(rule: dict[str, Any], attrs: dict[str, Any]) -> None:
    compiled = compile_rule(rule, where="case")
    assert compiled.evaluate(_attrs(attrs)) is False
    assert compiled.explain(_attrs(attrs)) == []


@pytest.mark.parametrize("case", [c for c in CASES if "explain" in c], ids=lambda c: str(c["id"]))
def test_explain(case: dict[str, Any]) -> None:
    rule = compile_rule(case["rule"], where="case")
    assert rule.explain(_attrs(case["explain"]["attrs"])) == case["explain"]["reasons"]


def test_table_is_sound() -> None:
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids))
    used = set()
    for case in CASES:
        stack = [case["rule"]]
        while stack:
            node = stack.pop()
            if "operator" in node:
                used.add(node["operator"])
            for group in ("all", "any", "none"):
                stack.extend(node.get(group, []))
        # Every case also shows what a missing attribute does.
        assert case.get("no_match"), case["id"]
    assert used == set(OPERATORS), "every operator has table cases"


@pytest.mark.parametrize("case", ERRORS, ids=lambda c: str(c["id"]))
def test_invalid_rules_list_every_problem(case: dict[str, Any]) -> None:
    with pytest.raises(RuleError) as caught:
        compile_rule(case["rule"], where="segments/x.yaml")
    lines = str(caught.value).splitlines()
    assert len(lines) == len(case["errors"]), lines
    for line, expected in zip(lines, case["errors"], strict=True):
        assert line.startswith("segments/x.yaml: ")
        assert expected in line, line
    assert isinstance(caught.value, ConfigurationError)


def test_error_problems_carry_paths() -> None:
    with pytest.raises(RuleError) as caught:
        compile_rule({"any": [{"attribute": "hour", "operator": "gt", "value": "x"}]})
    (problem,) = caught.value.problems
    assert problem.path == ("any", 0, "value")


def test_matches_searches_only_the_first_kilobyte() -> None:
    rule = compile_rule({"attribute": "term", "operator": "matches", "value": "needle"})
    assert rule.evaluate({"term": "x" * (MAX_INPUT - 6) + "needle"})
    assert not rule.evaluate({"term": "x" * MAX_INPUT + "needle"})


def test_matches_pattern_length_limit() -> None:
    compile_rule({"attribute": "term", "operator": "matches", "value": "a" * 200})
    with pytest.raises(RuleError, match="longer than 200"):
        compile_rule({"attribute": "term", "operator": "matches", "value": "a" * 201})


# Patterns that backtrack exponentially in Python's `re`: with RE2 they are allowed and linear.
CATASTROPHIC = ["(a+)+$", "(a*)*b", "(a|aa)*c", ".*.*.*=", "a*a*a*b", r"\w*\w*\w*\w*!",
                "(x+x+)+y", r"^(\d+)*$", "((ab)*c)*d"]  # fmt: skip


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_catastrophic_patterns_evaluate_in_linear_time(pattern: str) -> None:
    rule = compile_rule({"attribute": "path", "operator": "matches", "value": pattern})
    hostile = "a" * 1000 if "a" in pattern else ("x" * 1000 if "x" in pattern else "1" * 1000)
    started = time.perf_counter()
    for _ in range(10):
        rule.evaluate({"path": hostile})
        rule.evaluate({"path": "/" + "=" * 999})
    elapsed = (time.perf_counter() - started) / 20
    assert elapsed < 0.001, f"{pattern!r} took {elapsed * 1e3:.2f} ms per evaluation"


@pytest.mark.parametrize(
    ("pattern", "why"),
    [("(?=x)y", "not supported"), (r"(a)\1", "not supported"), ("(?<!x)y", "not supported"),
     ("(unclosed", "not a valid regular expression")],
)  # fmt: skip
def test_patterns_re2_cannot_compile_are_refused_at_load(pattern: str, why: str) -> None:
    with pytest.raises(RuleError, match=why):
        compile_rule({"attribute": "path", "operator": "matches", "value": pattern})


def test_matches_keeps_re_semantics_for_ordinary_patterns() -> None:
    rule = compile_rule({"attribute": "path", "operator": "matches", "value": "^/shoes/[a-z-]+$"})
    assert rule.evaluate({"path": "/shoes/red-boots"})
    assert not rule.evaluate({"path": "/shoes/Red"})
    case = compile_rule({"attribute": "term", "operator": "matches", "value": "(?i)sale"})
    assert case.evaluate({"term": "Big SALE now"})
    assert case.explain({"term": "Big SALE now"}) == ["search term Big SALE now matches /(?i)sale/"]


def test_rule_keeps_its_data_and_names_its_attributes() -> None:
    data = {
        "all": [
            {"attribute": "country", "operator": "eq", "value": "GB"},
            {"none": [{"attribute": "traits.plan", "operator": "exists"}]},
        ]
    }
    rule = compile_rule(data)
    assert isinstance(rule, Rule)
    assert rule.data is data
    assert rule.attributes == {"country", "traits.plan"}
    assert rule.text == "country is GB and (not (plan is known))"
    assert repr(rule) == "<Rule country is GB and (not (plan is known))>"


def test_within_days_without_now_uses_the_clock() -> None:
    import time

    rule = compile_rule({"attribute": "last_purchase_at", "operator": "within_days", "value": 1})
    assert rule.evaluate({"last_purchase_at": time.time() - 3600})
    assert not rule.evaluate({"last_purchase_at": time.time() - 2 * 86400})


def test_deep_nesting_is_rejected() -> None:
    rule: dict[str, Any] = {"attribute": "visits", "operator": "gt", "value": 1}
    for _ in range(20):
        rule = {"all": [rule]}
    with pytest.raises(RuleError, match="nested deeper"):
        compile_rule(rule)


class Weird:
    """A value whose comparisons blow up: evaluation must still not raise."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("boom")

    def __hash__(self) -> int:
        raise RuntimeError("boom")

    def __lt__(self, other: object) -> bool:
        raise RuntimeError("boom")


def test_hostile_values_are_no_match() -> None:
    for case in CASES:
        rule = compile_rule(case["rule"])
        names = rule.attributes
        assert rule.evaluate(dict.fromkeys(names, Weird())) in (True, False)
        assert isinstance(rule.explain(dict.fromkeys(names, Weird())), list)


def test_five_leaf_rule_is_fast() -> None:
    rule = compile_rule(
        {
            "all": [
                {"attribute": "country", "operator": "in", "value": ["GB", "IE"]},
                {"attribute": "device_type", "operator": "eq", "value": "mobile"},
                {"attribute": "hour", "operator": "between", "value": [22, 5]},
                {"attribute": "visits", "operator": "gte", "value": 2},
                {"attribute": "campaign", "operator": "matches", "value": "sale"},
            ]
        }
    )
    attrs = {
        "country": "GB",
        "device_type": "mobile",
        "hour": 23,
        "visits": 3,
        "campaign": "summer-sale",
    }
    assert rule.evaluate(attrs)
    per_call = min(timeit.repeat(lambda: rule.evaluate(attrs), number=2000, repeat=5)) / 2000
    assert per_call < 50e-6  # a few microseconds normally; generous for slow CI machines


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=5),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.frozensets(st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
        st.dictionaries(st.text(max_size=5), inner, max_size=3),
    ),
    max_leaves=6,
)
_names = st.sampled_from(
    [
        *ATTRIBUTES,
        "traits.plan",
        "traits.age",
        "affinity.shoes",
        "purchased_at.sku-1",
        "events.signup.count",
        "events.signup.last",
    ]
)
_COMPILED = [compile_rule(case["rule"]) for case in CASES]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_names, _values, max_size=12))
def test_evaluate_never_raises(attrs: dict[str, Any]) -> None:
    for rule in _COMPILED:
        result = rule.evaluate(attrs)
        assert result is True or result is False
        reasons = rule.explain(attrs)
        assert bool(reasons) is result


def test_a_rule_says_whether_it_reads_the_time() -> None:
    """``clock``: a rule that reads an age answers for the time (memos of answers by the
    attributes' values skip it); True is not 1 to a rule (memos key by type too)."""
    visits = compile_rule({"attribute": "visits", "operator": "gte", "value": 1})
    assert not visits.clock
    assert visits.evaluate({"visits": 1}) is True
    assert visits.evaluate({"visits": True}) is False  # a bool is no count
    assert visits.evaluate({"visits": [1]}) is False
    recent = compile_rule(
        {"any": [{"attribute": "last_purchase_at", "operator": "within_days", "value": 7},
                 {"attribute": "visits", "operator": "gte", "value": 100}]}
    )  # fmt: skip
    assert recent.clock
    bought = {"last_purchase_at": 0.0}
    assert recent.evaluate({**bought, "now": 86_400.0}) is True
    assert recent.evaluate({**bought, "now": 30 * 86_400.0}) is False
