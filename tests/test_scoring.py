import pickle

import numpy as np
import pytest
import torch

from painterid.core.errors import ArtefactError
from painterid.scoring import Calibrator, PairModel, build_head
from painterid.scoring.loading import load_model

EMB = {"backbone": "x", "weights_id": "w", "view": "center", "pool": "gap", "dim": 8}


def _vectors(n=40, d=8, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("method,params", [("cosine", {}), ("siamese", {"hidden": 16}),
                                           ("metric", {"out_dim": 4, "hidden": 16}),
                                           ("classifier", {"n_classes": 5, "hidden": 16})])
@pytest.mark.parametrize("normaliser", ["none", "csls"])
def test_chunked_pair_scores_equal_dense(method, params, normaliser):
    torch.manual_seed(0)
    v = _vectors()
    model = PairModel(method, EMB, build_head(method, 8, params), params, normaliser=normaliser, csls_k=3,
                      cohort=_vectors(20, seed=1) if normaliser == "csls" else None)
    pairs = np.array([(i, j, 0) for i in range(40) for j in range(i + 1, 40)])
    dense = model.scores(v[pairs[:, 0]], v[pairs[:, 1]])
    chunked = model.score_pairs(v, pairs, chunk=37)
    np.testing.assert_allclose(chunked, dense, rtol=1e-5, atol=1e-5)
    # the dense score matrix agrees with pairwise scoring too
    m = model.score_matrix(v[:5], v[5:9])
    np.testing.assert_allclose(m[2, 3], model.raw_scores(v[2:3], v[8:9])[0], rtol=1e-5, atol=1e-6)


def test_csls_formula():
    v = _vectors(10)
    model = PairModel("cosine", EMB, build_head("cosine", 8, {}), normaliser="csls", csls_k=2, cohort=v[5:])
    a, b = v[:1], v[1:2]
    sims_a = np.sort(v[:1] @ v[5:].T)[0, -2:].mean()
    sims_b = np.sort(v[1:2] @ v[5:].T)[0, -2:].mean()
    expect = 2 * float((a @ b.T)[0, 0]) - sims_a - sims_b
    assert model.scores(a, b)[0] == pytest.approx(expect, abs=1e-5)


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    head = build_head("siamese", 8, {"hidden": 16})
    model = PairModel("siamese", EMB, head, {"hidden": 16}, normaliser="csls", csls_k=3, cohort=_vectors(12),
                      calibrator=Calibrator(3.0, -1.0), threshold=0.25,
                      artists={"train": ["A"], "val": ["B"], "test": ["C"]}, train_hashes=["h1", "h2"])
    model.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    v = _vectors()
    np.testing.assert_allclose(back.scores(v[:10], v[10:20]), model.scores(v[:10], v[10:20]), rtol=1e-6)
    assert back.threshold == 0.25 and back.train_hashes == ["h1", "h2"] and back.train_artists == {"A"}
    assert back.calibrator(np.array([1 / 3]))[0] == pytest.approx(0.5)


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/painterid-pwned",))


def test_pickle_model_is_refused_without_running(tmp_path):
    head = build_head("siamese", 8, {"hidden": 16})
    PairModel("siamese", EMB, head, {"hidden": 16}).save(tmp_path / "m")
    with open(tmp_path / "m" / "model.safetensors", "wb") as fh:
        pickle.dump({"head.net.0.weight": _Evil()}, fh)
    import os
    if os.path.exists("/tmp/painterid-pwned"):
        os.remove("/tmp/painterid-pwned")
    with pytest.raises(ArtefactError, match="safetensors"):
        load_model(tmp_path / "m")
    assert not os.path.exists("/tmp/painterid-pwned")


def test_calibrator_fits_probabilities():
    rng = np.random.default_rng(0)
    s = np.concatenate([rng.normal(1, 0.5, 500), rng.normal(-1, 0.5, 500)])
    y = np.r_[np.ones(500), np.zeros(500)]
    cal = Calibrator.fit(s, y)
    assert cal(np.array([0.0]))[0] == pytest.approx(0.5, abs=0.1)
    assert cal(np.array([1.0]))[0] > 0.9 and cal(np.array([-1.0]))[0] < 0.1
