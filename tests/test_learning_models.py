"""The learned-segment models on simulated traffic with planted ground truth."""

from __future__ import annotations

import collections
import pickle
from dataclasses import replace
from typing import Any

import pytest

from personalize.context import Clock, Device, Geo, Source, VisitorContext
from personalize.learning import (
    AnomalyScorer,
    Learner,
    ModelSet,
    PropensityModel,
    SessionClusterer,
    SessionLabeller,
    Snapshot,
    features_from_record,
    session_features,
    simulate,
)
from personalize.learning.metrics import BinnedAUC
from personalize.profiles.profile import Profile, SessionRecord


@pytest.fixture(scope="module")
def trained() -> tuple[PropensityModel, list[dict[str, Any]], list[float]]:
    model = PropensityModel()
    for record in simulate(20_000, seed=1):
        model.learn_one(features_from_record(record), record["converted"])
    holdout = list(simulate(5_000, seed=2))
    return model, holdout, [model.predict_proba_one(features_from_record(r))[True] for r in holdout]


def test_features_from_context_and_profile_match_the_record_path() -> None:
    ctx = VisitorContext(
        geo=Geo(country="GB"),
        device=Device(type="mobile", os="Android"),
        source=Source(channel="email"),
        clock=Clock(hour=7, daypart="morning", weekday=5, weekend=True),
    )
    profile = Profile(
        key="u:1", user_id="1", visits=3, page_views=10, first_seen=0.0,
        affinities={"home": 3.0, "garden": 1.0},
        sessions=[SessionRecord(started=0.0, last_seen=0.0, page_views=4, channel="email")],
    )  # fmt: skip
    x = session_features(ctx, profile, now=2 * 86400.0)
    # The session's entry channel, not this page's (later pages come by internal links).
    assert session_features(replace(ctx, source=Source(channel="internal")), profile,
                            now=2 * 86400.0) == x  # fmt: skip
    record = {
        "hour": 7, "weekday": 5, "device_type": "mobile", "os": "Android", "channel": "email",
        "country": "GB", "known": True, "visits": 3, "page_views": 10, "session_page_views": 4,
        "days_since_first": 2.0, "affinities": {"home": 3.0, "garden": 1.0},
    }  # fmt: skip
    assert x == features_from_record(record)
    assert x["affinity_share"] == 0.75 and x["category"] == "home" and x["weekend"] == 1.0
    new = session_features(VisitorContext(), None, now=0.0)
    assert new["visits"] == 0.0 and new["country"] == "unknown" and new["known"] == 0.0


def test_propensity_ranks_the_planted_group_and_beats_chance(trained: Any) -> None:
    model, holdout, ps = trained
    planted = [p for p, r in zip(ps, holdout, strict=True) if r["planted"]]
    others = [p for p, r in zip(ps, holdout, strict=True) if not r["planted"]]
    ratio = (sum(planted) / len(planted)) / (sum(others) / len(others))
    assert ratio > 2.2, ratio  # the planted lift is 3x; measured ~3.1
    auc = BinnedAUC()
    for p, r in zip(ps, holdout, strict=True):
        auc.update(r["converted"], p)
    assert auc.get() > 0.66, auc.get()  # measured ~0.72 (the oracle's is ~0.76)
    assert model.quality.auc > 0.66 and model.ready


def test_quality_gate_closed_before_enough_labels_then_open() -> None:
    model = PropensityModel(min_labelled=3000, min_auc=0.6)
    for i, record in enumerate(simulate(4000, seed=4)):
        model.learn_one(features_from_record(record), record["converted"])
        if i == 500:
            assert not model.ready and model.quality.n_labelled == 501
    assert model.ready, model.quality
    strict = PropensityModel(min_labelled=10, min_auc=0.99)
    for record in simulate(1000, seed=4):
        strict.learn_one(features_from_record(record), record["converted"])
    assert not strict.ready  # enough labels, AUC under the floor


