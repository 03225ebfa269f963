"""identify on set evidence: every indexed artist's paintings are the references of a `verify` (scoring.sets,
through the model's pair scores and CSLS, never raw cosine), with the model's calibrated likelihood ratio
(MODEL/sets.json) at that artist's number of paintings.

Artists are ranked by their log10 LR; p(artist | one of the indexed artists painted it) is the LRs normalised over
the index (equal priors). What the index itself says about it, leaving each painting out of its artist
(`open_set_evidence`): top-1 accuracy, the calibration error of those probabilities, and the open-set AUC (the top
LR of a painting whose artist is indexed against one whose artist was left out). "None of these" is said only
where that AUC shows absence can be judged (>= OPEN_SET_MIN_AUC) and no artist's LR exceeds 1; otherwise the top
artists are listed with their LRs and the output says plainly that absence from the index cannot be judged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from painterid.core.errors import PainterIDError

#: below this open-set AUC (leaving artists out) identify never answers "none of these"
OPEN_SET_MIN_AUC = 0.75
MAX_QUERIES = 2000


class ArtistEvidence:
    """Per-artist sums of the index's vectors: the centroid (set) evidence of any query against each artist."""

    def __init__(self, model, cal, index):
        self.model, self.cal, self.index = model, cal, index
        self.vectors = index.vectors_of(np.arange(index.n))
        self.names, self.codes = np.unique(np.asarray(index.artists, dtype=object), return_inverse=True)
        self.sums = np.zeros((len(self.names), self.vectors.shape[1]), np.float64)
        np.add.at(self.sums, self.codes, self.vectors)
        self.counts = np.bincount(self.codes, minlength=len(self.names))

    def log10_lr(self, scores: np.ndarray, k: np.ndarray) -> np.ndarray:
        """log10 LR of centroid scores [Q, A] at each artist's number of references [A] (or [Q, A])."""
        k = np.broadcast_to(k, scores.shape)
        out = np.empty(scores.shape, np.float64)
        for kk in np.unique(k):
            sel = k == kk
            out[sel] = self.cal.log10_lr("centroid", max(int(kk), 1), scores[sel])[0]
        return out

    def scores(self, q: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
        from painterid.scoring.sets import pair_matrix

        cents = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
        return pair_matrix(self.model, np.asarray(q, np.float32), cents)[0].astype(np.float64)


def posteriors(z: np.ndarray) -> np.ndarray:
    """p(artist) from log10 LRs over the indexed artists, equal priors (softmax of ln LR)."""
    ln = z * np.log(10.0)
    ln = ln - ln.max(axis=1, keepdims=True)
    e = np.exp(ln)
    return e / e.sum(axis=1, keepdims=True)


def open_set_evidence(ev: ArtistEvidence, seed: int = 0) -> dict:
    """Leave-one-out over the index's paintings: top-1, calibration error of p(top artist), open-set AUC."""
    from painterid.scoring.metrics import probability_metrics, roc_auc

    rng = np.random.default_rng(seed)
    rows = rng.permutation(ev.index.n)[:MAX_QUERIES]
    x, own = ev.vectors[rows], ev.codes[rows]
    s = ev.scores(x, ev.sums, ev.counts)
    k = np.repeat(ev.counts[None].astype(float), len(rows), 0)
    loo_n = ev.counts[own] - 1
    known = loo_n >= 1
    loo = ev.scores(x[known], ev.sums[own[known]] - x[known], np.maximum(loo_n[known], 1))
    s[np.flatnonzero(known), own[known]] = np.diag(loo) if len(loo) else s[np.flatnonzero(known), own[known]]
    k[np.arange(len(rows)), own] = np.maximum(loo_n, 1)
    z = ev.log10_lr(s, k)
    absent = z.copy()
    absent[np.arange(len(rows)), own] = -np.inf
    z[np.flatnonzero(~known), own[~known]] = -np.inf  # a single-painting artist is absent once left out
    top_known, top_absent = z[known].max(axis=1), absent.max(axis=1)
    p = posteriors(z[known])
    correct = (z[known].argmax(axis=1) == own[known]).astype(int)
    out = {"queries": int(len(rows)), "known_queries": int(known.sum()),
           "top1": float(correct.mean()) if len(correct) else None,
           "calibration_error": probability_metrics(p.max(axis=1), correct)["ece"] if len(correct) else None}
    if known.sum() and len(top_absent):
        out["open_set_auc"] = float(roc_auc(np.r_[top_known, top_absent],
                                            np.r_[np.ones(len(top_known)), np.zeros(len(top_absent))]))
    return out


def identify_by_sets(paths: list[Path], index_dir: str | Path, model_dir: str | Path, k: int = 5,
                     n_paintings: int = 3, runtime=None, device=None) -> list[dict]:
    """The k most likely indexed artists of each image by set evidence, with log10 LRs and probabilities."""
    from painterid.core.io import check_config_match
    from painterid.scoring.loading import single_model
    from painterid.scoring.setcal import load_set_calibration
    from painterid.tasks.compare import embed_paths
    from painterid.tasks.index import ArtistIndex

    model = single_model(model_dir, "identify")
    index = ArtistIndex.load(index_dir)
    check_config_match(index.embedding_config, model.embedding, what=f"index {index_dir}",
                       fix="build the index with the model's backbone, or pass --model with the index's")
    cal = load_set_calibration(model_dir)
    if "centroid" not in cal.per_k:
        raise PainterIDError(f"{model_dir}: its set calibration has no centroid aggregate (refit: painterid "
                             "calibrate MODEL DATA --references 1,2,3,5)")
    ev = ArtistEvidence(model, cal, index)
    measured = open_set_evidence(ev)
    vecs = embed_paths([Path(p) for p in paths], index.embedding_config, device=device, base_dir=model.root,
                       runtime=runtime)
    return [_one(ev, p, v, k, n_paintings, measured) for p, v in zip(paths, vecs)]


def _one(ev: ArtistEvidence, path, v, k: int, n_paintings: int, measured: dict) -> dict:
    """One query's result; an exact duplicate of an indexed painting is left out of its artist's evidence."""
    sims = ev.vectors @ (v / max(np.linalg.norm(v), 1e-12))
    dup = int(np.argmax(sims)) if sims.max() > 1.0 - 1e-6 else None
    sums, counts = ev.sums, ev.counts
    if dup is not None:
        sums, counts = sums.copy(), counts.copy()
        sums[ev.codes[dup]] -= ev.vectors[dup]
        counts[ev.codes[dup]] -= 1
    z = ev.log10_lr(ev.scores(v[None], sums, counts), np.maximum(counts, 1).astype(float))
    z[:, counts == 0] = -np.inf  # an artist whose only painting is the query itself
    p, z = posteriors(z)[0], z[0]
    order = np.argsort(-z, kind="stable")[:k]
    cands = []
    for a in order:
        artist = str(ev.names[a])
        near = ev.index.nearest_paintings_of(v, artist, n_paintings)
        cands.append({"artist": artist, "log10_lr": round(float(z[a]), 4), "probability": round(float(p[a]), 6),
                      "paintings": int(counts[a]),
                      "nearest": [{"file": f, "artist": artist, "score": round(float(s), 6)} for f, s in near]})
    judgeable = measured.get("open_set_auc", 0.0) >= OPEN_SET_MIN_AUC
    return {"image": str(path), "evidence": "set (centroid) log10 LR per indexed artist", "candidates": cands,
            "duplicate_of": None if dup is None else {"file": ev.index.files[dup], "artist": ev.index.artists[dup]},
            "none_of_these": bool(judgeable and cands and cands[0]["log10_lr"] < 0),
            "absence_judgeable": bool(judgeable), "open_set": measured}


def identify_any(paths: list[Path], index_dir: str | Path, model_dir: str | Path | None = None, k: int = 5,
                 threshold: float | None = None, runtime=None, device=None) -> list[dict]:
    """identify on set evidence with `model_dir` (default: the shipped default model, when the index was built
    with its embedding and no threshold is forced); else the index's own prototype search (tasks.identify), whose
    results carry the index's measured open-set figures."""
    from painterid.core.defaults import default_model_dir
    from painterid.core.io import config_differences
    from painterid.tasks.identify import identify
    from painterid.tasks.index import ArtistIndex

    if model_dir is None and threshold is None:
        from painterid.scoring.setcal import SETS_FILE

        candidate = default_model_dir()
        index = ArtistIndex.load(index_dir)
        from painterid.core.io import read_json

        emb = read_json(candidate / "config.json", "painterid model").get("embedding", {})
        if (candidate / SETS_FILE).is_file() and not config_differences(index.embedding_config, emb):
            model_dir = candidate
    if model_dir is not None:
        return identify_by_sets(paths, index_dir, model_dir, k=k, runtime=runtime, device=device)
    res = identify(paths, index_dir, k=k, threshold=threshold, device=device, runtime=runtime)
    measured = ArtistIndex.load(index_dir).config.get("open_set", {})
    for r in res:
        r["evidence"] = "prototype cosine of the index (no model with set calibration for its embedding)"
        r["open_set"] = {key: measured.get(key) for key in ("rejection_auc", "calibration_auc", "top1", "top5")}
    return res
