import json
import math

import numpy as np
import pytest

from painterid.core.errors import DataError
from painterid.evaluation.metrics import (
    best_threshold,
    bootstrap_ci,
    eer,
    map_at_r,
    pair_report,
    roc_auc,
    tar_at_far,
    threshold_metrics,
)

SEP_SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
SEP_LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0])

# Descending: 0.95(n) 0.9(p) 0.8(p) 0.7(p) 0.6(n) 0.35(p) 0.3(n) 0.1(n):
# one negative above the positives, one positive below a negative.
MIS_SCORES = np.array([0.9, 0.8, 0.7, 0.35, 0.95, 0.6, 0.3, 0.1])
MIS_LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0])


def test_perfect_separation():
    assert roc_auc(SEP_SCORES, SEP_LABELS) == 1.0
    rate, thr = eer(SEP_SCORES, SEP_LABELS)
    assert rate == 0.0
    assert 0.4 < thr <= 0.6
    m = threshold_metrics(SEP_SCORES, SEP_LABELS, 0.5)
    assert m["accuracy"] == m["precision"] == m["recall"] == m["f1"] == 1.0
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (4, 0, 4, 0)


def test_reversed_scores():
    assert roc_auc(-SEP_SCORES, SEP_LABELS) == 0.0
    assert eer(-SEP_SCORES, SEP_LABELS)[0] == 1.0


def test_threshold_metrics_hand_computed():
    scores = [0.9, 0.6, 0.4, 0.7, 0.2, 0.5]
    labels = [1, 1, 1, 0, 0, 0]
    m = threshold_metrics(scores, labels, 0.5)
    # predicted same: 0.9 (tp) 0.6 (tp) 0.7 (fp) 0.5 (fp, >= is "same"); 0.4 is fn; 0.2 tn
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 2, 1, 1)
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert m["accuracy"] == pytest.approx(3 / 6)
    # nothing predicted positive: zero_division=0, no warning/exception
    m = threshold_metrics(scores, labels, 10.0)
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0
    assert m["accuracy"] == 0.5


def test_eer_known_case():
    rate, thr = eer(MIS_SCORES, MIS_LABELS)
    assert rate == pytest.approx(0.25)
    assert thr == pytest.approx(0.7)
    # misordered (pos, neg) pairs: 0.95 beats all 4 positives, 0.6 beats 0.35 -> 5 of 16
    assert roc_auc(MIS_SCORES, MIS_LABELS) == pytest.approx(11 / 16)


def test_eer_interpolated():
    # A tie (0.5) moves FPR and FNR together: ROC points (fpr, fnr) are (0, 1) at +inf,
    # (0, .5) at 0.9, (.5, 0) at 0.5.  FPR - FNR goes -.5 -> +.5, so it crosses halfway:
    # EER = .25, threshold halfway between 0.9 and 0.5.
    rate, thr = eer([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0])
    assert rate == pytest.approx(0.25)
    assert thr == pytest.approx(0.7)


def test_tar_at_far_constructed():
    # 10 negatives, 10 positives; one negative scores above 7 positives.
    neg = np.array([0.95] + [0.1] * 9)
    pos = np.array([0.99, 0.98, 0.97, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6])
    scores = np.concatenate([pos, neg])
    labels = np.array([1] * 10 + [0] * 10)
    assert tar_at_far(scores, labels, 0.0) == pytest.approx(0.3)
    assert tar_at_far(scores, labels, 0.05) == pytest.approx(0.3)  # 1/10 FAR not allowed
    assert tar_at_far(scores, labels, 0.1) == pytest.approx(1.0)
    assert tar_at_far(scores, labels, 1.0) == 1.0


def test_one_class_is_nan_with_reason():
    with pytest.warns(UserWarning, match="no negatives"):
        assert math.isnan(roc_auc([0.1, 0.2], [1, 1]))
    with pytest.warns(UserWarning, match="no positives"):
        r, t = eer([0.1, 0.2], [0, 0])
    assert math.isnan(r) and math.isnan(t)
    with pytest.raises(DataError):
        best_threshold([0.1, 0.2], [0, 0])


