"""Training (imported only by `painterid train`): split, fit a method, calibrate, save the model directory."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..pipeline import Labelled
from ..scoring.methods import IMAGE_METHODS
from ..splits import training_split
from .curves import curves_png
from .finetune import train_from_images
from ..scoring.methods import LOSS_REGISTRY, METRIC_LOSSES
from .fit import TrainOptions, fit
from .trainer import Trainer

# learning rate × hidden width tried by `train --tune`
TUNING_GRID = ((1e-3, 256), (1e-3, 512), (3e-4, 256), (3e-4, 512))

__all__ = ["IMAGE_METHODS", "LOSS_REGISTRY", "METRIC_LOSSES", "TrainOptions", "Trainer", "fit", "train_from_images",
           "train_model"]


def train_model(data: Labelled, out: str | Path, opts: TrainOptions, val: float = 0.2, test: float = 0.2,
                holdout: float = 0.25, log=None, cohort_filter=None, info: dict | None = None,
                split: dict | None = None, tune: bool = False):
    """Split `data` by artist, train `opts.method`, save the model to `out`; returns (model, history, split).

    `cohort_filter(i) -> bool` restricts the CSLS cohort to some training paintings (default: all of them).
    `split` is a precomputed split in `splits.split_paintings`' form (e.g. `splits.split_indices` of a
    `painterid split` file); then `val`, `test` and `holdout` are not used. `tune` tries TUNING_GRID
    (learning rate × hidden width) and keeps the model with the best validation-artist AUC.
    """
    from ..scoring.card import model_card

    artists = list(data.artists)
    split = training_split(artists, data.names, opts.seed, val, test, holdout, indices=split)
    ix = split["indices"]

    def run(o: TrainOptions):
        return fit(
            data.vectors[ix["train"]], [artists[i] for i in ix["train"]],
            data.vectors[ix["val"]], [artists[i] for i in ix["val"]],
            data.embedding, o, artists_split=split["artists"],
            train_hashes=[data.hashes[i] for i in ix["train"]], log=log,
            cohort=None if cohort_filter is None else data.vectors[[i for i in ix["train"] if cohort_filter(i)]],
        )

    if tune and opts.method != "cosine":
        # hyper-parameters chosen on the validation artists only (their AUC after early stopping)
        trials = []
        for lr, hidden in TUNING_GRID:
            o = replace(opts, lr=lr, hidden=hidden)
            m, h = run(o)
            trials.append(({"lr": lr, "hidden": hidden, "val_auc": m.info["validation"]["auc"]}, m, h))
        best = max(trials, key=lambda t: t[0]["val_auc"])
        model, history = best[1], best[2]
        model.info["tuning"] = {"grid": [t[0] for t in trials], "chosen": best[0]}
    else:
        model, history = run(opts)
    model.info.update(info or {})
    extra = {"MODEL_CARD.md": model_card(model).encode()}
    if history:
        extra["curves.png"] = curves_png(history, f"painterid {opts.method} ({data.embedding['backbone']})")
    model.save(out, extra_files=extra)
    return model, history, split
