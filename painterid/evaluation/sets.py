"""The set protocol: each held-out painting against K other paintings of its artist and against K paintings of
another held-out artist (balanced, seeded), scored by every set aggregate (scoring.sets).

`set_protocol_metrics` is what `painterid evaluate --references K,...` and bench/sets.py report: per K and
aggregate, AUC; for the same trials the one-reference AUC (the pair score against the first of the K references,
which are in random order); and, with an artist-crossfit logistic calibration of the set score, the forensic
measures of the log10 LR (Cllr, min Cllr, EER, TAR at 1% FAR) and the calibration error of p(same) at prior 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from painterid.core.errors import DataError
from painterid.scoring.sets import SET_AGGREGATES, SetTrial, pair_matrix, set_score

#: what evaluate reports when not told otherwise (patch-pool needs torch and the images; left to bench/sets.py)
DEFAULT_AGGREGATES = ("mean", "max", "top2", "head-max", "centroid", "znorm-mean", "znorm-top2", "artist-lr")


def set_trials(artists: Sequence[str], held_out: Sequence[int], k: int, seed: int = 0) -> list[tuple]:
    """(questioned index, reference indices [K], label, questioned artist) of every trial: each painting of an
    artist with >= K+1 held-out paintings once against K others of its artist (label 1) and once against K
    paintings of another held-out artist with >= K paintings (label 0)."""
    rng = np.random.default_rng([seed, k])
    by: dict[str, list[int]] = {}
    for i in held_out:
        if artists[i]:
            by.setdefault(artists[i], []).append(int(i))
    donors = sorted(a for a, v in by.items() if len(v) >= k)
    out = []
    for a in sorted(by):
        works = by[a]
        others = [b for b in donors if b != a]
        if len(works) < k + 1 or not others:
            continue
        for q in works:
            mates = [w for w in works if w != q]
            out.append((q, rng.choice(mates, k, replace=False), 1, a))
            b = others[rng.integers(len(others))]
            out.append((q, rng.choice(by[b], k, replace=False), 0, a))
    return out


class TrialScorer:
    """Scores trials over one matrix of vectors with one model: pair matrices computed once."""

    def __init__(self, model, vectors: np.ndarray, population: np.ndarray | None = None,
                 patches: np.ndarray | None = None):
        self.model, self.vectors, self.patches = model, np.asarray(vectors, np.float32), patches
        self.pair, self.head = pair_matrix(model, self.vectors, self.vectors)
        self.t = model.transform(self.vectors)
        pop = model.cohort if population is None else population
        self.pop_pair = None if pop is None or len(pop) < 2 else pair_matrix(model, pop, self.vectors)[0]
        self.pop_t = None if pop is None else model.transform(pop)

    def trial(self, q: int, refs: np.ndarray) -> SetTrial:
        cent, _ = pair_matrix(self.model, self.vectors[q:q + 1], self.vectors[refs].mean(axis=0, keepdims=True))
        p = self.patches
        return SetTrial(self.pair[q, refs], self.head[q, refs],
                        None if self.pop_pair is None else self.pop_pair[:, refs], self.t[q], self.t[refs],
                        self.pop_t, float(cent[0, 0]), None if p is None else p[q],
                        None if p is None else p[refs].reshape(-1, p.shape[-1]))

    def scores(self, trials: list[tuple], aggregates: Sequence[str]) -> dict[str, np.ndarray]:
        """{aggregate: [T] set scores, "one": the pair score against the first reference}."""
        out = {a: np.empty(len(trials)) for a in aggregates}
        out["one"] = np.array([self.pair[q, refs[0]] for q, refs, _, _ in trials], dtype=np.float64)
        for n, (q, refs, _, _) in enumerate(trials):
            t = self.trial(q, refs)
            for a in aggregates:
                out[a][n] = set_score(a, t)
        return out


def crossfit_log10_lr(scores: np.ndarray, labels: np.ndarray, groups: Sequence, folds: int = 5) -> np.ndarray:
    """Out-of-fold log10 LRs: a logistic calibration fitted on the trials of the other groups (artists or
    sources; sklearn GroupKFold), applied to each group's trials."""
    from sklearn.model_selection import GroupKFold

    from painterid.scoring.calibration import Calibrator

    g = np.asarray(groups)
    n = min(folds, len(np.unique(g)))
    if n < 2:
        raise DataError("crossfit calibration needs trials of at least two artists")
    out = np.zeros(len(scores))
    for fit, held in GroupKFold(n_splits=n).split(scores, labels, g):
        if len(np.unique(labels[fit])) < 2:
            out[held] = 0.0
            continue
        out[held] = Calibrator.fit(scores[fit], labels[fit]).logit(scores[held]) / np.log(10.0)
    return out


