"""Where p(same artist) is fitted: validation artists' pairs, then optionally recalibrated on out-of-fold pairs
(training.fit.crossfit_logits)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from painterid.core.errors import PainterIDError
from painterid.data.pairs import balanced_pairs
from painterid.scoring import PairModel
from painterid.scoring.loading import load_model
from painterid.training import TrainOptions, fit

EMB = {"backbone": "synthetic", "dim": 16}
fitmod = importlib.import_module("painterid.training.fit")  # the module (painterid.training exports fit)


def _artists(n_artists: int = 32, per: int = 4, dim: int = 16, noise: float = 0.9, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_artists, dim))
    x = np.repeat(centres, per, axis=0) + noise * rng.standard_normal((n_artists * per, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return x, [f"artist{a:02d}" for a in range(n_artists) for _ in range(per)]


def _split(x, artists, n_val_artists: int = 8):
    names = sorted(set(artists))
    val = set(names[:n_val_artists])
    tr = [i for i, a in enumerate(artists) if a not in val]
    va = [i for i, a in enumerate(artists) if a in val]
    return x[tr], [artists[i] for i in tr], x[va], [artists[i] for i in va]


def test_crossfit_scores_every_held_out_artist_with_a_model_that_never_saw_it(monkeypatch):
    x, artists = _artists()
    seen_by_call: list[set[str]] = []
    real_fit = fitmod.fit

    def recording_fit(train_x, train_artists, val_x, val_artists, *args, **kwargs):
        seen_by_call.append(set(train_artists) | set(val_artists))
        model, history = real_fit(train_x, train_artists, val_x, val_artists, *args, **kwargs)
        model.seen = set(train_artists) | set(val_artists)
        return model, history

    scored_by: list[tuple[set[str], set[str]]] = []
    real_scores = PairModel.scores

    def recording_scores(self, a, b):
        held = {artists[i] for i in range(len(x)) if any(np.array_equal(x[i], r) for r in a[:3])}
        scored_by.append((getattr(self, "seen", set()), held))
        return real_scores(self, a, b)

    monkeypatch.setattr(fitmod, "fit", recording_fit)
    monkeypatch.setattr(PairModel, "scores", recording_scores)
    opts = TrainOptions(method="cosine", normaliser="center,l2,csls:3", seed=0)
    scores, labels, used = fitmod.crossfit_logits(x, artists, EMB, opts, folds=4)
    assert used == 4 and len(seen_by_call) == 4
    # the four folds' held-out artists partition the artists; each model saw 3/4 of them, never its held-out ones
    outer = [(seen, held) for seen, held in scored_by if seen]
    assert len(outer) == 4
    for seen, held in outer:
        assert held and not (held & seen)
        assert len(seen) == 24
    # each held-out fold contributes balanced pairs: as many same-artist pairs as different-artist ones
    assert len(scores) == len(labels) and 0 < labels.sum() and labels.sum() * 2 == len(labels)


def test_crossfit_recalibrates_the_validation_fit_and_records_it(tmp_path):
    x, artists = _artists()
    tx, ta, vx, va = _split(x, artists)
    by_val, _ = fit(tx, ta, vx, va, EMB, TrainOptions(method="cosine", normaliser="center,l2,csls:3", seed=0,
                                                       calibration="validation"))
    by_cv, _ = fit(tx, ta, vx, va, EMB, TrainOptions(method="cosine", normaliser="center,l2,csls:3", seed=0,
                                                      calibration="crossfit"))
    n_val = len(balanced_pairs(va, seed=0))
    assert by_val.info["calibration"] == {"kind": "validation", "pairs": n_val}
    info = by_cv.info["calibration"]
    assert info["kind"] == "crossfit" and info["folds"] == 4 and info["pairs"] > n_val
    assert 0.5 < info["auc"] <= 1.0
    # same scorer and threshold; the probabilities are the validation fit followed by the recalibration
    a, b = x[:20], x[20:40]
    s = by_val.scores(a, b)
    assert np.allclose(by_cv.scores(a, b), s) and by_cv.threshold == pytest.approx(by_val.threshold)
    r = info["recalibration"]
    z = r["slope"] * by_val.calibrator.logit(s) + r["intercept"]
    assert np.allclose(by_cv.probability(s), 1 / (1 + np.exp(-z)))
    assert r["slope"] > 0 and by_cv.calibrator.to_dict() != by_val.calibrator.to_dict()
    by_cv.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.calibrator.to_dict() == pytest.approx(by_cv.calibrator.to_dict())
    assert loaded.threshold == pytest.approx(by_cv.threshold)


def test_then_composes_two_platt_scalings():
    from painterid.scoring.calibration import Calibrator

    first, second = Calibrator(40.0, -2.0), Calibrator(0.5, 0.3)
    s = np.linspace(-0.2, 0.2, 9)
    assert np.allclose(first.then(second)(s), 1 / (1 + np.exp(-(0.5 * (40 * s - 2) + 0.3))))


def test_crossfit_with_fewer_than_two_usable_folds_falls_back_to_validation_and_says_so(monkeypatch):
    x, artists = _artists(n_artists=16)
    tx, ta, vx, va = _split(x, artists, n_val_artists=5)
    by_val, _ = fit(tx, ta, vx, va, EMB, TrainOptions(method="cosine", normaliser="none", seed=0,
                                                       calibration="validation"))
    monkeypatch.setattr(fitmod, "crossfit_logits", lambda *a, **k: (np.zeros(4), np.array([0, 1, 0, 1]), 1))
    model, _ = fit(tx, ta, vx, va, EMB, TrainOptions(method="cosine", normaliser="none", seed=0,
                                                    calibration="crossfit"))
    info = model.info["calibration"]
    assert info["kind"] == "validation" and "only 1 usable" in info["crossfit_skipped"]
    assert model.calibrator.to_dict() == pytest.approx(by_val.calibrator.to_dict())


def test_the_shipped_default_is_recalibrated_out_of_fold_and_train_is_not_by_default():
    import json

    from painterid.core.defaults import DEFAULT_CALIBRATION, default_model_dir

    assert TrainOptions().calibration == DEFAULT_CALIBRATION == "validation"
    info = json.loads((default_model_dir() / "config.json").read_text())["info"]["calibration"]
    assert info["kind"] == "crossfit" and info["folds"] == 4


def test_an_unknown_calibration_is_refused():
    x, artists = _artists(n_artists=12)
    tx, ta, vx, va = _split(x, artists, n_val_artists=4)
    with pytest.raises(PainterIDError, match="unknown calibration"):
        fit(tx, ta, vx, va, EMB, TrainOptions(method="cosine", normaliser="none", calibration="isotonic"))