def test_binned_auc_matches_the_exact_pairwise_auc() -> None:
    import random

    rng = random.Random(3)
    pairs = [(rng.random() < 0.1, rng.random() ** 3) for _ in range(2000)]
    pairs = [(y, min(1.0, p * (2 if y else 1))) for y, p in pairs]
    pos = [p for y, p in pairs if y]
    neg = [p for y, p in pairs if not y]
    exact = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))
    auc = BinnedAUC()
    for y, p in pairs:
        auc.update(y, p)
    assert abs(auc.get() - exact) < 0.01


def test_pickle_round_trip_keeps_predictions(trained: Any) -> None:
    model, holdout, ps = trained
    clusterer = SessionClusterer(n_clusters=4, seed=1)
    anomaly = AnomalyScorer(seed=1)
    for record in simulate(1500, seed=5):
        clusterer.learn_one(features_from_record(record))
        anomaly.learn_one(features_from_record(record))
    snap = Snapshot(7, 123.0, ModelSet(model, clusterer, anomaly))
    back = Snapshot.loads(snap.dumps())
    assert (back.version, back.created_at) == (7, 123.0)
    xs = [features_from_record(r) for r in holdout[:200]]
    assert [back.models.propensity.predict_proba_one(x)[True] for x in xs] == ps[:200]
    assert [back.models.clusterer.predict_one(x) for x in xs] == [
        clusterer.predict_one(x) for x in xs
    ]
    assert [back.models.anomaly.score_one(x) for x in xs] == [anomaly.score_one(x) for x in xs]
    assert pickle.loads(pickle.dumps(model)).quality == model.quality
    with pytest.raises(ValueError):
        Snapshot.loads(b"not a snapshot")


def _purity(pairs: list[tuple[int, str]]) -> float:
    by_cluster: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for cluster, group in pairs:
        by_cluster[cluster][group] += 1
    return sum(max(c.values()) for c in by_cluster.values()) / len(pairs)


def test_clusterer_recovers_planted_groups_and_describes_them() -> None:
    clusterer = SessionClusterer(n_clusters=4, seed=1)
    for record in simulate(5000, seed=1):
        clusterer.learn_one(features_from_record(record))
    test = list(simulate(2000, seed=3))
    pairs = [(clusterer.predict_one(features_from_record(r)), r["group"]) for r in test]
    purity = _purity(pairs)
    assert purity > 0.75, purity  # 4 personas that overlap (two are mobile-evening)
    names = {clusterer.describe(c) for c in range(4)}
    assert any("email" in n and "loyal" in n for n in names), names
    assert any(n.startswith("mobile, evening") for n in names), names
    assert SessionClusterer().describe(0) == "not formed yet"


def test_anomaly_flags_injected_outliers_above_normal_traffic() -> None:
    scorer = AnomalyScorer(seed=1)
    for record in simulate(4000, seed=1, outlier_rate=0.01):
        scorer.learn_one(features_from_record(record))
    test = list(simulate(3000, seed=9, outlier_rate=0.02))
    outliers = [features_from_record(r) for r in test if r["group"] == "outlier"]
    normal = [features_from_record(r) for r in test if r["group"] != "outlier"]
    mean = lambda xs: sum(scorer.score_one(x) for x in xs) / len(xs)  # noqa: E731
    assert mean(outliers) > mean(normal) + 0.15
    assert sum(map(scorer.flag_one, outliers)) / len(outliers) > 0.7
    assert sum(map(scorer.flag_one, normal)) / len(normal) < 0.02


def test_labeller_learns_late_labels_deterministically_and_stays_bounded() -> None:
    learned: list[tuple[str, bool]] = []

    class Recorder:
        def learn_session(self, pages: Any, y: bool) -> None:
            learned.append((pages[-1]["id"], y))

    now = [0.0]
    labeller = SessionLabeller(Recorder(), timeout=100, max_open=3, clock=lambda: now[0])
    for i in range(5):
        now[0] = float(i)
        labeller.observe(f"s{i}", {"id": f"s{i}"})
    assert len(labeller) == 3 and labeller.dropped == 2  # s0, s1 dropped, not guessed
    assert labeller.convert("s3") and not labeller.convert("s0")
    now[0] = 50.0
    labeller.observe("s2", {"id": "s2"})  # activity keeps it open
    assert labeller.expire(now=104.5) == 1  # s4 (last seen 4) only
    assert labeller.end("s2")
    assert learned == [("s3", True), ("s4", False), ("s2", False)]
    # A labelled session stays labelled: its next page neither reopens it nor counts twice.
    assert not labeller.observe("s3", {"id": "s3"}) and not labeller.convert("s3")
    assert not labeller.end("s3") and len(labeller) == 0
    assert not labeller.convert("s2") and labeller.late == 1  # an order after the negative
    assert (labeller.positives, labeller.negatives) == (1, 2)


