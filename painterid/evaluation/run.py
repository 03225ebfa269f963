"""Evaluate a PairModel on a labelled data set: seen / unseen / mixed pairs, as in the seed report's Table 1."""

from __future__ import annotations

import warnings

import numpy as np

from painterid.core.errors import DataError
from painterid.data.pairs import PROTOCOLS, SPLITS, balanced_test_sets, natural_pairs
from painterid.evaluation.metrics import map_at_r, pair_report


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


def retrieval_map_at_r(model, vectors: np.ndarray, artists: list[str], indices: np.ndarray) -> float | None:
    """MAP@R (artists as labels) of the paintings `indices`, each querying the others in the model's scoring
    space (`model.space`; the raw embeddings for the siamese head, whose score is no dot product), before CSLS."""
    idx = np.asarray(indices, dtype=np.int64)
    if len(idx) < 2:
        return None
    space = model.space(vectors[idx])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = map_at_r(vectors[idx] if space is None else space, [artists[i] for i in idx])
    return None if np.isnan(value) else float(value)


def _test_sets(model, data, artists: list[str], names: list[str], protocol: str, pairs: np.ndarray | None,
               seed: int, max_pairs: int | None) -> dict[str, np.ndarray]:
    """The test pairs of each split (from the protocol, or the given `pairs` sorted into splits), checked."""
    if pairs is None:
        if not any(a for a in artists):
            raise DataError("no artist labels: the paintings of this folder carry no artist, so no pair can be "
                            "scored against a truth; give one sub-folder per artist or a train_info.csv "
                            "(filename,artist)")
        keep = test_indices(model, data.hashes, artists)
        if len(keep) < 2:
            raise DataError("no test paintings left after removing training paintings and validation artists")
        if protocol == "balanced":
            # the report's protocol: each of seen / unseen / mixed is balanced on its own
            sets = balanced_test_sets(artists, model.train_artists, keep, seed=seed,
                                      max_pos=max_pairs // 2 if max_pairs else None)
        else:  # natural
            sub = [artists[i] for i in keep]
            n_all = len(sub) * (len(sub) - 1) // 2
            local = natural_pairs(sub, n_pairs=min(n_all, max_pairs) if max_pairs else None, seed=seed)
            pairs = np.column_stack([keep[local[:, 0]], keep[local[:, 1]], local[:, 2]])
    if pairs is not None:
        labelled_pairs = pairs[pairs[:, 2] >= 0]
        if len(labelled_pairs) < len(pairs):
            warnings.warn(f"{len(pairs) - len(labelled_pairs)} pair(s) have no label and are not scored",
                          stacklevel=2)
        pairs = labelled_pairs
        masks = split_masks(pairs, artists, model.train_artists)
        sets = {k: pairs[masks[k]] for k in ("seen", "unseen", "mixed")}
    if not any(len(sets[n]) for n in names):
        raise DataError("no test pairs: the test paintings have no two by the same artist")
    if not any((sets[n][:, 2] == 1).any() for n in names):
        raise DataError("no same-artist test pairs (every test artist has a single painting), so accuracy, recall "
                        "and AUC would mean nothing; evaluate on artists with two or more paintings")
    for n in names:
        if len(sets[n]) and sets[n][:, 2].min() == sets[n][:, 2].max():
            kind = "same-artist" if sets[n][0, 2] == 1 else "different-artist"
            warnings.warn(f"{n}: all {len(sets[n])} test pairs are {kind} pairs; its AUC and EER are undefined",
                          stacklevel=2)

    return sets


def evaluate_model(model, data, split: str = "all", protocol: str = "balanced", pairs: np.ndarray | None = None,
                   seed: int = 0, n_boot: int = 200, max_pairs: int | None = 2_000_000,
                   return_scores: bool = False):
    """Metrics of `model` on the test paintings of `data` (a pipeline.Labelled), per split and within source.

    With `return_scores`, returns (metrics, {split: (pairs [P, 3], scores [P])}) — what `--report` draws.
    """
    SPLITS.get(split)  # an unknown split: one line naming the valid ones
    PROTOCOLS.get(protocol)
    artists = list(data.artists)
    names = ["seen", "unseen", "mixed"] if split == "all" else [split]
    pairs_given = pairs is not None
    sets = _test_sets(model, data, artists, names, protocol, pairs, seed, max_pairs)

    out: dict = {"protocol": protocol, "threshold": model.threshold, "groups": {}, "within_source": {}}
    src = np.asarray(data.sources, dtype=object) if data.sources else None

    def report(sel: np.ndarray, scores: np.ndarray) -> dict | None:
        if len(sel) == 0:
            return None
        labels = sel[:, 2]
        rep = pair_report(scores, labels, model.threshold, n_boot=n_boot, seed=seed)
        if labels.min() == labels.max():
            rep["note"] = "only one class of pairs: AUC undefined"
        return rep

    used = []
    scored = {}
    for name in names:
        sel = sets[name]
        scores = model.score_pairs(data.vectors, sel) if len(sel) else np.zeros(0, np.float32)
        out["groups"][name] = report(sel, scores)
        if out["groups"][name] is not None:
            out["groups"][name]["map@r"] = retrieval_map_at_r(model, data.vectors, artists, np.unique(sel[:, :2]))
        scored[name] = (sel, scores)
        if src is not None:
            m = src[sel[:, 0]] == src[sel[:, 1]] if len(sel) else np.zeros(0, bool)
            out["within_source"][name] = report(sel[m], scores[m])
        used.append(sel)
    pairs = np.concatenate(used)
    distinct = np.unique(np.sort(pairs[:, :2], axis=1), axis=0) if len(pairs) else np.zeros((0, 2), np.int64)
    out["n_pairs"] = int(len(distinct))  # a pair in several splits (unseen and mixed) counts once
    out["n_pairs_by_split"] = {n: int(len(sets[n])) for n in names}
    out["n_paintings"] = int(len(np.unique(pairs[:, :2])))
    out["paintings"] = coverage(model, data, artists, np.unique(pairs[:, :2]), given_pairs=pairs_given)
    if src is not None and len({src[i] for i in np.unique(pairs[:, :2])}) < 2:
        out["within_source"] = {}  # one source: the same pairs as "all pairs"
        out["sources"] = 1
    return (out, scored) if return_scores else out


def coverage(model, data, artists: list[str], used: np.ndarray, given_pairs: bool = False) -> dict:
    """How many paintings of `data` the test pairs use, and why the others are left out."""
    n = len(artists)
    trained, val = set(model.train_hashes), set(model.artists.get("val", []))
    why = {"no artist label": 0, "trained on by the model": 0, "by the model's validation artists": 0}
    test = []
    for i, (h, a) in enumerate(zip(data.hashes, artists)):
        if not a:
            why["no artist label"] += 1
        elif h in trained:
            why["trained on by the model"] += 1
        elif a in val:
            why["by the model's validation artists"] += 1
        else:
            test.append(i)
    counts: dict[str, int] = {}
    for i in test:
        counts[artists[i]] = counts.get(artists[i], 0) + 1
    used_set = set(int(i) for i in used)
    single = sum(1 for i in test if counts[artists[i]] == 1 and i not in used_set)
    if given_pairs:
        why["not in the pairs given"] = len(test) - len(used_set & set(test))
    else:
        why["only painting of its artist among the test paintings (no same-artist pair), not drawn"] = single
        why["not drawn by the balanced sampling"] = len(test) - len(used_set & set(test)) - single
    return {"in_data": n, "used": len(used_set), "left_out": {k: v for k, v in why.items() if v}}


def coverage_line(paintings: dict) -> str:
    """'used 14 of 32 paintings; left out: 10 trained on by the model, ...' (one line)."""
    left = "; ".join(f"{v} {k}" for k, v in paintings["left_out"].items())
    return f"used {paintings['used']} of {paintings['in_data']} paintings" + (f"; left out: {left}" if left else "")
