"""training: making a model (imported only by `painterid train`). Fitting a method on a training split, members
of fused models, fine-tuning the backbone from image files, the Trainer loop and training curves, and
`painterid benchmark` (benchmark: encoders compared by the models trained on them).

May import: painterid.evaluation, painterid.scoring, painterid.embedding, painterid.store, painterid.data,
painterid.core; never painterid.tasks or painterid.cli."""

from __future__ import annotations

from pathlib import Path

from painterid.data.splits import training_split
from painterid.embedding.pipeline import Labelled
from painterid.scoring.methods import IMAGE_METHODS, LOSS_REGISTRY, METRIC_LOSSES
from painterid.training.curves import curves_png
from painterid.training.finetune import train_from_images
from painterid.training.fit import TrainOptions, fit
from painterid.training.fused import train_fused
from painterid.training.member import TUNING_GRID, fit_member
from painterid.training.trainer import Trainer

__all__ = ["IMAGE_METHODS", "LOSS_REGISTRY", "METRIC_LOSSES", "TrainOptions", "Trainer", "fit", "train_from_images",
           "train_model", "fit_member", "train_fused", "TUNING_GRID"]


def train_model(data: Labelled, out: str | Path, opts: TrainOptions, val: float = 0.2, test: float = 0.2,
                holdout: float = 0.25, log=None, cohort_filter=None, info: dict | None = None,
                split: dict | None = None, tune: bool = False, cohort: list | None = None):
    """Split `data` by artist, train `opts.method`, save the model to `out`; returns (model, history, split).

    `cohort_filter(i) -> bool` restricts the CSLS cohort to some training paintings (default: all of them).
    `cohort`: [(Labelled, where), ...] of paintings to fit the normaliser chain on and ship with the model
    (`train --cohort`); paintings of the split's validation and test artists, and the held-out paintings of the
    seen-artist test, are left out.
    `split` is a precomputed split in `splits.split_paintings`' form (e.g. `splits.split_indices` of a
    `painterid split` file); then `val`, `test` and `holdout` are not used. `tune` tries TUNING_GRID
    (learning rate × hidden width) and keeps the model with the best validation-artist AUC.
    """
    from painterid.scoring.card import model_card

    split = training_split(list(data.artists), data.names, opts.seed, val, test, holdout, indices=split)
    model, history = fit_member(data, split, opts, log=log, tune=tune, cohort=cohort, cohort_filter=cohort_filter)
    model.info.update(info or {})
    extra = {"MODEL_CARD.md": model_card(model).encode()}
    if history:
        extra["curves.png"] = curves_png(history, f"painterid {opts.method} ({data.embedding['backbone']})")
    model.save(out, extra_files=extra)
    return model, history, split

