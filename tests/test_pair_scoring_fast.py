"""The fast pair-scoring paths equal the slow truth: fused indexed dot products and the split siamese layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from painterid.scoring.heads import CosineScorer, SiameseHead
from painterid.scoring.indexed import indexed_dots, rows_per_block
from painterid.scoring.model import PairModel


@pytest.fixture
def vectors():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((50, 24)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_indexed_dots_equal_gathered_einsum(vectors):
    rng = np.random.default_rng(1)
    i, j = rng.integers(-50, 50, 400), rng.integers(0, 50, 400)  # negative rows count from the end, as in numpy
    want = np.einsum("nd,nd->n", vectors[i], vectors[j])
    np.testing.assert_allclose(indexed_dots(vectors, i, j), want, rtol=1e-5, atol=1e-6)
    assert indexed_dots(vectors, i[:0], j[:0]).shape == (0,)


@pytest.mark.parametrize("bad", [50, -51])
def test_indexed_dots_refuse_rows_out_of_range(vectors, bad):
    with pytest.raises(IndexError):
        indexed_dots(vectors, np.array([0, bad]), np.array([1, 2]))


def test_rows_per_block_bounds_memory():
    assert rows_per_block(1120) * 1120 * 4 <= 64 << 20
    assert rows_per_block(10**9) == 256


def test_siamese_inference_path_equals_training_formula(vectors):
    torch.manual_seed(0)
    head = SiameseHead(24, hidden=16, dropout=0.3).eval()
    a, b = torch.from_numpy(vectors[:30]), torch.from_numpy(vectors[20:])
    with torch.no_grad():
        fast = head(a, b)
    with torch.enable_grad():
        slow = head.net(torch.cat([(a - b).abs(), a * b], dim=-1)).squeeze(-1)
    np.testing.assert_allclose(fast.numpy(), slow.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a.numpy(), vectors[:30])  # inputs untouched


@pytest.mark.parametrize("head", [CosineScorer(), SiameseHead(24, hidden=16)])
def test_score_pairs_equals_pairwise_scores(vectors, head, monkeypatch):
    torch.manual_seed(0)
    model = PairModel(head.method, {"dim": 24}, head)
    rng = np.random.default_rng(2)
    pairs = rng.integers(0, 50, size=(1000, 2))
    monkeypatch.setattr("painterid.scoring.model.rows_per_block", lambda dim: 64)  # many gather blocks
    got = model.score_pairs(vectors, pairs, chunk=300)
    want = model.raw_scores(vectors[pairs[:, 0]], vectors[pairs[:, 1]])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        truth = head(torch.from_numpy(vectors[pairs[:5, 0]]), torch.from_numpy(vectors[pairs[:5, 1]])).numpy()
    np.testing.assert_allclose(got[:5], truth, rtol=1e-5, atol=1e-6)
