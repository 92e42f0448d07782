"""Turning mixed feature dicts into the numeric dicts the river estimators learn from.

Strings become one-hot keys (``"device_type=mobile"``), optionally crossed (pairs, triples)
so a linear model can see interactions such as "paid search *and* mobile"; numbers stay
numbers, optionally through ``log1p`` for skewed counts and durations. Done by hand rather than with
``compose.SelectType | OneHotEncoder`` unions: this is the hot path of every learn and
predict, and a single pass over the dict is several times faster.

>>> num, cat = split({"visits": 3, "device_type": "mobile", "channel": "email"},
...                  log1p=frozenset({"visits"}), crosses=(("device_type", "channel"),))
>>> round(num["visits"], 3), sorted(cat)
(1.386, ['channel=email', 'device_type=mobile', 'device_type=mobile&channel=email'])
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

__all__ = ["split"]


def split(
    x: Mapping[str, float | str | bool | int | None],
    *,
    log1p: Collection[str] = (),
    crosses: Sequence[tuple[str, ...]] = (),
) -> tuple[dict[str, float], dict[str, float]]:
    """``(numeric, one_hot)`` of ``x``; ``None`` values and NaNs are left out."""
    num: dict[str, float] = {}
    cat: dict[str, float] = {}
    for key, value in x.items():
        if isinstance(value, str):
            cat[key + "=" + value] = 1.0
        elif value is not None:
            v = float(value)
            if v != v:  # NaN
                continue
            if key in log1p:
                v = math.copysign(math.log1p(abs(v)), v)
            num[key] = v
    for names in crosses:
        parts = []
        for name in names:
            value = x.get(name)
            if not isinstance(value, str):
                break
            parts.append(name + "=" + value)
        else:
            cat["&".join(parts)] = 1.0
    return num, cat
