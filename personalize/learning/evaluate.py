"""Prequential evaluation: replay labelled sessions through the models, test then train.

>>> from personalize.learning.simulate import simulate
>>> points = evaluate(simulate(2000, seed=1), every=1000)
>>> [p.n for p in points], points[-1].auc > 0.55
([1000, 2000], True)
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from personalize.learning.features import features_from_record

if TYPE_CHECKING:
    from personalize.learning.propensity import PropensityModel

__all__ = ["EvalPoint", "Progress", "evaluate", "read_jsonl"]


@dataclass(frozen=True, slots=True)
class EvalPoint:
    """Prequential figures after ``n`` sessions."""

    n: int
    positives: int
    auc: float
    logloss: float
    ready: bool


class Progress:
    """A dependency-free progress bar on a stream (stderr), redrawn at most ~10 times a second."""

    def __init__(self, total: int | None, out: TextIO | None = None, width: int = 30) -> None:
        self.total = total
        self.out = out if out is not None else sys.stderr
        self.width = width
        self._last = 0.0
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
            self.out.write(f"\r[{bar}] {n}/{self.total} sessions, {rate:,.0f}/s")
        else:
            self.out.write(f"\r{n} sessions, {rate:,.0f}/s")
        self.out.flush()

    def close(self, n: int) -> None:
        self.update(n, force=True)
        self.out.write("\n")
        self.out.flush()


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file, one per non-empty line."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def evaluate(
    records: Iterable[Mapping[str, Any]],
    *,
    model: PropensityModel | None = None,
    every: int = 1000,
    label: str = "converted",
    progress: Progress | None = None,
) -> list[EvalPoint]:
    """Replay ``records`` (with a boolean ``label`` key) through ``model``; a point every N."""
    if model is None:
        from personalize.learning.propensity import PropensityModel  # needs river

        model = PropensityModel()
    points: list[EvalPoint] = []
    n = 0
    for record in records:
        model.learn_one(features_from_record(record), bool(record[label]))
        n += 1
        if n % every == 0:
            q = model.quality
            points.append(EvalPoint(n, q.n_positive, q.auc, q.logloss, model.ready))
        if progress is not None:
            progress.update(n)
    if n % every and n:
        q = model.quality
        points.append(EvalPoint(n, q.n_positive, q.auc, q.logloss, model.ready))
    if progress is not None:
        progress.close(n)
    return points