def test_unlabelled_pairs_rejected():
    with pytest.raises(DataError, match="no same/different label"):
        roc_auc([0.1, 0.2], [-1, -1])
    with pytest.raises(ValueError):
        roc_auc([0.1, 0.2, 0.3], [0, 1])


def test_best_threshold_accuracy_and_f1():
    thr = best_threshold(SEP_SCORES, SEP_LABELS)
    assert 0.4 < thr < 0.6
    assert threshold_metrics(SEP_SCORES, SEP_LABELS, thr)["accuracy"] == 1.0
    thr = best_threshold(MIS_SCORES, MIS_LABELS, "accuracy")
    assert threshold_metrics(MIS_SCORES, MIS_LABELS, thr)["accuracy"] == pytest.approx(0.75)
    thr_f1 = best_threshold(MIS_SCORES, MIS_LABELS, "f1")
    f1 = threshold_metrics(MIS_SCORES, MIS_LABELS, thr_f1)["f1"]
    # brute force over every cut
    cands = np.concatenate([MIS_SCORES, [1.1]])
    assert f1 == pytest.approx(max(threshold_metrics(MIS_SCORES, MIS_LABELS, c)["f1"] for c in cands))
    assert best_threshold(MIS_SCORES, MIS_LABELS, "eer") == pytest.approx(0.7)
    with pytest.raises(ValueError):
        best_threshold(MIS_SCORES, MIS_LABELS, "auc")


def test_best_threshold_all_negative_is_above_max():
    # Ranking is reversed: accepting nothing (accuracy 0.5) beats any cut.
    thr = best_threshold(-SEP_SCORES, SEP_LABELS)
    assert threshold_metrics(-SEP_SCORES, SEP_LABELS, thr)["accuracy"] == 0.5


