"""`fit_member`: one model fitted on a training split (the single model of `train`, or one member of a fused one)."""

from __future__ import annotations

from dataclasses import replace

from painterid.core.errors import DataError
from painterid.embedding.pipeline import Labelled
from painterid.training.fit import TrainOptions, fit

# learning rate × hidden width tried by `train --tune`
TUNING_GRID = ((1e-3, 256), (1e-3, 512), (3e-4, 256), (3e-4, 512))


def fit_member(data: Labelled, split: dict, opts: TrainOptions, log=None, tune: bool = False,
               cohort: list | None = None, cohort_filter=None):
    """Fit `opts.method` on the training paintings of a split of `data` (a `training_split`), stopped and
    calibrated on its validation artists (`train --tune`: the best of TUNING_GRID there); (model, history)."""
    artists = list(data.artists)
    ix = split["indices"]
    cohort_vecs, cohort_info, cohort_hashes = _cohort(data, split, cohort, cohort_filter)
    patches = _patch_source(opts.normaliser, data, cohort)

    def run(o: TrainOptions):
        return fit(
            data.vectors[ix["train"]], [artists[i] for i in ix["train"]],
            data.vectors[ix["val"]], [artists[i] for i in ix["val"]],
            data.embedding, o, artists_split=split["artists"],
            train_hashes=[data.hashes[i] for i in ix["train"]], log=log,
            cohort=cohort_vecs, cohort_info=cohort_info, patches=patches, cohort_hashes=cohort_hashes,
            val_hashes=[data.hashes[i] for i in ix["val"]],
        )

    if not (tune and opts.method != "cosine"):
        return run(opts)
    # hyper-parameters chosen on the validation artists only (their AUC after early stopping)
    trials = []
    for lr, hidden in TUNING_GRID:
        m, h = run(replace(opts, lr=lr, hidden=hidden))
        trials.append(({"lr": lr, "hidden": hidden, "val_auc": m.info["validation"]["auc"]}, m, h))
    best = max(trials, key=lambda t: t[0]["val_auc"])
    best[1].info["tuning"] = {"grid": [t[0] for t in trials], "chosen": best[0]}
    return best[1], best[2]


def _patch_source(normaliser: str, data: Labelled, cohort: list | None):
    """The per-patch vectors a `selfsup` step is trained on (painterid.embedding.patches), when a candidate chain has one."""
    if "selfsup" not in (normaliser or ""):
        return None
    from painterid.embedding.patches import PatchSource

    return PatchSource.of(data, *[c for c, _ in cohort or []])


def _cohort(data: Labelled, split: dict, cohort: list | None, cohort_filter):
    """(vectors, info, sha256s) of the cohort `train_model` fits the normalisers on; (None, None, None): the
    training paintings."""
    ix = split["indices"]
    if cohort:
        from painterid.scoring.cohort import combine, select_cohort

        held = split["artists"]["val"] + split["artists"]["test"]
        seen_test = [data.hashes[i] for i in ix.get("test_seen", [])]  # held-out paintings of training artists
        vecs, info, hashes = combine([(*select_cohort(c, held, seen_test), str(w)) for c, w in cohort])
        if len(vecs) < 2:
            raise DataError("the cohort has fewer than two paintings once the validation and test artists are "
                            "left out")
        return vecs, info, hashes
    if cohort_filter is not None:
        keep = [i for i in ix["train"] if cohort_filter(i)]
        return data.vectors[keep], {"source": "training paintings (filtered)"}, [data.hashes[i] for i in keep]
    return None, None, None
