"""Argument types for the command line: numbers checked by argparse, with a clear message.

>>> whole_number(1)("10_000"), fraction("0.25"), whole_number(1, 65535)("8000")
(10000, 0.25, 8000)
>>> whole_number(1)("-5")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: -5 is not a whole number of at least 1
>>> fraction("1.5")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: 1.5 is not a number from 0 to 1
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["fraction", "positive_number", "whole_number"]


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """A type for ``add_argument``: a whole number from ``low`` (to ``high``)."""
    span = f"from {low} to {high}" if high is not None else f"of at least {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text} is not a whole number {span}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in its messages
    return parse


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def fraction(text: str) -> float:
    """A type for ``add_argument``: a number from 0 to 1 (a rate, a probability)."""
    value = _number(text)
    if value is None or not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a number from 0 to 1")
    return value


def positive_number(text: str) -> float:
    """A type for ``add_argument``: a finite number above 0."""
    value = _number(text)
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number above 0")
    return value
