"""identify: who might have painted this? Open-set search of an ArtistIndex, with calibrated scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from painterid.core.errors import DataError


def leave_one_out_search(vectors: np.ndarray, artists: list[str], k: int = 5, max_queries: int = 5000,
                         seed: int = 0) -> dict:
    """Every painting (up to `max_queries`) searched against per-artist prototypes built without it.

    Returns, per query: `top` [Q, k] scores of the k best artists, `hit` [Q] the rank (0-based) of the true
    artist among them or -1, and `known` [Q] whether its artist still has a painting in the index (an artist
    with a single painting vanishes when it is left out: that query is an open-set one, "none of these")."""
    art = np.asarray(artists, dtype=object)
    names, codes = np.unique(art, return_inverse=True)
    if len(names) < 2:
        raise DataError("an index needs at least two artists")
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    sums = np.zeros((len(names), x.shape[1]), np.float64)
    np.add.at(sums, codes, x)
    counts = np.bincount(codes)
    protos = (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    q = np.random.default_rng(seed).permutation(len(x))[:max_queries]
    sims = x[q] @ protos.T  # [Q, A]
    own = sums[codes[q]] - x[q]  # the query's own artist without it
    norm = np.linalg.norm(own, axis=1)
    known = counts[codes[q]] >= 2
    own_score = np.einsum("qd,qd->q", x[q], own / np.maximum(norm, 1e-12)[:, None])
    sims[np.arange(len(q)), codes[q]] = np.where(known, own_score, -np.inf)
    kk = min(k, len(names) - 1)
    order = np.argsort(-sims, axis=1)[:, :kk]
    top = np.take_along_axis(sims, order, axis=1)
    match = order == codes[q][:, None]
    hit = np.where(match.any(1), match.argmax(1), -1)
    return {"top": top, "hit": hit, "known": known}


def open_set_calibration(vectors: np.ndarray, artists: list[str], seed: int = 0) -> dict:
    """What identify reports, fitted on held-out paintings (leave-one-out over the index's own paintings).

    - calibration: p(the top candidate is the painter) as a function of its score, a logistic fit on every
      left-out painting (label: the top artist is its painter); refused unless increasing in the score;
    - threshold: "none of these" below it, the equal-error point between the top scores of paintings whose
      artist is in the index and of those whose artist is not (artists with a single painting);
    - measured: top-1 / top-5 accuracy of known-artist queries, open-set rejection AUC and EER."""
    from painterid.scoring.calibration import Calibrator
    from painterid.scoring.metrics import eer, roc_auc

    res = leave_one_out_search(vectors, artists, k=5, seed=seed)
    top1, hit, known = res["top"][:, 0], res["hit"], res["known"]
    correct = (hit == 0).astype(int)
    if known.sum() < 1:
        raise DataError("an index needs an artist with two or more paintings")
    fit_s, fit_y, pseudo = top1, correct, 0
    if correct.min() == correct.max():  # all found or all missed (a tiny index): two pseudo-observations, a hit at
        fit_s = np.r_[top1, top1.max() + 1e-3, top1.min() - 1e-3]  # the top score and a miss at the bottom,
        fit_y, pseudo = np.r_[correct, 1, 0], 2  # make the fit possible (and increasing)
    cal = Calibrator.fit(fit_s, fit_y)
    if not cal.slope > 0:
        raise DataError(f"the open-set calibration is not increasing in the score (slope {cal.slope:.3g}): "
                        "a higher score would mean a less likely painter; refusing to build this index")
    out = {"calibration": cal.to_dict(), "queries": int(len(top1)), "known_queries": int(known.sum()),
           "top1": float((hit[known] == 0).mean()), "top5": float((hit[known] >= 0).mean()),
           "calibration_auc": None if pseudo else float(roc_auc(top1, correct)), "pseudo_observations": pseudo}
    if (~known).sum() >= 2:
        lab = known.astype(int)
        out["unknown_queries"] = int((~known).sum())
        out["rejection_auc"] = float(roc_auc(top1, lab))
        err, thr = eer(top1, lab)
        out["rejection_eer"], out["threshold"] = float(err), float(thr)
    else:  # every artist has two or more paintings: reject where the top candidate is more likely wrong
        out["threshold"] = float(-cal.intercept / cal.slope)
    return out


def build_index(data_or_store, out: str | Path, embedding=None, kind: str = "auto", n_subcentres: int = 1,
                seed: int = 0, store_dir=None, progress=None, runtime: str | None = None):
    """Embed DATA (or read STORE), build an ArtistIndex with an open-set threshold, save it to `out`."""
    from painterid.embedding.pipeline import labelled
    from painterid.tasks.index import ArtistIndex

    lab = labelled(data_or_store, embedding, store_dir=store_dir, progress=progress, runtime=runtime)
    keep = [i for i, a in enumerate(lab.artists) if a]
    if not keep:
        raise DataError(f"{data_or_store}: no painting has an artist; an index needs labelled paintings")
    vecs = lab.vectors[keep]
    artists = [lab.artists[i] for i in keep]
    index = ArtistIndex.build(vecs, [lab.names[i] for i in keep], artists, lab.embedding, kind=kind,
                              n_subcentres=n_subcentres, seed=seed)
    normed = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    index.config["open_set"] = {"probability": "p(the top candidate is the painter), leave-one-out",
                                **open_set_calibration(normed, artists, seed=seed)}
    index.save(out)
    return index, lab.failures


def identify(paths: list[Path], index_dir: str | Path, k: int = 5, n_paintings: int = 3,
             threshold: float | None = None, device=None, runtime: str | None = None) -> list[dict]:
    """The k most likely artists of each image, with calibrated scores; `none_of_these` when none clears."""
    from painterid.scoring.calibration import Calibrator
    from painterid.tasks.compare import embed_paths
    from painterid.tasks.index import ArtistIndex

    index = ArtistIndex.load(index_dir)
    fp = index.embedding_config
    vecs = embed_paths([Path(p) for p in paths], fp, device=device, runtime=runtime)
    open_set = index.config.get("open_set", {})
    thr = float(open_set.get("threshold", 0.5)) if threshold is None else float(threshold)
    cal = Calibrator(**open_set.get("calibration", {}))
    if not cal.slope > 0:
        from painterid.core.errors import ArtefactError

        raise ArtefactError(f"{index_dir}: the index's probabilities fall as the score rises (built by an older "
                            "painterid); rebuild it with `painterid index build`")
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
