"""Evaluate a PairModel on a labelled data set: seen / unseen / mixed pairs, as in the seed report's Table 1."""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import DataError
from .metrics import pair_report
from .pairs import balanced_pairs, natural_pairs

SPLITS = ("seen", "unseen", "mixed", "all")
PROTOCOLS = ("balanced", "natural")


def split_masks(pairs: np.ndarray, artists: list[str], train_artists: set[str]) -> dict[str, np.ndarray]:
    """The report's three test sets: seen (both artists trained on), unseen (neither), and mixed (every pair of
    a test set that mixes seen and unseen artists, cross pairs included)."""
    arr = np.asarray(artists, dtype=object)
    known = np.array([a in train_artists for a in arr], dtype=bool)
    a_in, b_in = known[pairs[:, 0]], known[pairs[:, 1]]
    return {"seen": a_in & b_in, "unseen": ~a_in & ~b_in, "mixed": np.ones(len(pairs), dtype=bool)}


def test_indices(model, hashes: list[str], artists: list[str]) -> np.ndarray:
    """Paintings fit to test on: not trained on, and not by a validation artist (those chose the threshold)."""
    trained = set(model.train_hashes)
    val = set(model.artists.get("val", []))
    return np.array([i for i, (h, a) in enumerate(zip(hashes, artists)) if h not in trained and a not in val],
                    dtype=np.int64)


def evaluate_model(model, data, split: str = "all", protocol: str = "balanced", pairs: np.ndarray | None = None,
                   seed: int = 0, n_boot: int = 200, max_pairs: int | None = 2_000_000) -> dict:
    """Metrics of `model` on the test paintings of `data` (a pipeline.Labelled), per split and within source."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    artists = list(data.artists)
    if pairs is None:
        keep = test_indices(model, data.hashes, artists)
        if len(keep) < 2:
            raise DataError("no test paintings left after removing training paintings and validation artists")
        sub = [artists[i] for i in keep]
        if protocol == "balanced":
            local = balanced_pairs(sub, seed=seed, max_pos=max_pairs // 2 if max_pairs else None)
        elif protocol == "natural":
            n_all = len(sub) * (len(sub) - 1) // 2
            local = natural_pairs(sub, n_pairs=min(n_all, max_pairs) if max_pairs else None, seed=seed)
        else:
            raise DataError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
        pairs = np.column_stack([keep[local[:, 0]], keep[local[:, 1]], local[:, 2]]) if len(local) else local
    if len(pairs) == 0:
        raise DataError("no test pairs: the test paintings have no two by the same artist")
    labelled_pairs = pairs[pairs[:, 2] >= 0]
    if len(labelled_pairs) < len(pairs):
        warnings.warn(f"{len(pairs) - len(labelled_pairs)} pair(s) have no label and are not scored", stacklevel=2)
    pairs = labelled_pairs

    scores = model.score_pairs(data.vectors, pairs)
    masks = split_masks(pairs, artists, model.train_artists)
    names = ["seen", "unseen", "mixed"] if split == "all" else [split]
    out: dict = {"protocol": protocol, "threshold": model.threshold, "groups": {}, "within_source": {}}

    def report(mask: np.ndarray) -> dict | None:
        if not mask.any():
            return None
        labels = pairs[mask, 2]
        rep = pair_report(scores[mask], labels, model.threshold, n_boot=n_boot, seed=seed)
        if labels.min() == labels.max():
            rep["note"] = "only one class of pairs: AUC undefined"
        return rep

    same_src = None
    if data.sources:
        src = np.asarray(data.sources, dtype=object)
        same_src = src[pairs[:, 0]] == src[pairs[:, 1]]
    for name in names:
        out["groups"][name] = report(masks[name])
        if same_src is not None:
            out["within_source"][name] = report(masks[name] & same_src)
    out["n_pairs"] = int(len(pairs))
    out["n_paintings"] = int(len(np.unique(pairs[:, :2])))
    return out
