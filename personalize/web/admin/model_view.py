"""What the editor UI's model page computes: the AUC chart, the quality gate's verdict, the
clusters with their names and sizes over time; and the learned attributes of a stored or
simulated visitor, for segment sizes and previews.

>>> svg = auc_chart([[100, 0.61], [200, 0.68], [400, 0.74]], min_auc=0.65)
>>> svg.startswith("<svg"), svg.count("<polyline"), "quality gate 0.65" in svg
(True, 1, True)
>>> auc_chart([], min_auc=0.6)
Markup('')
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from personalize.context.records import VisitorContext
from personalize.exceptions import StoreError
from personalize.profiles.profile import Profile
from personalize.rules.segments import SegmentLibrary

if TYPE_CHECKING:
    from personalize.personalizer import Personalizer

_SAVED = "%Y-%m-%d %H:%M UTC"

__all__ = [
    "ClusterRow",
    "SharedSnapshot",
    "StoredVisit",
    "auc_chart",
    "cluster_rows",
    "gate_verdict",
    "learned_for",
    "learning_status",
    "shared_snapshot",
    "sparkline",
]


class StoredVisit:
    """A stored profile seen as a visit (what learning scores), for sizes and previews."""

    __slots__ = ("context", "profile", "profile_key")

    def __init__(self, key: str, profile: Profile, context: VisitorContext) -> None:
        self.profile_key: str | None = key
        self.profile = profile
        self.context = context

    @property
    def remembers(self) -> bool:
        return True


def learned_for(
    pz: Personalizer, key: str, profile: Profile, context: VisitorContext
) -> Mapping[str, Any] | None:
    """The learned attributes (propensity, cluster, anomaly...) of a stored or simulated
    visitor, as the site's pages would see them; None without learning or when it fails."""
    try:
        return pz.learned_scores(StoredVisit(key, profile, context))
    except Exception:  # a model that cannot score is no reason to fail an editor's page
        return None


def auc_chart(
    history: Sequence[Sequence[float]],
    *,
    min_auc: float | None,
    width: int = 560,
    height: int = 200,
) -> Markup:
    """Prequential AUC over the events learned, as a small inline SVG ('' without data)."""
    points = [
        (float(p[0]), float(p[1]))
        for p in history
        if isinstance(p, list | tuple)
        and len(p) == 2
        and all(isinstance(v, int | float) and math.isfinite(v) for v in p)
    ]
    if not points:
        return Markup("")
    left, right, top, bottom = 46, 12, 12, 30
    xs = [x for x, _ in points]
    x0, x1 = min(xs), max(xs)
    x1 = x1 if x1 > x0 else x0 + 1
    lows = [y for _, y in points] + ([min_auc] if min_auc is not None else [])
    y0 = min(0.5, math.floor(min(lows) * 10) / 10)
    y1 = 1.0

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return top + (y1 - y) / (y1 - y0) * (height - top - bottom)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" '
        f'aria-label="prequential AUC over events learned">'
    ]
    ticks = [y0 + i * (y1 - y0) / 5 for i in range(6)]
    for t in ticks:
        parts.append(
            f'<line x1="{left}" y1="{sy(t):.1f}" x2="{width - right}" y2="{sy(t):.1f}" '
            f'stroke="#e3e6ec"/><text x="{left - 6}" y="{sy(t) + 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="#5b6474">{t:.2f}</text>'
        )
    for x, anchor in ((x0, "start"), (x1, "end")):
        parts.append(
            f'<text x="{sx(x):.1f}" y="{height - 10}" font-size="11" text-anchor="{anchor}" '
            f'fill="#5b6474">{int(x):,} events</text>'
        )
    if min_auc is not None and math.isfinite(min_auc):
        parts.append(
            f'<line x1="{left}" y1="{sy(min_auc):.1f}" x2="{width - right}" '
            f'y2="{sy(min_auc):.1f}" stroke="#b42318" stroke-dasharray="5 4"/>'
            f'<text x="{width - right}" y="{sy(min_auc) - 4:.1f}" font-size="11" '
            f'text-anchor="end" fill="#b42318">quality gate {min_auc:.2f}</text>'
        )
    line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    parts.append(f'<polyline points="{line}" fill="none" stroke="#2456c7" stroke-width="2"/>')
    for x, y in points[-1:]:
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="#2456c7"/>')
    parts.append("</svg>")
    # Only numbers formatted above and fixed text: nothing from the outside is interpolated.
    return Markup("".join(parts))


