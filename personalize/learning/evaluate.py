"""Prequential evaluation: replay labelled sessions through the models, test then train.

Every session is scored at each page's start (the features a decision saw), before it is
learned: the decision-time ROC AUC, beside the end-of-session one (its last page). Where the
records carry ground truth (``personalize simulate`` writes it), two more figures say whether
the models found what was planted, per reporting window of ``every`` sessions: the ROC AUC
with which the landing page's propensity picks out the ``planted`` sessions, and the persona
(``group``) purity of the clusters (of the named ones, when ``names`` are given): the share of
a cluster's sessions from its main persona, per cluster (:class:`ClusterReport`), as the
size-weighted mean and as the least pure cluster's (``purity_min``; a name is a promise about
each cluster it is given to, so that is the figure to judge by).

>>> from personalize.learning.simulate import simulate
>>> points = evaluate(simulate(2000, seed=1), every=1000)
>>> [p.n for p in points], points[-1].auc > 0.55, points[-1].purity is not None
([1000, 2000], True, True)

A replay file is read by :class:`Replay`, which knows the line each record came from, so a
bad record is reported as ``FILE:LINE: problem``.
"""

from __future__ import annotations

import collections
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from personalize.exceptions import ReplayError
from personalize.learning.features import pages_from_record
from personalize.learning.metrics import BinnedAUC

if TYPE_CHECKING:
    from personalize.learning.clusters import SessionClusterer
    from personalize.learning.propensity import PropensityModel

__all__ = [
    "ClusterReport",
    "EvalPoint",
    "Progress",
    "Replay",
    "ReplayError",
    "evaluate",
    "read_jsonl",
]


@dataclass(frozen=True, slots=True)
class ClusterReport:
    """One cluster in a reporting window: its size, its main persona and that persona's share."""

    cluster: int
    name: str | None
    description: str
    size: int
    persona: str
    purity: float


@dataclass(frozen=True, slots=True)
class EvalPoint:
    """Prequential figures after ``n`` sessions (ground-truth figures over the last window)."""

    n: int
    positives: int
    auc: float  # decision time: each page's start
    logloss: float
    ready: bool
    auc_end: float = 0.5  # the session's last page
    planted_auc: float | None = None  # landing-page propensity: planted vs other sessions
    purity: float | None = None  # persona purity of the (named) clusters, size-weighted mean
    clusters: tuple[ClusterReport, ...] = field(default=())
    #: the least pure of the (named) clusters: what a name promises holds for each of them
    purity_min: float | None = None


