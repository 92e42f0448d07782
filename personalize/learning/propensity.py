"""The propensity model: the probability that this session converts, learned online.

A lean river pipeline: one-hot categoricals (and crosses of them), numbers through
:class:`~personalize.learning.scaling.AutoScaler` (``log1p`` decided per feature for skewed
counts and durations, then standardised and clipped, so one extreme visit cannot swing the
weights), then ``linear_model.LogisticRegression``. It is a river ``base.Classifier``:
``predict_proba_one`` gives ``{True: p, False: 1 - p}`` and ``clone()`` gives a fresh model
with the same parameters.

Sessions are learned whole with :meth:`PropensityModel.learn_session`: one feature dict per
page, as it was when the page was served (a decision is made at each page's start), and the
session's label. Before learning, every page is scored (test then train), so ``quality``
holds two prequential ROC AUCs: at decision time (each page's start; the quality gate uses
it) and at the end of the session (its last page). ``learn_one(x, y)`` is a one-page session.

>>> model = PropensityModel(min_labelled=20, min_auc=0.6)
>>> for i in range(200):
...     model.learn_one({"channel": "email" if i % 2 else "direct"}, y=i % 2 == 1 and i % 4 != 3)
>>> email, direct = (model.predict_proba_one({"channel": c})[True] for c in ("email", "direct"))
>>> email > direct, model.clone().quality.n_labelled
(True, 0)
>>> model.quality.n_labelled, model.quality.auc > 0.7, model.ready
(200, True, True)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from personalize.learning.encoding import split
from personalize.learning.extras import river, river_base
from personalize.learning.metrics import BinnedAUC
from personalize.learning.scaling import AutoScaler

__all__ = ["DEFAULT_CROSSES", "PropensityModel", "Quality"]

FeatureDict = Mapping[str, float | str | bool | int | None]

#: Categorical features crossed by default: channel, device and time of day interact (the
#: triple is the context a campaign targets: "paid search on a phone in the evening").
DEFAULT_CROSSES: tuple[tuple[str, ...], ...] = (
    ("channel", "device_type"),
    ("channel", "daypart"),
    ("device_type", "daypart"),
    ("channel", "device_type", "daypart"),
)


@dataclass(frozen=True, slots=True)
class Quality:
    """Prequential quality: labelled sessions seen, positives, and ROC AUC and mean log loss
    at decision time (each page's start), with the end-of-session ROC AUC (last page)."""

    n_labelled: int
    n_positive: int
    auc: float  # at decision time: every page's start, scored before the session was learned
    logloss: float  # at decision time
    auc_end: float = 0.5  # the session's last page
    n_decisions: int = 0  # pages scored at decision time


class PropensityModel(river_base.Classifier):  # type: ignore[misc]  # river is untyped
    """Online logistic regression on mixed numeric and categorical feature dicts.

    ``log1p`` is ``"auto"`` (skewed non-negative numbers are log-scaled, decided per feature
    from its first values) or the names of the features to log-scale (the others stay as they
    are); ``crosses`` are tuples of categorical features crossed into interaction one-hots;
    ``clip`` bounds scaled numbers to ±clip standard deviations. The quality gate opens
    (``ready``) after ``min_labelled`` labelled sessions with a decision-time prequential AUC
    above ``min_auc``.
    """

    def __init__(
        self,
        *,
        learning_rate: float = 0.02,
        l2: float = 1e-5,
        log1p: Collection[str] | Literal["auto"] = "auto",
        crosses: Sequence[tuple[str, ...]] = DEFAULT_CROSSES,
        clip: float = 5.0,
        threshold: float = 0.5,
        min_labelled: int = 1000,
        min_auc: float = 0.6,
    ) -> None:
        self.learning_rate = learning_rate
        self.l2 = l2
        self.log1p = log1p if log1p == "auto" else frozenset(log1p)
        self.crosses = tuple(tuple(c) for c in crosses)
        self.clip = clip
        self.threshold = threshold
        self.min_labelled = min_labelled
        self.min_auc = min_auc
        auto = log1p == "auto"
        self._scaler = AutoScaler(clip=clip, auto=auto, log1p=() if auto else self.log1p)
        self._lr: Any = river.linear_model.LogisticRegression(
            optimizer=river.optim.SGD(learning_rate), l2=l2
        )
        self._auc = BinnedAUC()
        self._auc_end = BinnedAUC()
        self._logloss: Any = river.metrics.LogLoss()
        self._n = 0
        self._n_pos = 0

    def _encode(self, x: FeatureDict) -> tuple[dict[str, float], dict[str, float]]:
        return split(x, crosses=self.crosses)

    def _features(self, num: dict[str, float], cat: dict[str, float]) -> dict[str, float]:
        features = dict(cat)
        features.update(self._scaler.transform_one(num))
        return features

    def _p(self, x: FeatureDict) -> float:
        num, cat = self._encode(x)
        p: float = self._lr.predict_proba_one(self._features(num, cat))[True]
        return p

    def predict_proba_one(self, x: FeatureDict) -> dict[bool, float]:
        """``{True: p, False: 1 - p}``: the probability that the session converts, or not."""
        p = self._p(x)
        return {True: p, False: 1.0 - p}

    def predict_one(self, x: FeatureDict) -> bool:
        """Whether the session is predicted to convert (probability >= ``threshold``)."""
        return self._p(x) >= self.threshold

    def learn_one(self, x: FeatureDict, y: bool, w: float = 1.0) -> None:
        """Learn a one-page session (river's interface; ``w`` weighs it)."""
        self.learn_session((x,), y, w=w)

    def learn_session(self, pages: Sequence[FeatureDict], y: bool, *, w: float = 1.0) -> None:
        """Learn one labelled session from its pages' features, after scoring each page for
        the prequential metrics. The pages share the session's weight ``w``: a long session
        counts as one example, not as one per page."""
        if not pages:
            return
        y = bool(y)
        encoded = [self._encode(x) for x in pages]
        if self._n:
            p = 0.0
            for num, cat in encoded:
                p = self._lr.predict_proba_one(self._features(num, cat))[True]
                self._auc.update(y, p)
                self._logloss.update(y, p)
            self._auc_end.update(y, p)
        share = w / len(encoded)
        for num, cat in encoded:
            self._scaler.learn_one(num)
            self._lr.learn_one(self._features(num, cat), y, w=share)
        self._n += 1
        self._n_pos += y

    @property
    def quality(self) -> Quality:
        """Labelled sessions seen and the prequential figures so far."""
        return Quality(
            self._n,
            self._n_pos,
            self._auc.get(),
            float(self._logloss.get()),
            self._auc_end.get(),
            self._auc.n,
        )

    @property
    def ready(self) -> bool:
        """The quality gate: enough labelled sessions and a decision-time AUC above the floor."""
        return self._n >= self.min_labelled and self._auc.get() > self.min_auc

    def __repr__(self) -> str:
        q = self.quality
        return (
            f"PropensityModel(n_labelled={q.n_labelled}, auc={q.auc:.3f}, "
            f"auc_end={q.auc_end:.3f}, logloss={q.logloss:.4f}, ready={self.ready})"
        )