def test_labeller_keeps_the_first_pages_and_the_latest() -> None:
    sessions: list[list[int]] = []

    class Recorder:
        def learn_session(self, pages: Any, y: bool) -> None:
            sessions.append([p["page"] for p in pages])

    labeller = SessionLabeller(Recorder(), max_pages=4, clock=lambda: 0.0)
    for page in range(1, 11):
        labeller.observe("s", {"page": page})
    labeller.convert("s")
    assert sessions == [[1, 2, 3, 10]]


def test_the_labeller_keeps_each_page_as_it_was_seen() -> None:
    learned: list[list[dict[str, Any]]] = []

    class Recorder:
        def learn_session(self, pages: Any, y: bool) -> None:
            learned.append([dict(p) for p in pages])

    pages = [
        {"channel": "email", "pages": 1.0, "category": "none"},
        {"channel": "email", "pages": 2.0, "category": "shoes"},
        {"channel": "email", "pages": 3.0},  # a key gone
        {"channel": "email", "pages": 4.0, "category": "none", "known": 1.0},  # one more
    ]
    labeller = SessionLabeller(Recorder(), clock=lambda: 0.0)
    for x in pages:
        labeller.observe("s", x)
    labeller.end("s")
    assert learned == [pages]


def test_learner_handles_events_and_rejects_garbage() -> None:
    now = [0.0]
    learner = Learner(ModelSet.create(seed=1), timeout=60, clock=lambda: now[0])
    x = features_from_record({"channel": "email"})
    learner.handle({"kind": "session", "session": "a", "x": x})
    learner.handle({"kind": "session", "session": "b", "x": x})
    learner.handle({"kind": "convert", "session": "a"})
    learner.handle({"kind": "label", "x": x, "y": False})
    for bad in ({}, {"kind": "nope"}, {"kind": "session", "session": "c", "x": 3}):
        learner.handle(bad)
    assert learner.rejected == 3 and learner.events == 4
    now[0] = 61.0
    assert learner.tick() == 1
    assert learner.models.propensity.quality.n_labelled == 3
    assert learner.snapshot().version == 1 and learner.snapshot().version == 2


