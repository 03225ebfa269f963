"""metric and classifier heads trained to the end on tiny synthetic vectors; evaluate's within-source groups."""

from __future__ import annotations

import numpy as np
import pytest

from painterid.embedding.pipeline import Labelled
from painterid.evaluation.run import evaluate_model
from painterid.scoring.loading import load_model
from painterid.training import TrainOptions, train_model

EMB = {"backbone": "synthetic", "dim": 24}


def _clusters(n_artists: int = 24, per: int = 6, dim: int = 24, noise: float = 0.35, seed: int = 0) -> Labelled:
    """Each artist a random direction; paintings = direction + noise (unit vectors), two sources alternating."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_artists, dim))
    x = np.repeat(centres, per, axis=0) + noise * rng.standard_normal((n_artists * per, dim)) * np.sqrt(dim) / 4
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    artists = [f"artist{a:02d}" for a in range(n_artists) for _ in range(per)]
    names = [f"p{i}.jpg" for i in range(len(artists))]
    sources = ["museum" if i % 2 else "web" for i in range(len(artists))]
    return Labelled(x, artists, names, [f"h{i}" for i in range(len(artists))], sources, EMB)


@pytest.mark.parametrize("method,loss", [("metric", "supcon"), ("metric", "triplet"), ("classifier", "supcon")])
def test_head_trains_to_the_end_and_keeps_its_best_epoch(method, loss, tmp_path):
    lab = _clusters()
    opts = TrainOptions(method=method, loss=loss, epochs=6, patience=3, batch_size=32, hidden=32, seed=0,
                        normaliser="none|csls")  # the head sees raw vectors: "none" scores it as trained
    model, history, split = train_model(lab, tmp_path / method, opts, val=0.25, test=0.25)
    assert 1 <= len(history) <= 6 and all(np.isfinite(h["train_loss"]) for h in history)
    # the Trainer restored the head of the best validation epoch: its AUC (before any normaliser) is that epoch's
    best = max(h["val_auc"] for h in history)
    assert model.info["validation"]["auc_by_normaliser"]["none"] == pytest.approx(best, abs=1e-6)
    assert model.info["validation"]["auc"] > 0.8  # unseen artists' clusters are told apart
    loaded = load_model(tmp_path / method)
    assert loaded.method == method and loaded.threshold == pytest.approx(model.threshold)
    a, b = lab.vectors[:4], lab.vectors[4:8]
    assert np.allclose(loaded.scores(a, b), model.scores(a, b), atol=1e-6)
    result = evaluate_model(loaded, lab, n_boot=0)
    assert result["groups"]["unseen"]["auc"] > 0.8


def test_evaluate_within_source_counts_only_pairs_of_one_source(tmp_path):
    lab = _clusters(seed=1)
    model, _, _ = train_model(lab, tmp_path / "m", TrainOptions(method="cosine", seed=0), val=0.25, test=0.25)
    result, scored = evaluate_model(model, lab, n_boot=0, return_scores=True)
    src = np.asarray(lab.sources)
    for name, (pairs, _) in scored.items():
        same_source = src[pairs[:, 0]] == src[pairs[:, 1]]
        group = result["within_source"][name]
        assert group["n_pairs"] == int(same_source.sum()) < len(pairs)
        assert group["n_pos"] == int(pairs[same_source, 2].sum())


def test_train_threshold_is_the_best_accuracy_cut_on_validation_pairs_computed_independently(small_store, tmp_path):
    """train's threshold, checked without the scorer or best_threshold: the validation artists' balanced pairs
    (as training draws them), scored here as the plain cosine of the unit vectors (cosine, no normaliser), give
    their best accuracy at the model's threshold, a brute force over every cut.  A threshold chosen on the
    training artists, on other pairs, or by another criterion (e.g. EER) scores lower here."""
    import numpy as np

    from painterid.data.pairs import balanced_pairs
    from painterid.embedding.pipeline import labelled
    from painterid.training import TrainOptions, train_model

    lab = labelled(small_store)
    model, _, _ = train_model(lab, tmp_path / "m", TrainOptions(method="cosine", normaliser="none",
                                                                calibration="validation"), val=0.25, test=0.3)
    val = set(model.artists["val"])
    idx = [i for i, a in enumerate(lab.artists) if a in val]
    pairs = balanced_pairs([lab.artists[i] for i in idx], seed=0)
    assert model.info["validation"]["pairs"] == len(pairs)
    x = lab.vectors[idx] / np.linalg.norm(lab.vectors[idx], axis=1, keepdims=True)
    scores = np.einsum("ij,ij->i", x[pairs[:, 0]], x[pairs[:, 1]])
    y = pairs[:, 2]
    best = max(np.mean((scores >= c) == y) for c in np.r_[scores, scores.max() + 1])
    assert np.mean((scores >= model.threshold) == y) == best
    assert 0.5 < best < 1.0  # a real choice: neither everything nor a perfect split
