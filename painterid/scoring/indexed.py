"""Pair scores by row index into one matrix, without copying the rows of every pair (flat memory)."""

from __future__ import annotations

import numpy as np

#: Bytes of gathered rows one block of pairs may hold (per side) when a head needs the rows themselves.
GATHER_BYTES = 64 << 20


def rows_per_block(dim: int, budget: int = GATHER_BYTES) -> int:
    """How many pairs of `dim`-float32 rows to gather at once so each side stays within `budget` bytes."""
    return max(256, budget // (4 * max(1, int(dim))))


def _checked(idx: np.ndarray, n: int) -> np.ndarray:
    """Row indices as contiguous int64 in [0, n) (negative ones count from the end, as numpy's do)."""
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    if len(idx):
        lo, hi = int(idx.min()), int(idx.max())
        if lo < -n or hi >= n:
            raise IndexError(f"pair index {lo if lo < -n else hi} is out of range for {n} vectors")
        if lo < 0:
            idx = np.where(idx < 0, idx + n, idx)
    return idx


#: Fewer pairs than this are scored on the CPU even with a GPU (the copy to the device would cost more).
GPU_MIN_PAIRS = 1 << 16


def use_gpu_for_pairs(n_pairs: int, use_gpu: bool | None = None) -> bool:
    """The GPU scores pairs when asked (``use_gpu=True``) or, by default, when faiss has GPU support and sees a
    GPU (``pip install 'painterid[gpu]'``), torch can use it, and there are at least GPU_MIN_PAIRS pairs."""
    if use_gpu is False or n_pairs == 0:
        return False
    from painterid.core.device import faiss_gpu_available

    if not faiss_gpu_available():
        return False
    import torch

    return torch.cuda.is_available() and (use_gpu is True or n_pairs >= GPU_MIN_PAIRS)


def indexed_dots_torch(x: np.ndarray, i: np.ndarray, j: np.ndarray, device: str = "cuda") -> np.ndarray:
    """The same dots with torch on ``device`` (FAISS has no GPU kernel for indexed pairs): x is copied once,
    pairs are gathered in blocks of rows_per_block(D)."""
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    it, jt = torch.from_numpy(i).to(device), torch.from_numpy(j).to(device)
    step = rows_per_block(x.shape[1])
    out = torch.empty(len(i), dtype=torch.float32, device=device)
    for s in range(0, len(i), step):
        out[s:s + step] = (xt[it[s:s + step]] * xt[jt[s:s + step]]).sum(dim=1)
    return out.cpu().numpy()


def indexed_dots(x: np.ndarray, i: np.ndarray, j: np.ndarray, use_gpu: bool | None = None) -> np.ndarray:
    """x[i[k]] · x[j[k]] for every k, with FAISS' fused multi-threaded kernel (no [n, D] copies).

    Equals `np.einsum("nd,nd->n", x[i], x[j])` up to float rounding, ~30x faster at 1M pairs of 1120-d rows
    (docs/PERFORMANCE.md).  On a GPU machine with faiss-gpu (see :func:`use_gpu_for_pairs`) torch scores them
    on the GPU instead."""
    import faiss

    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"need a [N, D] matrix, got shape {x.shape}")
    i, j = _checked(i, len(x)), _checked(j, len(x))
    if i.shape != j.shape or i.ndim != 1:
        raise ValueError(f"index vectors must be 1-d and of one length, got {i.shape} and {j.shape}")
    if use_gpu_for_pairs(len(i), use_gpu):
        return indexed_dots_torch(x, i, j, "cuda")
    out = np.empty(len(i), dtype=np.float32)
    if len(i):
        faiss.pairwise_indexed_inner_product(x.shape[1], len(i), faiss.swig_ptr(x), faiss.swig_ptr(i),
                                             faiss.swig_ptr(x), faiss.swig_ptr(j), faiss.swig_ptr(out))
    return out
