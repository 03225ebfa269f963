"""Set evidence (scoring.sets), its per-K likelihood ratio (scoring.setcal), forensic measures (scoring.forensic)
and the set protocol (evaluation.sets), on vectors of synthetic artists (no images, no backbone)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from painterid.core.errors import ArtefactError, DataError, PainterIDError
from painterid.evaluation.sets import TrialScorer, set_protocol_metrics, set_trials
from painterid.scoring.calibration import Calibrator
from painterid.scoring.forensic import cllr, min_cllr
from painterid.scoring.setcal import SetCalibration, fit_set_calibration, load_set_calibration, posterior
from painterid.scoring.sets import SET_AGGREGATES, make_trials, set_score


def clusters(n_artists=24, per=6, dim=32, spread=1.4, seed=0):
    """Vectors of artists: a centre each plus noise large enough that one pair is a weak witness."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_artists, dim))
    x = np.repeat(centres, per, axis=0) + spread * rng.normal(size=(n_artists * per, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), [f"a{i:02d}" for i in range(n_artists) for _ in range(per)]


@pytest.fixture(scope="module")
def fitted():
    """A cosine + CSLS model (the shipped default's settings) on 12 artists; 12 others held out."""
    from painterid.training import TrainOptions, fit

    x, artists = clusters()
    tr = np.arange(0, 48)
    va = np.arange(48, 72)
    model, _ = fit(x[tr], [artists[i] for i in tr], x[va], [artists[i] for i in va],
                   {"backbone": "synthetic", "dim": x.shape[1]}, TrainOptions(method="cosine", normaliser="csls"))
    return model, x, artists, list(range(72, len(x)))


def test_cllr_matches_hand_computed_values():
    # same-artist LRs 10 and 1, different-artist LRs 0.1 and 1:
    # 0.5 * ((log2(1.1) + log2(2)) / 2 + (log2(1.1) + log2(2)) / 2) = 0.5 * (1 + log2(1.1))
    assert cllr(np.log10([10, 1, 0.1, 1]), [1, 1, 0, 0]) == pytest.approx(0.5 * (1 + math.log2(1.1)), abs=1e-9)
    assert cllr(np.zeros(6), [1, 0, 1, 0, 1, 0]) == pytest.approx(1.0)  # LR = 1 always: uninformative
    assert cllr(np.log10([0.01, 100]), [1, 0]) > 6  # confidently wrong: worse than saying nothing
    s = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    assert min_cllr(s, [0, 0, 0, 1, 1, 1]) < 0.01  # separable: discrimination costs nothing
    assert 0.5 < min_cllr(s, [0, 1, 0, 1, 0, 1]) <= 1.0


def test_posterior_follows_prior_and_refuses_bad_priors():
    assert posterior(0.0, 0.5) == pytest.approx(0.5)
    assert posterior(1.0, 0.5) == pytest.approx(10 / 11)
    assert posterior(math.log10(4), 0.2) == pytest.approx(0.5)  # prior odds 1:4 times LR 4
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(PainterIDError, match="between 0 and 1"):
            posterior(0.0, bad)


def test_set_calibration_uses_the_nearest_fitted_k_below(tmp_path):
    cal = SetCalibration("mean", {"mean": {1: Calibrator(1.0, 0.0), 3: Calibrator(2.0, -1.0)}})
    assert cal.calibrator("mean", 2)[1] == 1
    assert cal.calibrator("mean", 7)[1] == 3
    z, used = cal.log10_lr("mean", 3, np.array([1.0]))
    assert used == 3 and z[0] == pytest.approx(1.0 / math.log(10))
    with pytest.raises(PainterIDError, match="no 'max' aggregate"):
        cal.calibrator("max", 3)
    cal.save(tmp_path)
    again = load_set_calibration(tmp_path)
    assert again.per_k["mean"][3].slope == 2.0 and again.default == "mean"
    with pytest.raises(ArtefactError, match="painterid calibrate"):
        load_set_calibration(tmp_path / "nowhere")


def test_set_trials_are_balanced_and_honest():
    artists = ["a"] * 5 + ["b"] * 4 + ["c"] * 2 + ["d"]
    trials = set_trials(artists, range(len(artists)), k=3, seed=1)
    labels = [t[2] for t in trials]
    assert labels.count(1) == labels.count(0) == 9  # every painting of a (5) and b (4), once each way
    for q, refs, y, a in trials:
        assert q not in refs and len(set(refs)) == 3
        assert all((artists[r] == artists[q]) == bool(y) for r in refs)
        assert artists[q] == a
    assert set_trials(artists, range(len(artists)), k=3, seed=1)[0][1].tolist() == trials[0][1].tolist()


def test_same_artist_references_score_higher_for_every_aggregate(fitted):
    model, x, artists, held = fitted
    q, own, other = held[0], held[1:5], held[6:10]
    assert artists[own[0]] == artists[q] != artists[other[0]]
    (t_own,) = make_trials(model, x[[q]], x[own], model.cohort)
    (t_other,) = make_trials(model, x[[q]], x[other], model.cohort)
    for agg in SET_AGGREGATES:
        if agg.needs_patches:
            continue
        assert set_score(agg.name, t_own) > set_score(agg.name, t_other), agg.name
    # the pair scores are the model's (CSLS against its cohort), not raw cosine
    np.testing.assert_allclose(t_own.pair, model.scores(np.repeat(x[[q]], 4, 0), x[own]), atol=1e-5)
    assert not np.allclose(t_own.pair, x[own] @ x[q])


def test_artist_lr_needs_three_references(fitted):
    model, x, _, held = fitted
    (t,) = make_trials(model, x[[held[0]]], x[held[1:3]], model.cohort)
    with pytest.raises(DataError, match="at least 3"):
        set_score("artist-lr", t)


def test_more_references_beat_one_on_the_same_trials(fitted):
    """Three references of the artist carry more evidence than the first of them alone (noisy artists)."""
    model, x, artists, held = fitted
    m = set_protocol_metrics(model, x, artists, held, ks=(3,), aggregates=("mean", "max", "centroid"))["3"]
    assert m["trials"] == 2 * len(held)
    assert m["auc"]["centroid"] > m["auc"]["one"] + 0.03
    assert m["auc"]["mean"] > m["auc"]["one"] + 0.03
    f = m["forensic"]["mean"]
    assert 0.0 <= f["min_cllr"] <= f["cllr"] + 1e-9 and f["cllr"] < 1.0  # informative out of fold


def test_fitted_calibration_is_increasing_and_skips_thin_ks(fitted):
    model, x, artists, held = fitted
    scorer = TrialScorer(model, x)
    trials = set_trials(artists, held, 3, 0)
    y = np.array([t[2] for t in trials])
    s = scorer.scores(trials, ["mean"])["mean"]
    cal = fit_set_calibration({"mean": {3: (s, y), 5: (s[:6], y[:6])}}, "mean")
    assert set(cal.per_k["mean"]) == {3} and cal.info["skipped"]
    z, _ = cal.log10_lr("mean", 3, np.array([s.min(), s.max()]))
    assert z[1] > 0 > z[0]
    with pytest.raises(PainterIDError, match="too few held-out trials"):
        fit_set_calibration({"mean": {5: (s[:6], y[:6])}}, "mean")