def set_protocol_metrics(model, vectors: np.ndarray, artists: Sequence[str], held_out: Sequence[int],
                         ks: Sequence[int] = (1, 2, 3, 5, 10), seed: int = 0,
                         aggregates: Sequence[str] = DEFAULT_AGGREGATES, patches: np.ndarray | None = None,
                         groups: Sequence | None = None) -> dict:
    """Per K: trials, AUC of each aggregate and of one reference, and the crossfit forensic measures.

    `groups`: what the calibration crossfit holds out together (default: the questioned painting's artist)."""
    scorer = TrialScorer(model, vectors, patches=patches)
    out: dict = {}
    for k in ks:
        trials = set_trials(artists, held_out, k, seed)
        y = np.array([t[2] for t in trials], dtype=int)
        if len(trials) < 4 or len(np.unique(y)) < 2:
            out[str(k)] = {"trials": len(trials), "skipped": "too few artists with enough held-out paintings"}
            continue
        g = [t[3] for t in trials] if groups is None else [groups[t[0]] for t in trials]
        out[str(k)] = k_metrics(scorer.scores(trials, [a for a in aggregates
                                                       if SET_AGGREGATES.get(a).min_k <= k]), y, g)
    return out


def k_metrics(scores: dict[str, np.ndarray], y: np.ndarray, groups: Sequence) -> dict:
    """AUC of each aggregate (and "one"), and forensic measures of the crossfit LR of each aggregate."""
    from painterid.scoring.forensic import forensic_metrics
    from painterid.scoring.metrics import probability_metrics, roc_auc
    from painterid.scoring.setcal import posterior

    row: dict = {"trials": int(len(y)), "same": int(y.sum()), "artists": len(set(groups)), "auc": {},
                 "forensic": {}}
    for a, s in scores.items():
        row["auc"][a] = float(roc_auc(s, y))
        if a == "one":
            continue
        if len(set(groups)) < 2:
            continue  # nothing to calibrate out of fold
        z = crossfit_log10_lr(s, y, groups)
        row["forensic"][a] = {**forensic_metrics(z, s, y), "ece": probability_metrics(posterior(z, 0.5), y)["ece"]}
    return row


def pooled_scores(rows: list[tuple[dict[str, np.ndarray], np.ndarray, list]]) -> tuple[dict, np.ndarray, list]:
    """Several folds' (scores, labels, groups) as one set of trials."""
    keys = list(rows[0][0])
    return ({a: np.concatenate([r[0][a] for r in rows]) for a in keys}, np.concatenate([r[1] for r in rows]),
            [g for r in rows for g in r[2]])


def evaluate_sets(model, lab, ks: Sequence[int], seed: int = 0, aggregate: str | None = None) -> dict:
    """`painterid evaluate --references K,...`: the set protocol on the unseen-artist test paintings of `lab`,
    scored with the model's calibrated LR (MODEL/sets.json): per K the AUC of the set score, of the naive max and
    of one reference on the same trials, and Cllr / min Cllr / EER / TAR at 1% FAR of its log10 LR, ECE of p."""
    from painterid.evaluation.run import test_indices
    from painterid.scoring.forensic import forensic_metrics
    from painterid.scoring.metrics import probability_metrics, roc_auc
    from painterid.scoring.setcal import load_set_calibration, posterior

    if not hasattr(model, "score_matrix"):
        raise DataError("the set protocol (--references) needs a single model, not a fused one")
    cal = load_set_calibration(model.root)
    agg = aggregate or cal.default
    train = set((model.artists or {}).get("train", []))
    held = [int(i) for i in test_indices(model, lab.hashes, list(lab.artists)) if lab.artists[i] not in train]
    scorer = TrialScorer(model, lab.vectors)
    out: dict = {"aggregate": agg, "held_out_paintings": len(held), "per_k": {}, "llr": {}}
    for k in ks:
        trials = set_trials(lab.artists, held, k, seed)
        y = np.array([t[2] for t in trials], dtype=int)
        if len(trials) < 4 or len(np.unique(y)) < 2:
            out["per_k"][str(k)] = {"trials": len(trials), "skipped": f"fewer than two held-out artists with "
                                    f"{k + 1}+ and {k}+ paintings"}
            continue
        s = scorer.scores(trials, sorted({agg, "max"}))
        z, used = cal.log10_lr(agg, k, s[agg])
        out["per_k"][str(k)] = {"auc": roc_auc(s[agg], y), "auc_max": roc_auc(s["max"], y),
                                "auc_one_reference": roc_auc(s["one"], y), "calibrated_at_k": used,
                                **forensic_metrics(z, s[agg], y),
                                "ece": probability_metrics(posterior(z, 0.5), y)["ece"]}
        out["llr"][str(k)] = (z, y)
    return out


def parse_ks(text: str) -> list[int]:
    """"1,3,5" -> [1, 3, 5]; anything else is a one-line user error."""
    try:
        ks = sorted({int(x) for x in str(text).split(",") if x.strip()})
    except ValueError:
        ks = []
    if not ks or ks[0] < 1:
        raise DataError(f"--references takes numbers of references >= 1, like 1,3,5 (got {text!r})")
    return ks


def benchmark_set_auc(model, lab, held_out: Sequence[int], k: int = 3, seed: int = 0) -> float | None:
    """AUC of the default set score (`DEFAULT_AGGREGATE`) with `k` references, over the set trials of the paintings
    `held_out` of `lab`; None where too few artists have k + 1 of them (`painterid benchmark`'s set column)."""
    from painterid.scoring.sets import DEFAULT_AGGREGATE

    row = set_protocol_metrics(model, lab.vectors, list(lab.artists), list(held_out), ks=(k,), seed=seed,
                               aggregates=(DEFAULT_AGGREGATE,))[str(k)]
    return None if "skipped" in row else float(row["auc"][DEFAULT_AGGREGATE])