def learning_status(pz: Personalizer) -> dict[str, Any] | None:
    """The learning integration's status, or None when learning is off; errors are reported."""
    learning = pz.learning
    if learning is None:
        return None
    try:
        status = learning.status()
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return dict(status) if isinstance(status, Mapping) else {"error": "status() is not a mapping"}


@dataclass(frozen=True, slots=True)
class SharedSnapshot:
    """The newest model snapshot in the shared state store: what every worker that starts
    now loads, the same whichever worker serves the page."""

    version: int
    saved: str  # when, UTC
    figures: dict[str, Any]  # see personalize.learning.runtime.model_figures


async def shared_snapshot(pz: Personalizer) -> SharedSnapshot | str | None:
    """The newest snapshot of in-process learning kept in the state store; a sentence when
    there is none or it cannot be read; None when learning keeps none (off, or a learner
    process publishes the models: every worker then reports the version it uses)."""
    from personalize.learning.runtime import LocalLearning, model_figures
    from personalize.learning.snapshots import Snapshot

    learning = pz.learning
    keeper = learning.snapshots if isinstance(learning, LocalLearning) else None
    if keeper is None:
        return None
    try:
        found = await keeper.store.get_blob(keeper.name)
    except StoreError as exc:
        return f"the state store did not answer ({type(exc).__name__})"
    if found is None:
        return "no worker has saved one yet"
    version, data = found
    try:
        snapshot = await run_in_threadpool(Snapshot.loads, data)
    except ValueError as exc:
        return f"version {version} cannot be read: {exc}"
    saved = time.strftime(_SAVED, time.gmtime(snapshot.created_at))
    return SharedSnapshot(version, saved, model_figures(snapshot.models))


def gate_verdict(status: Mapping[str, Any]) -> tuple[bool, list[str]]:
    """Whether the model passes its quality gate, and why (not).

    >>> gate_verdict({"labelled": 50, "min_labelled": 200, "auc_history": [], "min_auc": 0.6})
    (False, ['50 labelled sessions of the 200 needed'])
    """
    reasons: list[str] = []
    events, needed = status.get("labelled", status.get("events")), status.get("min_labelled")
    if isinstance(events, int | float) and isinstance(needed, int | float) and events < needed:
        reasons.append(f"{int(events)} labelled sessions of the {int(needed)} needed")
    history = status.get("auc_history") or []
    min_auc = status.get("min_auc")
    last = history[-1][1] if history and isinstance(history[-1], list | tuple) else None
    if isinstance(min_auc, int | float) and isinstance(last, int | float) and last < min_auc:
        reasons.append(f"AUC {last:.3f} is below the gate of {min_auc:.2f}")
    ready = status.get("ready")
    passed = bool(ready) if isinstance(ready, bool) else not reasons
    if not passed and not reasons:
        reasons.append("the learner reports it is not ready")
    return passed, reasons


@dataclass(frozen=True, slots=True)
class ClusterRow:
    """One learned cluster on the model page."""

    id: int
    name: str | None  # given by editors (clusters: in a segments file)
    description: str
    size: int
    sparkline: Markup  # sizes over time


def cluster_rows(
    status: Mapping[str, Any] | None, library: SegmentLibrary | None
) -> list[ClusterRow]:
    """The clusters a learning status reports, with the names editors gave them.

    >>> rows = cluster_rows({"clusters": [{"id": 0, "description": "mobile, evening",
    ...                                    "size": 40, "history": [10, 12, 18]}]}, None)
    >>> rows[0].name, rows[0].size, "<polyline" in rows[0].sparkline
    (None, 40, True)
    """
    names = library.cluster_names if library is not None else {}
    rows = []
    for entry in (status or {}).get("clusters") or []:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), int):
            continue
        history = [v for v in entry.get("history") or [] if isinstance(v, int | float)]
        rows.append(
            ClusterRow(
                entry["id"],
                names.get(entry["id"]),
                str(entry.get("description", "")),
                int(entry.get("size", 0)),
                sparkline(history),
            )
        )
    return rows


def sparkline(values: Sequence[float], *, width: int = 160, height: int = 28) -> Markup:
    """A tiny inline SVG of ``values`` over time ('' for fewer than two)."""
    if len(values) < 2:
        return Markup("")
    top = max(values) or 1.0
    step = width / (len(values) - 1)
    line = " ".join(
        f"{i * step:.1f},{height - 2 - v / top * (height - 4):.1f}" for i, v in enumerate(values)
    )
    # Only numbers formatted above: nothing from the outside is interpolated.
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="spark" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="sessions per period">'
        f'<polyline points="{line}" fill="none" stroke="#2456c7" stroke-width="1.5"/></svg>'
    )
