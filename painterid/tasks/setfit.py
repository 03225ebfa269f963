"""Fit a model's set calibration (MODEL/sets.json, scoring.setcal) on labelled paintings of held-out artists.

The shipped models fit it on their validation and test artists of ../shared/paintings (models/fit_sets.py):
artists the model never trained on and its cohort leaves out. `painterid calibrate MODEL --data LABELLED
--references 1,2,3,5` fits it on a user's own collection: every artist that is not one of the model's training
artists, paintings it was trained on left out. The trials are the set protocol's (evaluation.sets.set_trials),
pooled over a few seeds; the calibration error is measured out of fold (crossfit by artist) and recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from painterid.core.errors import DataError
from painterid.scoring.sets import DEFAULT_AGGREGATE  # noqa: F401 (re-exported)

#: the aggregates sets.json calibrates (those that need no images: verify's fast path)
CALIBRATED = ("mean", "max", "top2", "centroid", "znorm-mean", "znorm-top2", "artist-lr")
DEFAULT_KS = (1, 2, 3, 5, 10)
#: the set score verify uses unless told (decided on both protocols: bench/sets.py, docs/results/screening.md)


def cohort_digest(model) -> str | None:
    """A digest of the model's cohort: the set calibration holds for the scores of this cohort only."""
    import hashlib

    c = getattr(model, "cohort", None)
    return None if c is None else hashlib.sha256(np.ascontiguousarray(c, np.float32).tobytes()).hexdigest()[:16]


def held_out_indices(lab, model, artists: Sequence[str] | None = None) -> list[int]:
    """Paintings of `artists` (default: every artist but the model's training artists), not trained on."""
    train = set((model.artists or {}).get("train", []))
    trained = set(model.train_hashes)
    want = None if artists is None else set(artists)
    return [i for i, (a, h) in enumerate(zip(lab.artists, lab.hashes))
            if a and h not in trained and (a in want if want is not None else a not in train)]


def collect_scores(model, vectors, artists, held, ks, aggregates, seeds=(0, 1, 2)) -> dict:
    """{K: (scores {aggregate: [T]}, labels [T], questioned artist of each trial)} over `seeds`."""
    from painterid.evaluation.sets import TrialScorer, set_trials
    from painterid.scoring.sets import SET_AGGREGATES

    scorer = TrialScorer(model, vectors)
    out = {}
    for k in ks:
        trials = [t for s in seeds for t in set_trials(artists, held, k, s)]
        y = np.array([t[2] for t in trials], dtype=int)
        if len(trials) < 4 or len(np.unique(y)) < 2:
            continue
        aggs = [a for a in aggregates if SET_AGGREGATES.get(a).min_k <= k]
        out[k] = (scorer.scores(trials, aggs), y, [t[3] for t in trials])
    if not out:
        raise DataError("no artist has enough held-out paintings for a set trial (an artist with at least 2 "
                        "paintings and another with at least 1)")
    return out


def fit_sets(model_dir: str | Path, data_or_store: str | Path, ks: Sequence[int] = DEFAULT_KS,
             default: str = "mean", aggregates: Sequence[str] = CALIBRATED, artists: Sequence[str] | None = None,
             store_dir=None, progress=None, device=None):
    """Fit and write MODEL/sets.json from DATA|STORE; returns (SetCalibration, out-of-fold measures per K)."""
    from painterid.embedding.pipeline import labelled
    from painterid.evaluation.sets import k_metrics
    from painterid.scoring.loading import single_model
    from painterid.scoring.setcal import fit_set_calibration

    model = single_model(model_dir, "set calibration")
    lab = labelled(data_or_store, model.embedding, store_dir=store_dir, progress=progress, device=device,
                   base_dir=model.root)
    held = held_out_indices(lab, model, artists)
    per_k = collect_scores(model, lab.vectors, lab.artists, held, ks, list(aggregates))
    measured = {str(k): k_metrics(sc, y, g) for k, (sc, y, g) in per_k.items()}
    by = {a: {k: (sc[a], y) for k, (sc, y, _) in per_k.items() if a in sc} for a in aggregates}
    info = {"data": str(data_or_store), "cohort_sha256": cohort_digest(model), "held_out_paintings": len(held),
            "held_out_artists": len({lab.artists[i] for i in held}),
            "measured_out_of_fold": {k: {"auc": m["auc"].get(default), "auc_one_reference": m["auc"]["one"],
                                         **m["forensic"].get(default, {})} for k, m in measured.items()}}
    cal = fit_set_calibration(by, default, info)
    cal.save(model_dir)
    return cal, measured


def refit_sets(model_dir: str | Path, data_or_store: str | Path, ks: Sequence[int], out: str | Path | None = None,
               **kwargs):
    """`painterid calibrate MODEL DATA --references K,...`: the model (copied to `out` first, atomically, when
    given) gets a sets.json fitted on DATA; keeps the model's default aggregate. Returns (where, calibration,
    out-of-fold measures per K)."""
    import shutil

    from painterid.core.io import atomic_dir
    from painterid.scoring.setcal import SETS_FILE, load_set_calibration

    model_dir = Path(model_dir)
    default = load_set_calibration(model_dir).default if (model_dir / SETS_FILE).is_file() else DEFAULT_AGGREGATE
    if out is None:
        return (model_dir, *fit_sets(model_dir, data_or_store, ks, default=default, **kwargs))
    with atomic_dir(out) as tmp:
        shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
        cal, measured = fit_sets(tmp, data_or_store, ks, default=default, **kwargs)
    return Path(out), cal, measured
