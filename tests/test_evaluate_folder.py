"""`evaluate` on a folder, as a new user meets it: which paintings were used and why the others were not, the
pair count, the within-source table, TAR at a FAR the negatives cannot resolve, a folder without artist labels."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from painterid.core.errors import DataError
from painterid.evaluation.metrics import METRICS
from painterid.evaluation.run import coverage_line, evaluate_model
from painterid.scoring.model import PairModel


def _data(artists, sources=None, dim=8):
    rng = np.random.default_rng(0)
    centres = {a: rng.normal(size=dim) for a in set(artists)}
    vecs = np.stack([centres[a] + 0.7 * rng.normal(size=dim) if a else rng.normal(size=dim) for a in artists])
    return SimpleNamespace(artists=list(artists), hashes=[f"{i:064x}" for i in range(len(artists))],
                           vectors=(vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32),
                           sources=sources, names=[f"p{i}.jpg" for i in range(len(artists))], paths=None)


def _model(train_hashes=(), val=()):
    return PairModel("cosine", {"dim": 8, "view": "patches"}, None, threshold=0.2, train_hashes=list(train_hashes),
                     artists={"train": ["T"], "val": list(val), "test": []})


def test_says_why_paintings_are_left_out_and_counts_each_pair_once():
    artists = ["T", "T", "V", "V"] + [a for a in "ABCDE" for _ in range(3)] + ["Z"]
    data = _data(artists, sources=["s1"] * len(artists))
    model = _model(train_hashes=data.hashes[:2], val=["V"])
    out = evaluate_model(model, data, n_boot=0)
    cov = out["paintings"]
    assert cov["in_data"] == 20
    assert cov["left_out"]["trained on by the model"] == 2
    assert cov["left_out"]["by the model's validation artists"] == 2
    assert cov["used"] + sum(cov["left_out"].values()) == 20  # every painting accounted for
    line = coverage_line(cov)
    assert line.startswith(f"used {cov['used']} of 20 paintings") and "trained on by the model" in line
    # every test artist is unseen, so unseen and mixed hold the same pairs: counted once, not twice
    assert out["n_pairs_by_split"]["unseen"] == out["groups"]["unseen"]["n_pairs"]
    assert out["n_pairs"] == out["groups"]["unseen"]["n_pairs"]
    # one source: no within-source table repeating "all pairs"
    assert out["within_source"] == {} and out["sources"] == 1


def test_the_within_source_table_stays_with_two_sources():
    artists = [a for a in "ABCDEF" for _ in range(4)]
    data = _data(artists, sources=["s1", "s2"] * 12)
    out = evaluate_model(_model(), data, n_boot=0)
    assert out["within_source"] and "sources" not in out


def test_tar_at_far_from_too_few_negatives_is_marked():
    artists = [a for a in "ABCDE" for _ in range(3)]
    out = evaluate_model(_model(), _data(artists), n_boot=0)
    rep = out["groups"]["unseen"]
    assert rep["n_neg"] < 100
    tar1 = next(m for m in METRICS if m.name == "tar@far=1%")
    assert tar1.format(rep).endswith("*")
    assert any("TAR@1%FAR needs 100" in n for n in rep["notes"])
    assert not tar1.format({**rep, "n_neg": 100}).endswith("*")


def test_a_folder_without_artist_labels_is_told_so():
    with pytest.raises(DataError, match="no artist labels"):
        evaluate_model(_model(), _data([""] * 6), n_boot=0)