def test_missing_river_says_what_to_install() -> None:
    import subprocess
    import sys

    script = (
        "import sys; sys.modules['river'] = None; from personalize.learning import PropensityModel"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode != 0
    assert "pip install 'personalize[learn]'" in run.stderr


def test_personalize_itself_does_not_import_river() -> None:
    import subprocess
    import sys

    script = (
        "import sys; sys.modules['river'] = None; import personalize, personalize.middleware; "
        "print(sorted(m for m in sys.modules if m.startswith('personalize.learning')))"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_the_models_follow_rivers_contracts() -> None:
    """river's own tools apply: clone() gives a fresh model with the same parameters."""
    from river import base

    from personalize.learning import AnomalyScorer, PropensityModel, SessionClusterer

    model = PropensityModel(learning_rate=0.05, min_labelled=5)
    model.learn_one({"channel": "email"}, True)
    fresh = model.clone()
    assert isinstance(model, base.Classifier)
    assert fresh.learning_rate == 0.05 and fresh.min_labelled == 5
    assert fresh.quality.n_labelled == 0 and model.quality.n_labelled == 1
    proba = fresh.predict_proba_one({"channel": "email"})
    assert set(proba) == {True, False} and abs(sum(proba.values()) - 1.0) < 1e-9
    clusterer = SessionClusterer(n_clusters=3, seed=4)
    assert isinstance(clusterer, base.Clusterer)
    assert clusterer.clone().n_clusters == 3 and clusterer.clone().seed == 4
    scorer = AnomalyScorer(window_size=50, q=0.9)
    assert isinstance(scorer, base.AnomalyDetector)
    assert scorer.clone().window_size == 50 and scorer.clone().q == 0.9


def test_clusters_keep_their_identity_across_refits_and_say_what_sets_them_apart() -> None:
    records = list(simulate(3000, seed=6))
    probes = [features_from_record(r) for r in simulate(600, seed=8)]
    clusterer = SessionClusterer(seed=2, refit_every=1500)
    for record in records[:1500]:
        clusterer.learn_one(features_from_record(record))
    before = [clusterer.predict_one(x) for x in probes]
    for record in records[1500:]:
        clusterer.learn_one(features_from_record(record))
    assert clusterer.refits == 1  # fitted afresh, then matched to the old centres
    after = [clusterer.predict_one(x) for x in probes]
    kept = sum(a == b for a, b in zip(before, after, strict=True)) / len(probes)
    # Measured 0.76 with the defaults (8 clusters); 0.60 with the old feature weights and 0.44
    # with the old 6 clusters too. Without matching, ids are a lottery (about 1 in 8).
    assert kept > 0.7, kept
    assert len(clusterer.history) == 6 and all(len(sizes) == 8 for _, sizes in clusterer.history)
    # A weekend: every session is on a Saturday. That sets no cluster apart.
    weekend = SessionClusterer(seed=2, refit_every=1500)
    for i, record in enumerate(records):
        weekend.learn_one(features_from_record({**record, "weekday": 5} if i > 1000 else record))
    described = [weekend.describe(c) for c in range(8)]
    assert not any("weekend" in d for d in described), described
    assert any(d.startswith("mobile, evening, paid search") for d in described), described


def test_an_older_snapshot_is_refused_and_the_learner_starts_over_with_a_newer_version() -> None:
    from personalize.learning.scaleout import StreamLearner

    old = b"PZLS1\n" + pickle.dumps((4, 1.0, "old models"))
    with pytest.raises(ValueError, match="older personalize version"):
        Snapshot.loads(old)

    class FakeRedis:
        def get(self, key: str) -> bytes | None:
            return {"m:snapshot": old, "m:version": b"4"}.get(key)

        def xgroup_create(self, *args: Any, **kwargs: Any) -> None:
            return None

    learner = StreamLearner(client=FakeRedis(), prefix="m")
    assert (
        learner.learner.version == 4 and learner.learner.models.propensity.quality.n_labelled == 0
    )
    assert learner.learner.snapshot().version == 5  # workers see a newer version, and take it


def test_evaluate_judges_each_named_cluster_not_their_mean() -> None:
    from personalize.learning.evaluate import evaluate

    records = list(simulate(3000, seed=1))
    everyone = evaluate(records, clusterer=SessionClusterer(n_clusters=6, seed=1), every=3000)
    reports = everyone[-1].clusters
    assert len(reports) >= 4 and sum(r.size for r in reports) > 0
    for r in reports:  # a persona share per cluster, from the window's own sessions
        assert r.persona in {"evening_social", "office_search", "loyal_email", "deal_hunter"}
        assert 0.25 <= r.purity <= 1.0 and r.size > 0
    worst, best = min(reports, key=lambda r: r.purity), max(reports, key=lambda r: r.purity)
    assert worst.purity < best.purity
    # Name the purest and the least pure: the mean sits between them, the verdict is the worst.
    names = {"best": best.cluster, "worst": worst.cluster}
    named = evaluate(
        records, clusterer=SessionClusterer(n_clusters=6, seed=1), names=names, every=3000
    )[-1]
    judged = {r.name: r for r in named.clusters if r.name is not None}
    assert set(judged) == {"best", "worst"}
    assert named.purity_min == judged["worst"].purity == worst.purity
    mean = (best.purity * best.size + worst.purity * worst.size) / (best.size + worst.size)
    assert named.purity == pytest.approx(mean)
    assert named.purity_min is not None and named.purity is not None
    assert named.purity_min < named.purity < judged["best"].purity
    # Without names every cluster is judged; a name for a cluster no session reached is not.
    assert everyone[-1].purity_min == worst.purity
    assert evaluate(records[:10], names={"x": 0}, every=10)[-1].purity_min is None