def _noisy(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = labels + rng.normal(0, 1.0, n)
    return scores, labels


def test_bootstrap_ci_contains_estimate_and_narrows():
    s_small, y_small = _noisy(80, 1)
    s_big, y_big = _noisy(3000, 2)
    lo, hi = bootstrap_ci(roc_auc, s_small, y_small, n_boot=200, seed=0)
    assert lo <= roc_auc(s_small, y_small) <= hi
    lo2, hi2 = bootstrap_ci(roc_auc, s_big, y_big, n_boot=200, seed=0)
    assert lo2 <= roc_auc(s_big, y_big) <= hi2
    assert (hi2 - lo2) < (hi - lo) / 3
    # deterministic per seed
    assert bootstrap_ci(roc_auc, s_small, y_small, n_boot=50, seed=3) == \
        bootstrap_ci(roc_auc, s_small, y_small, n_boot=50, seed=3)


def test_bootstrap_skips_one_class_resamples():
    calls = []

    def fn(s, y):
        calls.append(set(np.unique(y).tolist()))
        return 0.5

    # 1 positive in 4: about (3/4)^4 = 32% of resamples lack it
    bootstrap_ci(fn, [0.1, 0.2, 0.3, 0.4], [1, 0, 0, 0], n_boot=100, seed=0)
    assert 0 < len(calls) < 100
    assert all(c == {0, 1} for c in calls)


def test_pair_report_json_and_nan_safe():
    s, y = _noisy(300, 5)
    rep = pair_report(s, y, threshold=0.5, n_boot=50)
    json.dumps(rep, allow_nan=False)
    assert rep["n_pairs"] == 300 and rep["n_pos"] + rep["n_neg"] == 300
    for key in ("accuracy", "precision", "recall", "f1", "auc", "eer", "tar@far=1%", "tar@far=0.1%"):
        assert type(rep[key]) is float, key
    assert rep["auc"] == pytest.approx(roc_auc(s, y))
    assert rep["accuracy"] == pytest.approx(threshold_metrics(s, y, 0.5)["accuracy"])
    assert rep["auc_ci"][0] <= rep["auc"] <= rep["auc_ci"][1]
    assert rep["accuracy_ci"][0] <= rep["accuracy"] <= rep["accuracy_ci"][1]
    # one class: undefined values are None, with a reason
    rep = pair_report([0.2, 0.7, 0.9], [1, 1, 1], threshold=0.5, n_boot=20)
    json.dumps(rep, allow_nan=False)
    assert rep["auc"] is None and rep["eer"] is None and rep["auc_ci"] == [None, None]
    assert rep["recall"] == pytest.approx(2 / 3)
    assert any("no negatives" in n for n in rep["notes"])


def test_map_at_r_clustered_vs_shuffled():
    rng = np.random.default_rng(0)
    n_art, per = 6, 5
    centers = rng.normal(size=(n_art, 16)) * 10
    emb = np.repeat(centers, per, axis=0) + rng.normal(scale=0.1, size=(n_art * per, 16))
    artists = [f"a{k}" for k in range(n_art) for _ in range(per)]
    assert map_at_r(emb, artists) == pytest.approx(1.0)
    assert map_at_r(emb, artists, metric="euclidean") == pytest.approx(1.0)
    shuffled = list(rng.permutation(artists))
    assert map_at_r(emb, shuffled) < 0.5
    # a singleton artist is a distractor only; it must not break the metric
    emb2 = np.vstack([emb, rng.normal(size=(1, 16)) * 10])
    assert map_at_r(emb2, artists + ["solo"]) == pytest.approx(1.0, abs=0.05)
    with pytest.warns(UserWarning, match="no artist has two"):
        assert math.isnan(map_at_r(emb[:3], ["x", "y", "z"]))


def test_map_at_r_duplicate_embeddings_never_match_self():
    """A painting duplicated across two artists (A1 and B1, the same vector): each of them must find the other,
    of another artist, first; a k-NN that lets a painting match itself (or drops the duplicate instead of the
    query) scores 0.8 here instead of the hand-computed 0.15.

    Angles (degrees): A1 0, A2 80, A3 95 (artist a); B1 0, B2 70 (artist b).  Cosine neighbours, AP@R:
    A1 (R=2): B1, B2 -> 0;  A2 (R=2): B2, A3 -> (1/2)(1/2) = 0.25;  A3 (R=2): A2, B2 -> (1/2)(1) = 0.5;
    B1 (R=1): A1 -> 0;  B2 (R=1): A2 -> 0.  MAP@R = (0 + 0.25 + 0.5 + 0 + 0) / 5 = 0.15."""
    deg = np.deg2rad([0.0, 80.0, 95.0, 0.0, 70.0])
    emb = np.c_[np.cos(deg), np.sin(deg)]
    artists = ["a", "a", "a", "b", "b"]
    assert map_at_r(emb, artists) == pytest.approx(0.15)
    assert map_at_r(emb, artists, metric="euclidean") == pytest.approx(0.15)  # unit vectors: the same order


def test_map_at_r_of_overlapping_artists_matches_the_definition():
    """Clusters that overlap (values strictly between 0 and 1), checked against MAP@R computed by its definition
    in plain numpy (tests/independent.py): a k-NN that counts the query as its own neighbour, or a wrong R,
    gives another value."""
    from tests.independent import map_at_r as reference

    rng = np.random.default_rng(0)
    emb = np.repeat(rng.normal(size=(6, 16)) * 2, 5, axis=0) + rng.normal(size=(30, 16)) * 1.5
    artists = [f"a{k}" for k in range(6) for _ in range(5)]
    expected = reference(emb, artists)
    assert 0.3 < expected < 0.95
    assert map_at_r(emb, artists) == pytest.approx(expected)
    assert map_at_r(emb, artists, metric="euclidean") == pytest.approx(reference(emb, artists, "euclidean"))


def test_pair_report_gives_intervals_for_every_threshold_metric():
    import numpy as np

    from painterid.evaluation.metrics import pair_report
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(200), np.zeros(200)].astype(int)
    s = np.where(y == 1, rng.normal(1, 1, 400), rng.normal(-1, 1, 400))
    rep = pair_report(s, y, threshold=0.0, n_boot=100, seed=0)
    for k in ("precision", "recall", "f1", "eer", "accuracy", "auc"):
        lo, hi = rep[f"{k}_ci"]
        assert lo <= rep[k] <= hi and hi - lo < 0.2, (k, lo, rep[k], hi)
