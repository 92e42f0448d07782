"""The impact log's records and keys: exposures, outcomes, their scopes, the per-visitor and daily
keys in the state store, and the pure folds of a batch into daily sums (see
:mod:`personalize.services.impact`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import orjson

__all__ = [
    "PREFIX",
    "RETENTION",
    "SKEW",
    "STATS",
    "TIMES_KEPT",
    "Arm",
    "CounterStore",
    "Exposure",
    "Outcome",
    "Times",
    "add_to",
    "daily_sums",
    "day_key",
    "day_of",
    "dump_times",
    "load_times",
    "orders_prefix",
    "scopes_of",
    "times_key",
    "visitor_key",
]

Arm = Literal["personalized", "holdout"]
RETENTION = 400 * 86_400.0  # seconds per-visitor and daily counters are kept
STATS = ("visitors", "converted", "value", "value_sq")
SKEW = 60.0  # seconds an exposure may follow its outcome (clocks of workers differ a little)
TIMES_KEPT = 8  # exposure times kept per visitor and scope
PREFIX = "pz:impact:"
Times = dict[str, tuple[str, list[float]]]  # scope -> (arm, exposure times)


class CounterStore(Protocol):
    """What the impact log needs of a :class:`~personalize.stores.state.StateStore`."""

    async def increment(
        self,
        changes: Mapping[str, Mapping[str, float]],
        *,
        ttl: float | None = None,
        batch_id: str | None = None,
    ) -> dict[str, dict[str, float]]: ...

    async def counters(self, keys: Sequence[str]) -> dict[str, dict[str, float]]: ...

    async def values(self, keys: Sequence[str]) -> dict[str, bytes]: ...

    async def put_values(
        self, items: Mapping[str, bytes], *, ttl: float | None, only_if_absent: bool = False
    ) -> dict[str, bytes]: ...

    async def keys(self, prefix: str) -> list[str]: ...

    async def delete(self, keys: Sequence[str]) -> int: ...


@dataclass(frozen=True, slots=True)
class Exposure:
    """One visitor saw one slot's decision (once per session): what impact counts.

    ``arm`` is the slot's (held out by the site or by the slot), ``site_arm`` the site's;
    ``segment`` names the mapping rule the visitor matched, held out or not ("(default)"
    when none, "(condition)" for a rule without a segment).
    """

    unit: str  # the profile key: u:<user id> when known, else v:<visitor id>
    slot: str
    variant: str
    arm: Arm
    site_arm: Arm
    segment: str
    ts: float  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class Outcome:
    """A conversion of the visitor with profile key ``unit``, worth ``value``."""

    unit: str
    value: float
    ts: float
    ref: str = ""  # an order id: the same order reported again counts once


def scopes_of(exposure: Exposure) -> list[tuple[str, Arm]]:
    """The scopes an exposure counts in, with its arm in each.

    >>> scopes_of(Exposure("v:1", "hero", "a", "holdout", "personalized", "uk", 0.0))
    [('site', 'personalized'), ('slot/hero', 'holdout'), ('segment/hero/uk', 'holdout')]
    """
    slot = exposure.slot
    return [
        ("site", exposure.site_arm),
        (f"slot/{slot}", exposure.arm),
        (f"segment/{slot}/{exposure.segment}", exposure.arm),
    ]


def day_of(ts: float) -> str:
    """The UTC day of a timestamp, as the daily keys name it.

    >>> day_of(0.0)
    '1970-01-01'
    """
    return dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()


def visitor_key(unit: str) -> str:
    return f"{PREFIX}{{{unit}}}:n"  # hash-tagged: a visitor's keys share a cluster slot


def times_key(unit: str) -> str:
    return f"{PREFIX}{{{unit}}}:x"


def orders_prefix(unit: str) -> str:
    return f"{PREFIX}{{{unit}}}:o:"  # + the order's ref: counted once


def day_key(day: str) -> str:
    return f"{PREFIX}day:{day}"


def add_to(out: dict[str, dict[str, float]], unit: str, field: str, amount: float) -> None:
    fields = out.setdefault(visitor_key(unit), {})
    fields[field] = fields.get(field, 0.0) + amount


def daily_sums(
    facts: Sequence[tuple[str, str, str, str, str, float]],
    added: Mapping[str, Mapping[str, float]],
    totals: Mapping[str, Mapping[str, float]],
) -> dict[str, dict[str, float]]:
    """The daily sums' increments, from what this batch added per visitor and the totals the
    store returned: a first exposure or conversion counts once, and the sum of squares moves
    by the square of the visitor's new value minus that of their old one."""
    out: dict[str, dict[str, float]] = {}
    done: set[tuple[str, str, str, str]] = set()
    for unit, scope, arm, day, kind, _ in facts:
        if (unit, scope, arm, kind) in done:
            continue
        done.add((unit, scope, arm, kind))
        key = visitor_key(unit)
        fields = out.setdefault(day_key(day), {})
        base = f"{scope}|{arm}|"
        if kind == "n":
            total, mine = totals[key].get(f"n|{scope}|{arm}", 0.0), added[key][f"n|{scope}|{arm}"]
            if total - mine <= 0:  # nothing before this batch: a new visitor of this arm
                fields[base + "visitors"] = fields.get(base + "visitors", 0.0) + 1.0
            continue
        count, mine = totals[key].get(f"c|{scope}|{arm}", 0.0), added[key][f"c|{scope}|{arm}"]
        if count - mine <= 0:
            fields[base + "converted"] = fields.get(base + "converted", 0.0) + 1.0
        value, gained = totals[key].get(f"v|{scope}|{arm}", 0.0), added[key][f"v|{scope}|{arm}"]
        if gained:
            before = value - gained
            fields[base + "value"] = fields.get(base + "value", 0.0) + gained
            sq = fields.get(base + "value_sq", 0.0) + value * value - before * before
            fields[base + "value_sq"] = sq
    return {k: v for k, v in out.items() if v}


def load_times(raw: bytes | None) -> Times:
    """A visitor's exposure times as stored (anything unreadable is no exposure)."""
    try:
        data = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        data = {}
    times: Times = {}
    for scope, entry in data.items() if isinstance(data, dict) else ():
        if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], list):
            seen = [float(t) for t in entry[1] if isinstance(t, int | float)]
            times[str(scope)] = (str(entry[0]), seen)
    return times


def dump_times(times: Times, window: float) -> bytes:
    newest = max((t for _, seen in times.values() for t in seen), default=0.0)
    oldest = newest - window - SKEW
    return orjson.dumps(
        {s: [arm, [t for t in seen if t >= oldest]] for s, (arm, seen) in times.items()}
    )
