"""What the editor UI's impact page draws: uplift over time with its always-valid band.

>>> from personalize.impact.stats import ArmStats, Uplift
>>> arm = ArmStats(1000, 50, 2500.0, 3e5)
>>> points = [Point(f"2026-12-0{d}", arm, arm, Uplift("conversion", 0.2, -0.3 + d / 10,
...           0.7 - d / 10, 0.06, 0.05), None) for d in range(1, 4)]
>>> svg = uplift_chart(points, "conversion")
>>> svg.startswith("<svg"), svg.count("<polygon"), svg.count("<polyline")
(True, 1, 1)
>>> uplift_chart(points, "value")
Markup('')
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup

from personalize.impact.report import Point
from personalize.impact.stats import Metric, Uplift

__all__ = ["uplift_chart"]

_LIMITS = (-1.0, 3.0)  # -100 % .. +300 %: a band wider than that is cut at the edge


def uplift_chart(
    points: Sequence[Point], metric: Metric, *, width: int = 640, height: int = 240
) -> Markup:
    """Relative uplift per day with its interval band as an inline SVG ('' without any)."""
    found: list[tuple[int, Uplift]] = []
    for i, p in enumerate(points):
        u = p.conversion if metric == "conversion" else p.value
        if u is not None and all(math.isfinite(v) for v in (u.estimate, u.low, u.high)):
            found.append((i, u))
    if not found:
        return Markup("")
    left, right, top, bottom = 72, 14, 14, 34  # room for labels a phone enlarges
    lows = [max(_LIMITS[0], u.low) for _, u in found] + [0.0]
    highs = [min(_LIMITS[1], u.high) for _, u in found] + [0.0]
    y0, y1 = _nice(min(lows), down=True), _nice(max(highs), down=False)
    y1 = y1 if y1 > y0 else y0 + 0.1
    x0, x1 = 0, max(len(points) - 1, 1)

    def sx(i: float) -> float:
        return left + (i - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        y = min(max(y, y0), y1)
        return top + (y1 - y) / (y1 - y0) * (height - top - bottom)

    what = "conversion rate" if metric == "conversion" else "value per visitor"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" data-metric="{metric}" '
        f'aria-label="uplift of {what} over time, with its confidence band">'
    ]
    for t in _ticks(y0, y1):
        parts.append(
            f'<line x1="{left}" y1="{sy(t):.1f}" x2="{width - right}" y2="{sy(t):.1f}" '
            f'stroke="#e3e6ec"/><text x="{left - 6}" y="{sy(t) + 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="#5b6474">{t * 100:+.0f} %</text>'
        )
    parts.append(
        f'<line x1="{left}" y1="{sy(0):.1f}" x2="{width - right}" y2="{sy(0):.1f}" '
        f'stroke="#5b6474" stroke-dasharray="4 3"/>'
    )
    for i, anchor in ((0, "start"), (len(points) - 1, "end")):
        parts.append(
            f'<text x="{sx(i):.1f}" y="{height - 12}" font-size="11" text-anchor="{anchor}" '
            f'fill="#5b6474">{_day(points[i].day)}</text>'
        )
    band = [f"{sx(i):.1f},{sy(u.high):.1f}" for i, u in found]
    band += [f"{sx(i):.1f},{sy(u.low):.1f}" for i, u in reversed(found)]
    parts.append(f'<polygon class="band" points="{" ".join(band)}" fill="#2456c7" '
                 f'fill-opacity="0.15" stroke="none"/>')  # fmt: skip
    line = " ".join(f"{sx(i):.1f},{sy(u.estimate):.1f}" for i, u in found)
    parts.append(
        f'<polyline class="estimate" points="{line}" fill="none" stroke="#2456c7" '
        f'stroke-width="2"/>'
    )
    i, last = found[-1]
    parts.append(f'<circle cx="{sx(i):.1f}" cy="{sy(last.estimate):.1f}" r="3.5" fill="#2456c7"/>')
    parts.append("</svg>")
    # Only numbers formatted above, fixed text and ISO days: nothing else is interpolated.
    return Markup("".join(parts))


def _ticks(low: float, high: float) -> list[float]:
    """Round gridline values from ``low`` to ``high``: a step of 5, 10, 20, 25, 50 or 100 %
    (or more), at most 7 lines.

    >>> [round(t * 100) for t in _ticks(-1.0, 1.2)]
    [-100, -50, 0, 50, 100]
    """
    step = 0.05
    while (high - low) / step > 6:
        step = next((s for s in (0.1, 0.2, 0.25, 0.5, 1.0) if s > step), step * 2)
    first = math.ceil(low / step - 1e-9)
    return [k * step for k in range(first, math.floor(high / step + 1e-9) + 1)]


def _nice(value: float, *, down: bool) -> float:
    """``value`` rounded outwards to a tenth (10 %)."""
    scaled = value * 10
    return (math.floor(scaled) if down else math.ceil(scaled)) / 10


def _day(day: str) -> str:
    """An ISO day as the chart labels it; anything else is not shown."""
    return day if len(day) == 10 and day.replace("-", "").isdigit() else ""