class Progress:
    """A dependency-free progress bar on a stream (stderr), redrawn at most ~10 times a second.

    Other output goes between its redraws: :meth:`clear` first, so nothing is glued onto it.
    """

    def __init__(self, total: int | None, out: TextIO | None = None, width: int = 30) -> None:
        self.total = total
        self.out = out if out is not None else sys.stderr
        self.width = width
        self._last = 0.0
        self._shown = 0  # characters of the bar on the line now
        self._start = time.monotonic()

    def update(self, n: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        rate = n / max(now - self._start, 1e-9)
        if self.total:
            done = int(self.width * min(n / self.total, 1.0))
            bar = "#" * done + "." * (self.width - done)
            text = f"[{bar}] {n}/{self.total} sessions, {rate:,.0f}/s"
        else:
            text = f"{n} sessions, {rate:,.0f}/s"
        self.out.write("\r" + text.ljust(self._shown))
        self._shown = len(text)
        self.out.flush()

    def clear(self) -> None:
        """Erase the bar from its line (it comes back with the next update)."""
        if self._shown:
            self.out.write("\r" + " " * self._shown + "\r")
            self.out.flush()
            self._shown = 0
            self._last = 0.0

    def end_line(self) -> None:
        """Leave the bar as it is and go to the next line (before a message)."""
        if self._shown:
            self.out.write("\n")
            self.out.flush()
            self._shown = 0

    def close(self, n: int) -> None:
        self.update(n, force=True)
        self.out.write("\n")
        self.out.flush()
        self._shown = 0


class Replay:
    """The records of a JSONL file, one JSON object per non-empty line; :attr:`line` is the
    line of the record last read (for messages)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.line = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with open(self.path, encoding="utf-8") as f:
            for self.line, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except ValueError as exc:  # JSONDecodeError; its position is within the line
                    where = (
                        f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
                    )
                    raise self.error(
                        f"not valid JSON ({getattr(exc, 'msg', exc)}{where})"
                    ) from None
                if not isinstance(record, dict):
                    raise self.error("a record is a JSON object {...}")
                yield record

    def error(self, problem: str) -> ReplayError:
        """A :class:`ReplayError` at the line last read."""
        return ReplayError(self.path, self.line, problem)


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file, one per non-empty line (see :class:`Replay`)."""
    return iter(Replay(path))


def evaluate(
    records: Iterable[Mapping[str, Any]],
    *,
    model: PropensityModel | None = None,
    clusterer: SessionClusterer | None = None,
    names: Mapping[str, int] | None = None,
    every: int = 1000,
    label: str = "converted",
    progress: Progress | None = None,
    on_point: Callable[[EvalPoint], None] | None = None,
) -> list[EvalPoint]:
    """Replay ``records`` (with a boolean ``label`` key) through ``model`` (and ``clusterer``,
    for records with a ``group``); a point every ``every`` sessions, each also given to
    ``on_point`` as soon as it is computed. ``names`` maps cluster names to ids: the purity
    figures are then those of the named clusters (a named cluster no session fell into in a
    window is not judged in it)."""
    if model is None:
        from personalize.learning.propensity import PropensityModel  # needs river

        model = PropensityModel()
    if clusterer is None:
        from personalize.learning.clusters import SessionClusterer  # needs river

        clusterer = SessionClusterer(seed=1)
    window = _Window(model, clusterer, names or {})
    points: list[EvalPoint] = []
    n = 0
    for record in records:
        pages = pages_from_record(record)
        window.score(record, pages)
        model.learn_session(pages, bool(record[label]))
        if "group" in record:
            clusterer.learn_one(pages[0])
        n += 1
        if n % every == 0:
            points.append(window.point(n))
            if on_point is not None:
                on_point(points[-1])
            window = _Window(model, clusterer, names or {})
        if progress is not None:
            progress.update(n)
    if n % every and n:
        points.append(window.point(n))
        if on_point is not None:
            on_point(points[-1])
    if progress is not None:
        progress.close(n)
    return points


class _Window:
    """Ground-truth figures over one reporting window."""

    def __init__(
        self, model: PropensityModel, clusterer: SessionClusterer, names: Mapping[str, int]
    ) -> None:
        self.model = model
        self.clusterer = clusterer
        self.names = {cluster: name for name, cluster in names.items()}
        self.planted = BinnedAUC()
        self.groups: dict[int, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )

    def score(self, record: Mapping[str, Any], pages: list[dict[str, float | str]]) -> None:
        if "planted" in record and self.model.quality.n_labelled:
            p = self.model.predict_proba_one(pages[0])[True]
            self.planted.update(bool(record["planted"]), p)
        group = record.get("group")
        if group is not None and self.clusterer.ready:
            self.groups[self.clusterer.predict_one(pages[0])][str(group)] += 1

    def _report(self, cluster: int, counts: collections.Counter[str]) -> ClusterReport:
        persona, top = counts.most_common(1)[0]
        size = sum(counts.values())
        name = self.names.get(cluster)
        return ClusterReport(cluster, name, self.clusterer.describe(cluster), size, persona,
                             top / size)  # fmt: skip

    def point(self, n: int) -> EvalPoint:
        q = self.model.quality
        planted = self.planted
        has_both = planted.n_pos > 0 and planted.n_neg > 0
        reports = tuple(
            self._report(cluster, counts) for cluster, counts in sorted(self.groups.items())
        )
        judged = [r for r in reports if r.name is not None] if self.names else list(reports)
        size = sum(r.size for r in judged)
        purity = sum(r.purity * r.size for r in judged) / size if size else None
        least = min((r.purity for r in judged), default=None)
        return EvalPoint(
            n, q.n_positive, q.auc, q.logloss, self.model.ready, q.auc_end,
            planted.get() if has_both else None, purity, reports, least,
        )  # fmt: skip
