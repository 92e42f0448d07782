"""A clusterer that forms visitor segments by itself, keeps their identity, and says in words
what sets each apart.

river's ``cluster.KMeans`` (sequential k-means) on one-hot categoricals plus standardised
numbers. Its random initial centres often never win a point in a sparse one-hot space (dead
clusters), so the first ``init_size`` sessions seed the centres with k-means++ and a few Lloyd
rounds; after that river updates them online, and every ``refit_every`` sessions they are fitted
again on the most recent ``init_size`` sessions. A refit's new centres are matched to the old
ones (the assignment with the least total distance), so cluster 2 stays the cluster it was and
the names editors give clusters keep meaning the same visitors. ``DBSTREAM`` would find the
number of segments itself, but it is orders of magnitude slower per point, very sensitive to its
radius in a one-hot space, and editors want a stable, small number of segments to name.

:meth:`SessionClusterer.describe` uses what separates a cluster from all sessions (a value
much more common in it than overall), not what is true of everyone that day.

>>> from personalize.learning.simulate import simulate
>>> from personalize.learning.features import features_from_record
>>> clusterer = SessionClusterer(n_clusters=4, seed=1)
>>> for record in simulate(600, seed=1):
...     clusterer.learn_one(features_from_record(record))
>>> c = clusterer.predict_one(features_from_record(
...     {"device_type": "mobile", "channel": "organic_social", "hour": 20, "visits": 1}))
>>> clusterer.describe(c)
'mobile, evening, fashion, new'
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from typing import Any

from personalize.learning.encoding import split
from personalize.learning.extras import river, river_base

__all__ = ["SessionClusterer", "match_centres"]

FeatureDict = Mapping[str, float | str | bool | int | None]
Vector = list[float]

_DESCRIBED = ("device_type", "daypart", "channel", "category", "country")
_MAX_HISTORY = 120  # size-history entries kept
#: Features that say little about who a visitor is count less (an operating system mostly
#: repeats the device; a country splits every persona by where it lives); the device and the
#: channel that opened the session say most (a desk at work or a phone on the sofa; a search,
#: a newsletter or a social feed), so they count more: with the channel alone weighted up, a
#: "paid search" cluster drew in the desktop searchers of office hours too.
_WEIGHTS: Mapping[str, float] = {"os": 0.0, "country": 0.5, "channel": 1.5, "device_type": 1.5}


def _dist(a: Vector, b: Vector) -> float:
    return sum((x - y) * (x - y) for x, y in zip(a, b, strict=False))


def match_centres(old: Sequence[Vector], new: Sequence[Vector]) -> list[int]:
    """For each old centre, the new centre that takes its place: the one-to-one assignment with
    the least total squared distance (exact up to 8 centres, greedy beyond).

    >>> match_centres([[0.0, 0.0], [5.0, 5.0]], [[5.1, 4.9], [0.2, 0.1]])
    [1, 0]
    """
    k = len(old)
    cost = [[_dist(o, n) for n in new] for o in old]
    if k <= 8:
        best = min(
            itertools.permutations(range(k)),
            key=lambda perm: sum(cost[i][perm[i]] for i in range(k)),
        )
        return list(best)
    pairs = sorted((cost[i][j], i, j) for i in range(k) for j in range(k))
    taken_old: set[int] = set()
    taken_new: set[int] = set()
    out = [0] * k
    for _, i, j in pairs:
        if i not in taken_old and j not in taken_new:
            out[i] = j
            taken_old.add(i)
            taken_new.add(j)
    return out


class SessionClusterer(river_base.Clusterer):  # type: ignore[misc]  # river is untyped
    """Online k-means segments of sessions with stable ids, ``describe(cluster_id)`` for
    editors and ``history`` of their sizes."""

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        halflife: float = 0.01,
        numeric_weight: float = 0.5,
        init_size: int = 300,
        n_init: int = 3,
        refit_every: int = 5000,  # sessions between refits (0: never)
        history_every: int = 500,  # sessions per entry of the size history
        max_categories: int = 1000,
        describe_fields: Sequence[str] = _DESCRIBED,
        weights: Mapping[str, float] | None = None,
        seed: int = 0,
    ) -> None:
        self.n_clusters = n_clusters
        self.halflife = halflife
        self.numeric_weight = numeric_weight
        self.init_size = init_size
        self.n_init = n_init
        self.refit_every = refit_every
        self.history_every = history_every
        self.max_categories = max_categories
        self.describe_fields = tuple(describe_fields)
        self.weights = dict(_WEIGHTS if weights is None else weights)
        self.seed = seed
        self._scaler: Any = river.preprocessing.StandardScaler()
        self._kmeans: Any = river.cluster.KMeans(
            n_clusters=n_clusters, halflife=halflife, sigma=0.1, seed=seed
        )
        self._vocab: dict[str, float] = {}  # one-hot keys seen, all 0.0: the dense template
        self._mean: dict[str, float] = {}  # recent sessions' mean vector, as centres move
        self._recent: deque[FeatureDict] = deque(maxlen=init_size)
        self._seeded = False
        self._n = 0  # sessions learned
        self._since_refit = 0
        self._counts = [0] * n_clusters
        self._window = [0] * n_clusters
        self.history: list[tuple[int, list[int]]] = []  # (sessions seen, sizes in the window)
        self.refits = 0

    @property
    def ready(self) -> bool:
        """True once the centres are seeded (after ``init_size`` sessions)."""
        return self._seeded

    def _vector(self, x: FeatureDict, learn: bool) -> dict[str, float]:
        num, cat = split(x)
        if learn:
            self._scaler.learn_one(num)
            for key in cat:
                if key in self._vocab or len(self._vocab) < self.max_categories:
                    self._vocab.setdefault(key, 0.0)
        vector = dict(self._vocab)
        weights = self.weights
        for key in cat:
            if key in vector:
                vector[key] = weights.get(key.partition("=")[0], 1.0) if weights else 1.0
        w = self.numeric_weight
        for key, value in self._scaler.transform_one(num).items():
            vector[key] = w * max(-5.0, min(5.0, value))
        if learn:
            # Over about the last 1,000 sessions: what "everyone" is like now, for describe().
            rate = max(1.0 / (self._n or 1), 0.001)
            mean = self._mean
            for key, value in vector.items():
                m = mean.get(key, 0.0)
                mean[key] = m + rate * (value - m)
        return vector

    def learn_one(self, x: FeatureDict) -> None:
        """Learn one session's features."""
        self._n += 1
        self._recent.append(x)
        if not self._seeded:
            self._vector(x, learn=True)  # the scaler and vocabulary learn from the start
            if len(self._recent) >= self.init_size:
                self._install(self._fit(), match=False)
                self._seeded = True
            return
        c = self._kmeans.learn_predict_one(self._vector(x, learn=True))
        self._counts[c] += 1
        self._window[c] += 1
        if self.history_every and self._n % self.history_every == 0:
            self.history.append((self._n, self._window))
            self._window = [0] * self.n_clusters
            del self.history[:-_MAX_HISTORY]
        self._since_refit += 1
        if self.refit_every and self._since_refit >= self.refit_every:
            self._install(self._fit(), match=True)

    def predict_one(self, x: FeatureDict) -> int:
        """The cluster (segment) id of a session; 0 until the centres are seeded."""
        if not self._seeded:
            return 0
        return int(self._kmeans.predict_one(self._vector(x, learn=False)))

    def _fit(self) -> list[dict[str, float]]:
        """Centres fitted afresh on the recent sessions (k-means++, Lloyd, best of n_init)."""
        rng = random.Random(self.seed + self.refits)
        vectors = [self._vector(x, learn=False) for x in self._recent]
        keys = sorted(set().union(*vectors))
        points = [[v.get(k, 0.0) for k in keys] for v in vectors]
        best: tuple[float, list[Vector]] | None = None
        for _ in range(self.n_init):
            centres = self._lloyd(points, self._plusplus(points, rng))
            inertia = sum(min(_dist(p, c) for c in centres) for p in points)
            if best is None or inertia < best[0]:
                best = (inertia, centres)
        assert best is not None
        return [dict(zip(keys, c, strict=True)) for c in best[1]]

    def _install(self, centres: list[dict[str, float]], *, match: bool) -> None:
        if match:
            keys = sorted(set(self._vocab).union(*centres))
            old = [[self._kmeans.centers[i].get(k, 0.0) for k in keys] for i in range(len(centres))]
            new = [[c.get(k, 0.0) for k in keys] for c in centres]
            centres = [centres[j] for j in match_centres(old, new)]
            self.refits += 1
        self._since_refit = 0
        gauss = functools.partial(self._kmeans._rng.gauss, 0.0, 0.1)  # picklable, unlike a lambda
        for i, centre in enumerate(centres):
            self._kmeans.centers[i] = defaultdict(gauss, centre)

    def _plusplus(self, points: list[Vector], rng: random.Random) -> list[Vector]:
        centres = [rng.choice(points)]
        while len(centres) < self.n_clusters:  # k-means++
            d = [min(_dist(p, c) for c in centres) for p in points]
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
    def _lloyd(points: list[Vector], centres: list[Vector]) -> list[Vector]:
        k = len(centres)
        for _ in range(5):  # Lloyd rounds on the recent sessions
            groups: list[list[Vector]] = [[] for _ in centres]
            for p in points:
                groups[min(range(k), key=lambda i: _dist(p, centres[i]))].append(p)
            centres = [
                [sum(col) / len(g) for col in zip(*g, strict=True)] if g else centres[i]
                for i, g in enumerate(groups)
            ]
        return centres

    def describe(self, cluster_id: int) -> str:
        """The segment in words: what is much more common in it than in recent sessions
        overall, e.g. ``"mobile, evening, email, returning"``."""
        centre = self._kmeans.centers.get(cluster_id)
        if centre is None or not self._seeded:
            return "not formed yet"
        mean = self._mean
        words: list[str] = []
        for field in self.describe_fields:
            prefix = field + "="
            weight = self.weights.get(field, 1.0) or 1.0
            best, lift = None, 0.0
            for key in self._vocab:
                if not key.startswith(prefix) or "&" in key:
                    continue
                share = centre.get(key, 0.0) / weight
                overall = mean.get(key, 0.0) / weight
                if share >= 0.5 and share >= overall + 0.15 and share - overall > lift:
                    best, lift = key[len(prefix) :], share - overall
            if best is not None and best not in ("unknown", "none", "other"):
                words.append(best.replace("_", " "))
        w = self.numeric_weight
        visits = self._numeric(centre, "visits")
        if visits is not None and abs(centre["visits"] - mean.get("visits", 0.0)) / w > 0.4:
            n = math.expm1(visits)  # features carry log1p(visits)
            words.append("new" if n < 2.5 else "returning" if n < 8 else "loyal")
        for key, word in (("known", "logged in"), ("weekend", "weekend")):
            level = self._numeric(centre, key)
            usual = self._numeric(mean, key)
            if level is not None and usual is not None and level > 0.5 and level > usual + 0.25:
                words.append(word)
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
