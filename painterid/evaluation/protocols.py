"""The two unseen-artist protocols every comparison of encoders or methods runs (bench/protocols.py, `painterid
benchmark`): folds of artist-disjoint random splits and leave-one-source-out, the test pairs of a fold, and the
metrics of its scores.

- ``random``: random artist-disjoint splits (one per seed; 50% training, 20% validation, 30% test artists),
  scored on the unseen-artist pairs `painterid evaluate` scores (balanced) and those within one source;
- ``loso`` (leave one source out, needs sources.csv): for each source, test on all its paintings (balanced pairs,
  every test artist unseen), train / choose on the other sources without any painting of a test artist; 25% of
  the remaining artists are the validation artists.
"""

from __future__ import annotations

import numpy as np

from painterid.core.errors import DataError
from painterid.data.pairs import balanced_pairs, balanced_test_sets
from painterid.data.splits import split_paintings
from painterid.evaluation.metrics import probability_metrics, roc_auc, threshold_metrics
from painterid.evaluation.run import test_indices

PROTOCOLS = ("random", "loso")


def folds(lab, protocols: list[str] | tuple[str, ...], seeds: list[int] | tuple[int, ...]):
    """(protocol, fold name, train indices, val indices, test indices or None, split artists, seed) of each fold."""
    artists = list(lab.artists)
    if "random" in protocols:
        for seed in seeds:
            sp = split_paintings(artists, val=0.2, test=0.3, holdout=0.25, seed=seed)
            yield "random", f"seed{seed}", sp["indices"]["train"], sp["indices"]["val"], None, sp["artists"], seed
    if "loso" in protocols:
        if not lab.sources:
            raise DataError("leave-one-source-out needs the source of every painting (sources.csv)")
        for src in sorted(set(lab.sources)):
            test = np.array([i for i, s in enumerate(lab.sources) if s == src])
            test_artists = {artists[i] for i in test}
            pool = np.array([i for i, (s, a) in enumerate(zip(lab.sources, artists))
                             if s != src and a not in test_artists])
            sp = split_paintings([artists[i] for i in pool], val=0.25, test=0.0, holdout=0.0, seed=0)
            tr, va = pool[sp["indices"]["train"]], pool[sp["indices"]["val"]]
            split = {"train": sp["artists"]["train"], "val": sp["artists"]["val"], "test": sorted(test_artists)}
            yield "loso", src, tr, va, test, split, 0


def test_pairs(proto: str, model, lab, test, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pairs [P, 3] of global indices with labels, mask of pairs within one source) of a fold's test."""
    if proto == "loso":
        local = balanced_pairs([lab.artists[i] for i in test], seed=seed)
        pairs = np.column_stack([test[local[:, 0]], test[local[:, 1]], local[:, 2]])
    else:  # exactly the unseen pairs `painterid evaluate` scores
        keep = test_indices(model, lab.hashes, list(lab.artists))
        pairs = balanced_test_sets(list(lab.artists), model.train_artists, keep, seed=seed,
                                   max_pos=1_000_000)["unseen"]
    src = np.asarray(lab.sources or [""] * len(lab.artists), dtype=object)
    return pairs, src[pairs[:, 0]] == src[pairs[:, 1]]


def calibration_metrics(p: np.ndarray, y: np.ndarray) -> dict:
    """How well p(same artist) matches the test pairs (painterid.evaluation.metrics.probability_metrics)."""
    return {f"unseen.{k}": v for k, v in probability_metrics(p, y).items()}


def metrics(scores: np.ndarray, pairs: np.ndarray, within: np.ndarray, threshold: float, calibrator=None) -> dict:
    """Unseen-artist AUC and accuracy at ``threshold`` of a fold's test pairs, also within one source."""
    y = pairs[:, 2]
    out = {"unseen.auc": roc_auc(scores, y), "unseen.accuracy": threshold_metrics(scores, y, threshold)["accuracy"],
           "unseen.pairs": int(len(y))}
    if calibrator is not None:
        out.update(calibration_metrics(calibrator(scores), y))
    if within.any() and len(np.unique(y[within])) == 2:
        out["within.unseen.auc"] = roc_auc(scores[within], y[within])
        out["within.unseen.accuracy"] = threshold_metrics(scores[within], y[within], threshold)["accuracy"]
    return out


def mean_std(values) -> dict | None:
    """``{"mean", "std", "n"}`` of the finite values (None when there is none)."""
    vals = np.array([np.nan if v is None else v for v in values], dtype=float)
    if not np.isfinite(vals).any():
        return None
    return {"mean": float(np.nanmean(vals)), "std": float(np.nanstd(vals)), "n": int(np.isfinite(vals).sum())}
