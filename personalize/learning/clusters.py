"""A clusterer that forms visitor segments by itself and describes each in words.

river's ``cluster.KMeans`` (sequential k-means) on one-hot categoricals plus standardised
numbers. Its random initial centres often never win a point in a sparse one-hot space (dead
clusters), so the first ``init_size`` sessions seed the centres with k-means++ and a few Lloyd
rounds; after that river updates them online. ``DBSTREAM`` would find the number of segments
itself, but it is orders of magnitude slower per point, very sensitive to its radius in a
one-hot space, and editors want a stable, small number of segments to name.

>>> from personalize.learning.simulate import simulate
>>> from personalize.learning.features import features_from_record
>>> clusterer = SessionClusterer(n_clusters=4, seed=1)
>>> for record in simulate(600, seed=1):
...     clusterer.learn_one(features_from_record(record))
>>> c = clusterer.predict_one(features_from_record(
...     {"device_type": "mobile", "channel": "organic_social", "hour": 20, "visits": 1}))
>>> clusterer.describe(c)
'mobile, evening, organic social, fashion, new'
"""

from __future__ import annotations

import collections
import functools
import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from personalize.learning.encoding import split
from personalize.learning.extras import river, river_base

__all__ = ["SessionClusterer"]

FeatureDict = Mapping[str, float | str | bool | int | None]

_Dist = Callable[[Mapping[str, float], Mapping[str, float]], float]
_DESCRIBED = ("device_type", "daypart", "channel", "category", "country")


