"""The public Python API: a few functions over the library, as the command line uses it.

    import painterid
    painterid.compare("a.jpg", "b.jpg")             # {"probability": ..., "same_artist": ..., ...}
    painterid.embed(["a.jpg", "b.jpg"])             # float32 [2, D], the default model's embedding
    painterid.verify("q.jpg", "rembrandt/")         # a questioned work against one artist's references
    model = painterid.load_model("default")         # a shipped name, or a model directory

Exported lazily from ``painterid/__init__.py``: ``import painterid`` stays cheap (no torch, no numpy).
May import every painterid package but the CLI and training.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from painterid.core.defaults import model_path

PathLike = str | os.PathLike


def load_model(name_or_dir: PathLike = "default"):
    """A model: a shipped one by name (``default``, ``archive``) or a model directory (PairModel or FusedModel)."""
    from painterid.scoring.loading import load_model as _load

    return _load(model_path(name_or_dir))


def _model_dir(model) -> Path:
    if isinstance(model, (str, os.PathLike)):
        return Path(model_path(model))
    root = getattr(model, "root", None)
    if root is None:
        raise ValueError("pass a model directory or name, or a model loaded from one (load_model)")
    return Path(root)


def compare(a: PathLike, b: PathLike | Sequence[PathLike], model: PathLike = "default",
            threshold: float | None = None, runtime: str | None = None):
    """p(same artist) of image ``a`` and image ``b`` (one dict), or of ``a`` and each of several images (a list).

    Each dict: ``score``, ``probability``, ``threshold``, ``same_artist``, ``method``, ``image_a``, ``image_b``."""
    from painterid.tasks.compare import compare_files

    many = not isinstance(b, (str, os.PathLike))
    others = [Path(p) for p in (b if many else [b])]
    results = compare_files(Path(a), others, _model_dir(model), threshold=threshold, runtime=runtime)
    return results if many else results[0]


def embed(paths: Sequence[PathLike], model: PathLike = "default", runtime: str | None = None) -> np.ndarray:
    """The vectors of image files in the embedding of ``model`` (float32 [n, D]), through the content-hash cache.

    A fused model's members' embeddings are side by side, as it scores them."""
    from painterid.scoring.fusion import members_of, side_by_side
    from painterid.tasks.compare import embed_paths

    m = load_model(model) if isinstance(model, (str, os.PathLike)) else model
    files = [Path(p) for p in paths]
    return side_by_side([embed_paths(files, member.embedding, base_dir=member.root, runtime=runtime)
                         for member in members_of(m)])


def verify(questioned: PathLike | Sequence[PathLike], references: PathLike | Sequence[PathLike],
           model: PathLike = "default", prior: float = 0.5, aggregate: str | None = None,
           runtime: str | None = None):
    """Is ``questioned`` consistent with ``references`` (a folder or files of one artist's authenticated works)?

    One dict (or a list, for several questioned files or a folder): ``set_score``, ``log10_lr``, ``p_same`` at
    ``prior``, ``consistent``, ``verdict``, ``closest`` references. A bad questioned file raises ImageError."""
    from painterid.core.errors import ImageError
    from painterid.tasks.verify import verify as _verify

    many = not isinstance(questioned, (str, os.PathLike)) or Path(questioned).is_dir()
    qs = [Path(q) for q in (questioned if not isinstance(questioned, (str, os.PathLike)) else [questioned])]
    refs = [Path(r) for r in (references if not isinstance(references, (str, os.PathLike)) else [references])]
    results, bad = _verify(qs, _model_dir(model), references=refs, aggregate=aggregate, prior=prior,
                           runtime=runtime)
    if bad:
        raise ImageError("; ".join(bad))
    return results if many else results[0]
