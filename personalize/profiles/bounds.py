"""What a profile may hold: plain JSON with finite, bounded numbers and storable text.

Every number that enters a profile from outside (event properties, order values, traits, a
conversion's value) is checked here first. JSON parsers turn ``1e999`` into infinity, and a
store that writes infinity writes ``null``; the sum that comes next then fails on every read
and every compaction. A lone surrogate (``"\\ud800"`` in JSON) cannot be written as UTF-8, so
no store can keep it.

>>> problem_in({"size": 42, "tags": ["a", 1.5]}, "properties") is None
True
>>> problem_in({"size": float("inf")}, "properties")
'properties.size must be a finite number'
>>> problem_in(["\\ud800"], "traits")
'traits[0] is not valid Unicode text (a lone surrogate)'
>>> amount_problem(1e308, "properties.value")
'properties.value must be a number from 0 to 1000000000000'
>>> add_amount(MAX_TOTAL - 1.0, 5.0) == MAX_TOTAL  # a sum saturates, it never overflows
True
"""

from __future__ import annotations

import math
import re

__all__ = [
    "MAX_AMOUNT",
    "MAX_INTEGER",
    "MAX_TOTAL",
    "add_amount",
    "amount_problem",
    "bad_text",
    "problem_in",
]

MAX_AMOUNT = 1e12  # one money value: an order's or a conversion's (any currency)
MAX_TOTAL = 1e15  # a sum of them that a profile keeps (revenue)
MAX_INTEGER = 2**53  # JSON's exact integers; beyond, other readers round them
MAX_DEPTH = 8  # levels of nesting (stores serialise with bounded recursion)

# Surrogates cannot be encoded as UTF-8; C0, DEL and C1 controls are never part of an id.
_CONTROL_OR_SURROGATE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def bad_text(text: str) -> bool:
    """True when ``text`` holds a control character or a lone surrogate (not an id).

    >>> bad_text("order-17"), bad_text("o\\x00"), bad_text("\\ud800"), bad_text("Zoë")
    (False, True, True, False)
    """
    return _CONTROL_OR_SURROGATE.search(text) is not None


def _number_problem(value: int | float, where: str) -> str | None:
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} must be a finite number"
    if -MAX_INTEGER <= value <= MAX_INTEGER:
        return None
    return f"{where} must be an integer within +-2**53"


def problem_in(value: object, where: str, depth: int = 0) -> str | None:
    """Why ``value`` cannot be kept in a profile (the first problem, with its place under
    ``where``), or None: JSON types only, finite numbers, integers within 2**53, text
    without lone surrogates, string keys, at most MAX_DEPTH levels of nesting."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        if _SURROGATE.search(value) is not None:
            return f"{where} is not valid Unicode text (a lone surrogate)"
        return None
    if isinstance(value, int | float):
        return _number_problem(value, where)
    if depth >= MAX_DEPTH:
        return f"{where} is nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has a key that is not text ({key!r:.40})"
            if _SURROGATE.search(key) is not None:
                return f"{where} has a key that is not valid Unicode text (a lone surrogate)"
            problem = problem_in(item, f"{where}.{key[:40]}", depth + 1)
            if problem is not None:
                return problem
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            problem = problem_in(item, f"{where}[{index}]", depth + 1)
            if problem is not None:
                return problem
        return None
    return f"{where} must be JSON data (not {type(value).__name__})"


def amount_problem(value: object, where: str) -> str | None:
    """Why ``value`` is not a money value (a number from 0 to MAX_AMOUNT), or None."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= MAX_AMOUNT  # NaN compares false: refused too
    ):
        return f"{where} must be a number from 0 to {MAX_AMOUNT:.0f}"
    return None


def add_amount(total: object, value: float) -> float:
    """``total + value``, saturating at MAX_TOTAL (callers refuse what would pass it; two
    writers racing may still meet it, and a sum must never become infinite).

    A total that is not a finite number (written by an earlier version) raises TypeError:
    the store then sets the change aside instead of guessing."""
    if isinstance(total, bool) or not isinstance(total, int | float) or not math.isfinite(total):
        raise TypeError(f"the stored sum {total!r:.40} is not a finite number")
    return min(float(total) + value, MAX_TOTAL)
