"""Structured field parsing (RFC 8941): a table of valid and malformed fields, and fuzzing."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from personalize.context.structured_fields import Token, parse_item, parse_list

CASES: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).parent / "data" / "structured_fields.yaml").read_text("utf-8")
)


def _plain(value: Any) -> Any:
    """A parsed value as the YAML table writes it."""
    if isinstance(value, Token):
        return {"token": str(value)}
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize("case", CASES, ids=[f"{c['kind']}:{c['text']!r}" for c in CASES])
def test_case(case: dict[str, Any]) -> None:
    parse = parse_item if case["kind"] == "item" else parse_list
    assert _plain(parse(case["text"])) == case["expect"]


def test_cases_cover_both_kinds_and_failures() -> None:
    kinds = {(c["kind"], c["expect"] is None) for c in CASES}
    assert kinds == {("item", True), ("item", False), ("list", True), ("list", False)}


def test_a_token_is_not_a_string() -> None:
    parsed = parse_item("Linux")
    assert parsed is not None and isinstance(parsed[0], Token) and parsed[0] == "Linux"


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80) | st.text(alphabet='"?;=,():*-1aZ \\\t.', max_size=40))
def test_never_raises(text: str) -> None:
    for parse in (parse_item, parse_list):
        result = parse(text)
        assert result is None or isinstance(result, tuple | list)
