"""identify: who might have painted this? Open-set search of an ArtistIndex, with calibrated scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DataError
from .pairs import Choice
from .registry import Registry

#: The FAISS index kinds (`index build --kind`).
INDEX_KINDS: Registry[Choice] = Registry("index kind")
for _name, _help in (("auto", "flat up to 200k paintings, hnsw above"), ("flat", "exact search"),
                     ("hnsw", "approximate graph search"), ("ivf", "approximate inverted lists")):
    INDEX_KINDS.register(Choice(_name, _help))


def _open_set_scores(vectors: np.ndarray, artists: list[str], max_queries: int = 5000, seed: int = 0):
    """Leave-one-out scores of paintings against their own artist's prototype (same) and the best other (diff)."""
    art = np.asarray(artists, dtype=object)
    names, codes = np.unique(art, return_inverse=True)
    sums = np.zeros((len(names), vectors.shape[1]), np.float64)
    np.add.at(sums, codes, vectors)
    counts = np.bincount(codes)
    eligible = np.flatnonzero(counts[codes] >= 2)
    if len(eligible) < 2 or len(names) < 2:
        raise DataError("an index needs at least two artists, one of them with two or more paintings")
    rng = np.random.default_rng(seed)
    q = rng.permutation(eligible)[:max_queries]
    protos = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    sims = vectors[q] @ protos.T.astype(np.float32)  # [Q, A]
    own = sums[codes[q]] - vectors[q]  # leave the query out of its own artist's prototype
    own /= np.maximum(np.linalg.norm(own, axis=1, keepdims=True), 1e-12)
    same = np.einsum("qd,qd->q", vectors[q], own)
    sims[np.arange(len(q)), codes[q]] = -np.inf
    diff = sims.max(1)
    return same, diff


def build_index(data_or_store, out: str | Path, embedding=None, kind: str = "auto", n_subcentres: int = 1,
                seed: int = 0, store_dir=None, progress=None):
    """Embed DATA (or read STORE), build an ArtistIndex with an open-set threshold, save it to `out`."""
    from .evaluation.metrics import eer
    from .index import ArtistIndex
    from .pipeline import labelled
    from .scoring.calibration import Calibrator

    lab = labelled(data_or_store, embedding, store_dir=store_dir, progress=progress)
    keep = [i for i, a in enumerate(lab.artists) if a]
    if not keep:
        raise DataError(f"{data_or_store}: no painting has an artist; an index needs labelled paintings")
    vecs = lab.vectors[keep]
    artists = [lab.artists[i] for i in keep]
    index = ArtistIndex.build(vecs, [lab.names[i] for i in keep], artists, lab.embedding, kind=kind,
                              n_subcentres=n_subcentres, seed=seed)
    same, diff = _open_set_scores(vecs, artists, seed=seed)
    scores = np.r_[same, diff]
    labels = np.r_[np.ones(len(same)), np.zeros(len(diff))]
    _, threshold = eer(scores, labels)
    cal = Calibrator.fit(scores, labels)
    index.config["open_set"] = {"threshold": float(threshold), "calibration": cal.to_dict(),
                                "queries": int(len(same))}
    index.save(out)
    return index, lab.failures


def identify(paths: list[Path], index_dir: str | Path, k: int = 5, n_paintings: int = 3,
             threshold: float | None = None, device=None, runtime: str | None = None) -> list[dict]:
    """The k most likely artists of each image, with calibrated scores; `none_of_these` when none clears."""
    from .compare import embed_paths
    from .index import ArtistIndex
    from .scoring.calibration import Calibrator

    index = ArtistIndex.load(index_dir)
    fp = index.embedding_config
    vecs = embed_paths([Path(p) for p in paths], fp, device=device, runtime=runtime)
    open_set = index.config.get("open_set", {})
    thr = float(open_set.get("threshold", 0.5)) if threshold is None else float(threshold)
    cal = Calibrator(**open_set.get("calibration", {}))
    out = []
    for p, v, cands in zip(paths, vecs, index.search_artists(vecs, k)):
        rows = []
        for artist, score in cands:
            rows.append({"artist": artist, "score": round(float(score), 6),
                         "probability": round(float(cal(np.array([score]))[0]), 6),
                         "nearest": [{"file": f, "score": round(float(s), 6)}
                                     for f, s in index.nearest_paintings_of(v, artist, n_paintings)]})
        out.append({"image": str(p), "threshold": thr, "candidates": rows,
                    "none_of_these": not rows or rows[0]["score"] < thr})
    return out
