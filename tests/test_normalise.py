"""Normaliser chains: fitted on a cohort, applied to any vectors, stored as config + arrays."""

import json
import subprocess
import sys

import numpy as np
import pytest

from painterid.data.pairs import balanced_pairs
from painterid.evaluation.metrics import roc_auc
from painterid.scoring import PairModel, build_head
from painterid.scoring.loading import load_model
from painterid.scoring.normalise import NORMALISERS, Chain, parse_spec

EMB = {"backbone": "test", "dim": 16}


def _artists_data(n_artists=30, per=4, dim=16, offset=0.0, noise_dims=0, seed=0, spread=0.5):
    """Vectors whose artist signal is weak against a big shared offset and/or loud nuisance directions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_artists, dim)) * spread
    labels = np.repeat(np.arange(n_artists), per)
    x = centres[labels] + rng.normal(size=(len(labels), dim)) * 0.5
    if noise_dims:
        x[:, :noise_dims] += rng.normal(size=(len(labels), noise_dims)) * 6.0  # loud, artist-free
        x[:, :noise_dims] -= centres[labels][:, :noise_dims]
    if offset:  # a shared offset (the look every photograph shares) and residuals of very different lengths
        x = x * rng.uniform(0.2, 3.0, size=(len(x), 1)) + offset
    return x.astype(np.float32), [f"a{i}" for i in labels]


def _auc(model, x, artists):
    p = balanced_pairs(artists, seed=0)
    return roc_auc(model.scores(x[p[:, 0]], x[p[:, 1]]), p[:, 2])


def _cosine(spec, cohort, train=None, labels=None):
    chain = Chain.parse(spec).fit(cohort, train, labels)
    head = build_head("cosine", chain.out_dim or cohort.shape[1], {})
    return PairModel("cosine", EMB, head, chain=chain, cohort=cohort)


@pytest.mark.parametrize("spec", ["power", "center", "l2", "whiten:8", "wccn", "lda:6", "csls:5",
                                  "power,center,l2,csls:5", "lda:6,l2,csls:3", "whiten:8,l2,csls"])
def test_every_step_round_trips_through_config_and_arrays(spec):
    x, artists = _artists_data()
    chain = Chain.parse(spec).fit(x[:60], x, artists)
    cfg = json.loads(json.dumps(chain.to_config()))  # what config.json keeps
    again = Chain.from_config(cfg, {k: v.copy() for k, v in chain.arrays().items()}, x[:60])
    np.testing.assert_allclose(again.apply(x), chain.apply(x), rtol=1e-6, atol=1e-6)
    assert again.spec == chain.spec
    if chain.score_step is not None:
        np.testing.assert_allclose(again.score_step.r(again.apply(x[:7])), chain.score_step.r(chain.apply(x[:7])),
                                   rtol=1e-6)


def test_a_pair_scores_the_same_whatever_else_is_compared():
    x, artists = _artists_data()
    model = _cosine("power,center,l2,csls:5", x[:50])
    alone = model.scores(x[60:61], x[61:62])[0]
    in_batch = model.scores(x[60:90], x[61:91])[0]
    assert alone == pytest.approx(in_batch, abs=1e-6)
    # and the same through the chunked index path
    assert model.score_pairs(x, np.array([[60, 61], [3, 4]]))[0] == pytest.approx(alone, abs=1e-6)


def test_centring_removes_a_shared_offset_that_hides_the_artists():
    x, artists = _artists_data(offset=3.0)
    cohort, test = x[:60], slice(60, None)
    plain = _auc(_cosine("none", cohort), x[test], artists[60:])
    centred = _auc(_cosine("center,l2", cohort), x[test], artists[60:])
    assert plain < 0.75 < centred


def test_whitening_decorrelates_the_cohort_and_shrinkage_damps_weak_axes():
    x, _ = _artists_data(n_artists=60, per=4)
    step = NORMALISERS["whiten"](dim=8, shrink=0.0).fit(x)
    cov = np.cov(step.apply(x), rowvar=False)
    np.testing.assert_allclose(cov, np.eye(8), atol=1e-3)
    shrunk = NORMALISERS["whiten"](dim=8, shrink=1.0).fit(x)
    var = np.var(shrunk.apply(x), axis=0, ddof=1)
    assert (var < 1.0).all() and var[0] > var[-1]  # strong axes keep more of their variance than weak ones


def test_supervised_projections_learn_to_ignore_loud_artist_free_directions():
    x, artists = _artists_data(n_artists=60, per=4, noise_dims=8, spread=1.0)
    tr, te = slice(0, 160), slice(160, None)
    plain = _auc(_cosine("none", x[tr]), x[te], artists[160:])
    for spec in ("lda:12,l2", "wccn,l2"):
        learned = _auc(_cosine(spec, x[tr], x[tr], artists[:160]), x[te], artists[160:])
        assert learned > plain + 0.1, spec


def test_a_bad_chain_is_refused():
    with pytest.raises(ValueError, match="last step"):
        parse_spec("csls,center")
    with pytest.raises(ValueError, match="unknown normaliser"):
        parse_spec("center,zca")
    with pytest.raises(ValueError, match="takes no parameter"):
        parse_spec("l2:3")
    with pytest.raises(ValueError, match="labelled"):
        Chain.parse("lda").fit(np.zeros((10, 4), np.float32))


def test_old_models_load_with_the_same_scores(tmp_path):
    """A model saved before chains: config normaliser "csls" + csls_k, cohort inside model.safetensors."""
    from safetensors.numpy import save_file

    x, _ = _artists_data()
    cohort = x[:40]
    model = PairModel("cosine", EMB, build_head("cosine", 16, {}), normaliser="csls", csls_k=4, cohort=cohort)
    model.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["normaliser"] = "csls"
    for key in ("chain", "cohort", "head_dim"):
        cfg.pop(key)
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "m" / "cohort.safetensors").unlink()
    save_file({"cohort": cohort}, str(tmp_path / "m" / "model.safetensors"))
    old = load_model(tmp_path / "m")
    assert old.normaliser == "csls:4"
    # the CSLS formula of the legacy code: 2 s - r(a) - r(b), r = mean of the 4 best cosines to the cohort
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    cn = xn[:40]
    r = np.sort(xn[50:60] @ cn.T, axis=1)[:, -4:].mean(1)
    want = 2 * np.sum(xn[50:55] * xn[55:60], 1) - r[:5] - r[5:]
    np.testing.assert_allclose(old.scores(x[50:55], x[55:60]), want, rtol=1e-5, atol=1e-6)


def test_saved_chain_and_cohort_reload_and_cohort_replacement_keeps_supervised_steps(tmp_path):
    x, artists = _artists_data()
    model = _cosine("lda:6,center,l2,csls:5", x[:50], x[:80], artists[:80])
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "cohort.safetensors").is_file() and (tmp_path / "m" / "normalise.safetensors").is_file()
    back = load_model(tmp_path / "m")
    np.testing.assert_allclose(back.scores(x[80:90], x[90:100]), model.scores(x[80:90], x[90:100]), atol=1e-6)
    lda_before = back.chain.steps[0].state["proj"].copy()
    mean_before = back.chain.steps[1].state["mean"].copy()
    back.set_cohort(x[60:120], {"source": "other"})
    np.testing.assert_array_equal(back.chain.steps[0].state["proj"], lda_before)
    assert not np.allclose(back.chain.steps[1].state["mean"], mean_before)
    assert len(back.chain.score_step.cohort) == 60 and back.cohort_summary() == {"n": 60, "source": "other"}


def test_csls_leaves_out_the_query_when_it_lies_in_the_cohort():
    x, _ = _artists_data()
    model = _cosine("csls:3", x[:40])
    inside = model.neighbourhood(x[5:6])[0]
    moved = _cosine("csls:3", np.delete(x[:40], 5, axis=0)).neighbourhood(x[5:6])[0]
    assert inside == pytest.approx(moved, abs=1e-6)


def test_the_normaliser_module_does_not_import_torch():
    from pathlib import Path

    import painterid.scoring.normalise as mod

    code = ("import importlib.util, sys; s = importlib.util.spec_from_file_location('n', sys.argv[1]); "
            "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); "
            "m.Chain.parse('power,center,l2,csls').fit(__import__('numpy').ones((20, 4))); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(Path(mod.__file__))], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_a_loaded_siamese_model_scores_with_numpy_as_its_torch_head(tmp_path):
    x, artists = _artists_data()
    chain = Chain.parse("wccn,l2,csls:4").fit(x[:40], x, artists)
    model = PairModel("siamese", EMB, build_head("siamese", 16, {"hidden": 8}), {"hidden": 8}, chain=chain,
                      cohort=x[:40])
    want = model.scores(x[50:60], x[60:70])
    model.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back._numpy and back._head is None  # no torch module built to score
    np.testing.assert_allclose(back.scores(x[50:60], x[60:70]), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(back.score_pairs(x, np.array([[50, 60], [51, 61]])), want[:2], rtol=1e-5, atol=1e-5)
