"""The impact report: per site, slot and segment, personalized vs holdout, day by day.

:func:`build_report` turns the impact log's daily sums (:meth:`ImpactLog.daily
<personalize.services.impact.ImpactLog.daily>`) into cumulative statistics per scope and day,
each day with its uplift intervals (:mod:`personalize.impact.stats`): the editor UI's impact
page charts them, ``personalize report`` prints them, both export them as CSV or JSON.

>>> day = {"site|personalized|visitors": 9000, "site|personalized|converted": 540,
...        "site|personalized|value": 27000, "site|personalized|value_sq": 2.7e6,
...        "site|holdout|visitors": 1000, "site|holdout|converted": 50,
...        "site|holdout|value": 2500, "site|holdout|value_sq": 2.5e5}
>>> report = build_report([("2026-12-01", day), ("2026-12-02", day)])
>>> site = report.scopes[0]
>>> site.label, site.latest.day, site.latest.holdout.visitors
('Whole site', '2026-12-02', 2000)
>>> print(report.to_csv().splitlines()[0])  # doctest: +NORMALIZE_WHITESPACE
scope,day,personalized_visitors,personalized_converted,personalized_value,holdout_visitors,holdout_converted,holdout_value,conversion_uplift,conversion_low,conversion_high,value_uplift,value_low,value_high
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from personalize.impact.stats import ALPHA, ArmStats, Uplift, uplift
from personalize.services.impact import ImpactLog

__all__ = [
    "Point",
    "Report",
    "ScopeReport",
    "build_report",
    "interval_text",
    "load_report",
    "scope_label",
    "verdict",
]

_EMPTY = ArmStats(0, 0, 0.0, 0.0)
_COLUMNS = (
    "scope", "day", "personalized_visitors", "personalized_converted", "personalized_value",
    "holdout_visitors", "holdout_converted", "holdout_value", "conversion_uplift",
    "conversion_low", "conversion_high", "value_uplift", "value_low", "value_high",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Point:
    """One scope at the end of one day: everything so far, and the uplift intervals."""

    day: str  # YYYY-MM-DD, UTC
    personalized: ArmStats
    holdout: ArmStats
    conversion: Uplift | None  # None: not enough data yet
    value: Uplift | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "personalized": _arm_dict(self.personalized),
            "holdout": _arm_dict(self.holdout),
            "conversion_uplift": _uplift_dict(self.conversion),
            "value_uplift": _uplift_dict(self.value),
        }


@dataclass(frozen=True, slots=True)
class ScopeReport:
    """One scope (``site``, ``slot/<slot>`` or ``segment/<slot>/<segment>``) over time."""

    scope: str
    points: tuple[Point, ...]

    @property
    def label(self) -> str:
        return scope_label(self.scope)

    @property
    def latest(self) -> Point:
        return self.points[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "label": self.label,
            "latest": self.latest.to_dict(),
            "days": [p.to_dict() for p in self.points],
        }


@dataclass(frozen=True, slots=True)
class Report:
    """Every scope's statistics over the days read; ``alpha``: 1 - the intervals' confidence."""

    scopes: tuple[ScopeReport, ...]
    alpha: float = ALPHA

    def scope(self, name: str) -> ScopeReport | None:
        return next((s for s in self.scopes if s.scope == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "confidence": 1 - self.alpha,
            "method": "asymptotic confidence sequence (always valid), delta method for the ratio",
            "scopes": [s.to_dict() for s in self.scopes],
        }

    def to_csv(self) -> str:
        """One row per scope and day (uplifts as fractions: 0.2 is +20 %; empty: no data)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(_COLUMNS)
        for s in self.scopes:
            for p in s.points:
                pa, ho = p.personalized, p.holdout
                row: list[object] = [s.scope, p.day, pa.visitors, pa.converted, _num(pa.value),
                                     ho.visitors, ho.converted, _num(ho.value)]  # fmt: skip
                for found in (p.conversion, p.value):
                    row += ["", "", ""] if found is None else [
                        _num(found.estimate), _num(found.low), _num(found.high)]  # fmt: skip
                writer.writerow(row)
        return out.getvalue()

    def table(self) -> str:
        """The latest day of every scope as a plain-text table."""
        head = ("scope", "visitors P/H", "conv P", "conv H", "conv uplift",
                "value/visitor P", "value/visitor H", "value uplift", "verdict")  # fmt: skip
        rows = [head]
        for s in self.scopes:
            p = s.latest
            rows.append((
                s.label, f"{p.personalized.visitors:,}/{p.holdout.visitors:,}",
                _pct(p.personalized.mean("conversion")), _pct(p.holdout.mean("conversion")),
                interval_text(p.conversion), f"{p.personalized.mean('value'):.2f}",
                f"{p.holdout.mean('value'):.2f}", interval_text(p.value), verdict(p),
            ))  # fmt: skip
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                 for r in rows]  # fmt: skip
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


