"""Prequential evaluation: replay labelled sessions through the models, test then train.

>>> from personalize.learning.simulate import simulate
>>> points = evaluate(simulate(2000, seed=1), every=1000)
>>> [p.n for p in points], points[-1].auc > 0.55
([1000, 2000], True)

A replay file is read by :class:`Replay`, which knows the line each record came from, so a
bad record is reported as ``FILE:LINE: problem``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from personalize.learning.features import features_from_record

if TYPE_CHECKING:
    from personalize.learning.propensity import PropensityModel

__all__ = ["EvalPoint", "Progress", "Replay", "ReplayError", "evaluate", "read_jsonl"]


@dataclass(frozen=True, slots=True)
class EvalPoint:
    """Prequential figures after ``n`` sessions."""

    n: int
    positives: int
    auc: float
    logloss: float
    ready: bool


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


class ReplayError(ValueError):
    """A record of a replay file that cannot be used, with where it is."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}")
        self.path, self.line, self.problem = path, line, problem


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
    every: int = 1000,
    label: str = "converted",
    progress: Progress | None = None,
    on_point: Callable[[EvalPoint], None] | None = None,
) -> list[EvalPoint]:
    """Replay ``records`` (with a boolean ``label`` key) through ``model``; a point every N,
    each also given to ``on_point`` as soon as it is computed."""
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
            if on_point is not None:
                on_point(points[-1])
        if progress is not None:
            progress.update(n)
    if n % every and n:
        q = model.quality
        points.append(EvalPoint(n, q.n_positive, q.auc, q.logloss, model.ready))
        if on_point is not None:
            on_point(points[-1])
    if progress is not None:
        progress.close(n)
    return points
