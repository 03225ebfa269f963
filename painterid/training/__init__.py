"""Training (imported only by `painterid train`): split, fit a method, calibrate, save the model directory."""

from __future__ import annotations

from pathlib import Path

from ..datasets import split_paintings
from ..errors import DataError
from ..pipeline import Labelled
from .curves import curves_png
from .finetune import IMAGE_METHODS, train_from_images
from .fit import METRIC_LOSSES, TrainOptions, fit

__all__ = ["IMAGE_METHODS", "METRIC_LOSSES", "TrainOptions", "fit", "train_from_images", "train_model"]


def train_model(data: Labelled, out: str | Path, opts: TrainOptions, val: float = 0.2, test: float = 0.2,
                holdout: float = 0.25, log=None, cohort_filter=None, info: dict | None = None,
                split: dict | None = None):
    """Split `data` by artist, train `opts.method`, save the model to `out`; returns (model, history, split).

    `cohort_filter(i) -> bool` restricts the CSLS cohort to some training paintings (default: all of them).
    `split` is a precomputed split in `datasets.split_paintings`' form (e.g. `splits.split_indices` of a
    `painterid split` file); then `val`, `test` and `holdout` are not used.
    """
    from ..scoring.card import model_card

    artists = [a for a in data.artists]
    if any(not a for a in artists):
        raise DataError("training needs the artist of every painting (Kaggle CSV or one folder per artist)")
    if split is None:
        split = split_paintings(artists, val=val, test=test, holdout=holdout, seed=opts.seed)
    ix = split["indices"]
    if len(ix["train"]) < 4 or len(ix["val"]) < 2:
        raise DataError(f"too few paintings to train ({len(ix['train'])} training, {len(ix['val'])} validation)")
    model, history = fit(
        data.vectors[ix["train"]], [artists[i] for i in ix["train"]],
        data.vectors[ix["val"]], [artists[i] for i in ix["val"]],
        data.embedding, opts, artists_split=split["artists"],
        train_hashes=[data.hashes[i] for i in ix["train"]], log=log,
        cohort=None if cohort_filter is None else data.vectors[[i for i in ix["train"] if cohort_filter(i)]],
    )
    model.info.update(info or {})
    extra = {"MODEL_CARD.md": model_card(model).encode()}
    if history:
        extra["curves.png"] = curves_png(history, f"painterid {opts.method} ({data.embedding['backbone']})")
    model.save(out, extra_files=extra)
    return model, history, split