def scope_label(scope: str) -> str:
    """How a scope reads for editors.

    >>> scope_label("site"), scope_label("slot/hero"), scope_label("segment/hero/uk")
    ('Whole site', 'hero', 'hero · uk')
    """
    kind, _, rest = scope.partition("/")
    if kind == "site":
        return "Whole site"
    if kind == "segment":
        slot, _, segment = rest.partition("/")
        return f"{slot} · {segment}"
    return rest


def interval_text(found: Uplift | None) -> str:
    """``+20.0 % [+5.1, +36.2]``, or why there is none.

    >>> interval_text(None)
    'not enough data'
    """
    if found is None:
        return "not enough data"
    return f"{found.estimate * 100:+.1f} % [{found.low * 100:+.1f}, {found.high * 100:+.1f}]"


def verdict(point: Point) -> str:
    """In words: which arm is better with confidence, on which metric."""
    said = []
    for name, found in (("conversion", point.conversion), ("value", point.value)):
        if found is not None and found.winner is not None:
            said.append(f"{found.winner} better on {name}")
    if said:
        return "; ".join(said)
    if point.conversion is None and point.value is None:
        return "collecting data"
    return "no difference shown yet"


def build_report(
    daily: Sequence[tuple[str, Mapping[str, float]]], *, alpha: float = ALPHA
) -> Report:
    """Cumulative statistics per scope and day from the daily sums, oldest day first; scopes
    ordered site, then each slot followed by its segments."""
    totals: dict[tuple[str, str], list[float]] = {}
    series: dict[str, list[Point]] = {}
    for day, fields in daily:
        touched: set[str] = set()
        for name, amount in fields.items():
            scope, arm, stat = _split(name)
            if scope is None:
                continue
            sums = totals.setdefault((scope, arm), [0.0, 0.0, 0.0, 0.0])
            sums[_STAT_INDEX[stat]] += amount
            touched.add(scope)
        for scope in touched | set(series):
            pa, ho = _arm(totals.get((scope, "personalized"))), _arm(totals.get((scope, "holdout")))
            conversion = uplift(pa, ho, "conversion", alpha=alpha)
            value = uplift(pa, ho, "value", alpha=alpha)
            series.setdefault(scope, []).append(Point(day, pa, ho, conversion, value))
    order = sorted(series, key=_order)
    return Report(tuple(ScopeReport(s, tuple(series[s])) for s in order), alpha)


async def load_report(
    log: ImpactLog, now: float, *, days: int = 90, alpha: float = ALPHA
) -> Report:
    """The report of the ``days`` days up to ``now`` from an impact log's store."""
    return build_report(await log.daily(now, days=days), alpha=alpha)


_STAT_INDEX = {"visitors": 0, "converted": 1, "value": 2, "value_sq": 3}
_ARMS = ("personalized", "holdout")


def _split(name: str) -> tuple[str | None, str, str]:
    """``scope|arm|stat`` into its parts; (None, "", "") for a field of another kind."""
    parts = name.rsplit("|", 2)
    if len(parts) != 3 or parts[1] not in _ARMS or parts[2] not in _STAT_INDEX:
        return None, "", ""
    return parts[0], parts[1], parts[2]


def _arm(sums: list[float] | None) -> ArmStats:
    if sums is None:
        return _EMPTY
    return ArmStats(round(sums[0]), round(sums[1]), sums[2], sums[3])


def _order(scope: str) -> tuple[int, str]:
    kind, _, rest = scope.partition("/")
    if kind == "site":
        return 0, ""
    if kind == "slot":
        return 1, rest + "/"
    return 1, rest


def _num(value: float) -> str:
    return f"{value:.6g}"


def _pct(rate: float) -> str:
    return f"{rate * 100:.2f} %"


def _arm_dict(arm: ArmStats) -> dict[str, Any]:
    return {
        "visitors": arm.visitors,
        "converted": arm.converted,
        "value": round(arm.value, 2),
        "conversion_rate": round(arm.mean("conversion"), 6),
        "value_per_visitor": round(arm.mean("value"), 4),
    }


def _uplift_dict(found: Uplift | None) -> dict[str, Any] | None:
    if found is None:
        return None
    return {
        "estimate": round(found.estimate, 6),
        "low": round(found.low, 6),
        "high": round(found.high, 6),
        "winner": found.winner,
    }
