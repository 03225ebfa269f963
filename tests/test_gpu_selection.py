"""faiss-gpu is used when faiss has GPU support and sees a GPU, else the CPU (faiss is monkeypatched: no GPU here)."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch

from painterid.scoring import indexed
from painterid.tasks import index as index_mod


@pytest.fixture
def fake_gpu_faiss(monkeypatch):
    """faiss as a faiss-gpu build on a 1-GPU machine; index_cpu_to_all_gpus records what it was given."""
    moved = []

    def to_gpus(ix):
        moved.append(ix)
        return ("gpu", ix)

    monkeypatch.setattr(faiss, "StandardGpuResources", object, raising=False)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", to_gpus, raising=False)
    return moved


def test_gpu_available_needs_a_gpu_build_and_a_gpu(monkeypatch, fake_gpu_faiss):
    assert index_mod.gpu_available()
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0)
    assert not index_mod.gpu_available()
    monkeypatch.delattr(faiss, "StandardGpuResources")  # faiss-cpu
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    assert not index_mod.gpu_available()


def test_index_moves_to_the_gpu_only_when_present_and_allowed(fake_gpu_faiss, monkeypatch):
    cpu = faiss.IndexFlatIP(4)
    assert index_mod._to_gpu(cpu, "flat", None) == ("gpu", cpu)
    assert index_mod._to_gpu(cpu, "flat", False) is cpu  # use_gpu=False: never
    assert index_mod._to_gpu(cpu, "hnsw", None) is cpu  # faiss has no GPU HNSW
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0)
    assert index_mod._to_gpu(cpu, "flat", None) is cpu
    assert fake_gpu_faiss == [cpu]


def test_pair_scorer_picks_the_gpu_for_large_batches(fake_gpu_faiss, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert indexed.use_gpu_for_pairs(indexed.GPU_MIN_PAIRS)
    assert not indexed.use_gpu_for_pairs(indexed.GPU_MIN_PAIRS - 1)  # small: the copy costs more
    assert indexed.use_gpu_for_pairs(10, use_gpu=True)
    assert not indexed.use_gpu_for_pairs(indexed.GPU_MIN_PAIRS, use_gpu=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not indexed.use_gpu_for_pairs(indexed.GPU_MIN_PAIRS)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0)
    assert not indexed.use_gpu_for_pairs(indexed.GPU_MIN_PAIRS, use_gpu=True)

    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(indexed, "indexed_dots_torch", lambda x, i, j, device: calls.append(device) or i * 0.0)
    x = np.ones((3, 2), dtype=np.float32)
    indexed.indexed_dots(x, np.array([0, 1]), np.array([1, 2]), use_gpu=True)
    assert calls == ["cuda"]


def test_torch_pair_kernel_equals_the_gathered_dots(monkeypatch):
    """The GPU branch's arithmetic, run on the CPU device (blocks smaller than the pair count)."""
    monkeypatch.setattr(indexed, "rows_per_block", lambda dim: 7)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 16)).astype(np.float32)
    i, j = rng.integers(0, 50, 100), rng.integers(0, 50, 100)
    got = indexed.indexed_dots_torch(x, i, j, device="cpu")
    np.testing.assert_allclose(got, np.einsum("nd,nd->n", x[i], x[j]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, indexed.indexed_dots(x, i, j, use_gpu=False), rtol=1e-5, atol=1e-5)