class SessionClusterer(river_base.Clusterer):  # type: ignore[misc]  # river is untyped
    """Online k-means segments of sessions, with ``describe(cluster_id)`` for editors."""

    def __init__(
        self,
        n_clusters: int = 6,
        *,
        halflife: float = 0.02,
        numeric_weight: float = 0.5,
        init_size: int = 300,
        n_init: int = 3,
        max_categories: int = 1000,
        describe_fields: Sequence[str] = _DESCRIBED,
        seed: int = 0,
    ) -> None:
        self.n_clusters = n_clusters
        self.halflife = halflife
        self.numeric_weight = numeric_weight
        self.init_size = init_size
        self.n_init = n_init
        self.max_categories = max_categories
        self.describe_fields = tuple(describe_fields)
        self.seed = seed
        self._scaler: Any = river.preprocessing.StandardScaler()
        self._kmeans: Any = river.cluster.KMeans(
            n_clusters=n_clusters, halflife=halflife, sigma=0.1, seed=seed
        )
        self._vocab: dict[str, float] = {}  # one-hot keys seen, all 0.0: the dense template
        self._buffer: list[FeatureDict] | None = []
        self._counts = [0] * n_clusters

    @property
    def ready(self) -> bool:
        """True once the centres are seeded (after ``init_size`` sessions)."""
        return self._buffer is None

    def _vector(self, x: FeatureDict, learn: bool) -> dict[str, float]:
        num, cat = split(x)
        if learn:
            self._scaler.learn_one(num)
            if len(self._vocab) < self.max_categories:
                for key in cat:
                    self._vocab.setdefault(key, 0.0)
        vector = dict(self._vocab)
        for key in cat:
            if key in vector:
                vector[key] = 1.0
        w = self.numeric_weight
        for key, value in self._scaler.transform_one(num).items():
            vector[key] = w * max(-5.0, min(5.0, value))
        return vector

    def learn_one(self, x: FeatureDict) -> None:
        """Learn one session's features."""
        if self._buffer is not None:
            self._vector(x, learn=True)  # the scaler and vocabulary learn from the start
            self._buffer.append(x)
            if len(self._buffer) >= self.init_size:
                self._seed([self._vector(b, learn=False) for b in self._buffer])
                self._buffer = None
            return
        c = self._kmeans.learn_predict_one(self._vector(x, learn=True))
        self._counts[c] += 1

    def predict_one(self, x: FeatureDict) -> int:
        """The cluster (segment) id of a session; 0 until the centres are seeded."""
        if self._buffer is not None:
            return 0
        return int(self._kmeans.predict_one(self._vector(x, learn=False)))

    def _seed(self, points: list[dict[str, float]]) -> None:
        rng = random.Random(self.seed)
        keys = list(self._vocab) + [k for k in points[0] if k not in self._vocab]

        def dist(a: Mapping[str, float], b: Mapping[str, float]) -> float:
            return sum((a.get(k, 0.0) - b.get(k, 0.0)) ** 2 for k in keys)

        best: tuple[float, list[dict[str, float]]] | None = None
        for _ in range(self.n_init):
            centres = self._lloyd(points, self._plusplus(points, rng, dist), keys, dist)
            inertia = sum(min(dist(p, c) for c in centres) for p in points)
            if best is None or inertia < best[0]:
                best = (inertia, centres)
        assert best is not None
        gauss = functools.partial(self._kmeans._rng.gauss, 0.0, 0.1)
        for i, centre in enumerate(best[1]):
            self._kmeans.centers[i] = collections.defaultdict(gauss, centre)
            self._counts[i] = 0

    def _plusplus(
        self, points: list[dict[str, float]], rng: random.Random, dist: _Dist
    ) -> list[dict[str, float]]:
        centres = [rng.choice(points)]
        while len(centres) < self.n_clusters:  # k-means++
            d = [min(dist(p, c) for c in centres) for p in points]
            total = sum(d)
            if total == 0:
                centres.append(rng.choice(points))
                continue
            r = rng.random() * total
            for p, dp in zip(points, d, strict=True):
                r -= dp
                if r <= 0:
                    centres.append(p)
                    break
            else:
                centres.append(points[-1])
        return centres

    @staticmethod
    def _lloyd(
        points: list[dict[str, float]],
        centres: list[dict[str, float]],
        keys: list[str],
        dist: _Dist,
    ) -> list[dict[str, float]]:
        for _ in range(5):  # Lloyd rounds on the seed buffer
            groups: list[list[dict[str, float]]] = [[] for _ in centres]
            for p in points:
                groups[min(range(len(centres)), key=lambda i: dist(p, centres[i]))].append(p)
            centres = [
                {k: sum(p.get(k, 0.0) for p in g) / len(g) for k in keys} if g else centres[i]
                for i, g in enumerate(groups)
            ]
        return centres

    def describe(self, cluster_id: int) -> str:
        """The segment in words from its centre, e.g. ``"mobile, evening, email, returning"``."""
        centre = self._kmeans.centers.get(cluster_id)
        if centre is None or self._buffer is not None:
            return "not formed yet"
        words: list[str] = []
        for field in self.describe_fields:
            prefix = field + "="
            best, share = None, 0.0
            for key in self._vocab:
                if key.startswith(prefix) and "&" not in key and centre.get(key, 0.0) > share:
                    best, share = key[len(prefix) :], centre.get(key, 0.0)
            if best is not None and share >= 0.5 and best not in ("unknown", "none", "other"):
                words.append(best.replace("_", " "))
        visits = self._numeric(centre, "visits")
        if visits is not None:
            n = math.expm1(visits)  # features carry log1p(visits)
            words.append("new" if n < 2.5 else "returning" if n < 8 else "loyal")
        if (self._numeric(centre, "known") or 0.0) > 0.5:
            words.append("logged in")
        if (self._numeric(centre, "weekend") or 0.0) > 0.5:
            words.append("weekend")
        return ", ".join(words) if words else f"segment {cluster_id}"

    def _numeric(self, centre: Mapping[str, float], key: str) -> float | None:
        """A centre's numeric coordinate back on the feature's own scale."""
        if key not in centre or key not in self._scaler.means:
            return None
        std = math.sqrt(self._scaler.vars.get(key, 0.0))
        return float(self._scaler.means[key] + centre[key] / self.numeric_weight * std)

    def sizes(self) -> dict[int, int]:
        """Sessions learned per cluster since the centres were seeded."""
        return dict(enumerate(self._counts))
