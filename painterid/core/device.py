"""Which accelerator this process can use: the torch device and whether faiss has a GPU (both imported lazily)."""

from __future__ import annotations


def faiss_gpu_available() -> bool:
    """True when this faiss build has GPU support and a GPU is visible."""
    import faiss

    try:
        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:  # pragma: no cover - depends on the faiss build
        return False
