"""`painterid train --backbone a,b[,c]`: one member per embedding on one artist split, fused on validation artists.

Every member is trained exactly as a single model (`fit_member`: same method, normaliser chain, options and
split); the fusion weights and each member's score standardiser are chosen on the validation artists' pairs
(scoring.fusion.choose_weights), and the fused score is calibrated and thresholded there too. The embedding
cost per image of each member is measured on this machine (as `compare` embeds) and kept beside the gain.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from painterid.data.pairs import balanced_pairs
from painterid.data.splits import split_indices, training_split
from painterid.embedding.pipeline import Labelled, aligned
from painterid.scoring.calibration import Calibrator
from painterid.scoring.fusion import FusedModel, choose_weights, embedding_cost, fused_scores
from painterid.scoring.metrics import best_threshold, roc_auc
from painterid.training.curves import curves_png
from painterid.training.fit import TrainOptions
from painterid.training.member import fit_member


def train_fused(labs: list[Labelled], out: str | Path, opts: TrainOptions, names: list[str] | None = None,
                val: float = 0.2, test: float = 0.2, holdout: float = 0.25, log=None, split_file: dict | None = None,
                tune: bool = False, cohorts: list[list] | None = None, grid: int = 11, cost_images: int = 8,
                device=None, runtime: str | None = None, on_member=None):
    """Train one member per Labelled (one embedding each of the same paintings), fuse, save to `out`.

    `names`: the members' sub-directory names (default their backbones); `split_file`: a `painterid split` file
    (`splits.read_split`); `cohorts[i]`: member i's `train --cohort` list ([(Labelled, where), ...]);
    `on_member(name, model, history)` is called after each member is fitted. Returns (model, histories, split).
    """
    labs = aligned(labs)
    names = list(names or [lab.embedding["backbone"] for lab in labs])
    first = labs[0]
    precomputed = split_indices(split_file, first.names, first.artists) if split_file is not None else None
    split = training_split(list(first.artists), first.names, opts.seed, val, test, holdout, indices=precomputed)
    members, histories = [], []
    for i, (name, lab) in enumerate(zip(names, labs)):
        model, history = fit_member(lab, split, opts, log=log, tune=tune, cohort=cohorts[i] if cohorts else None)
        members.append(model)
        histories.append(history)
        if on_member is not None:
            on_member(name, model, history)
    model = fuse_members(members, names, labs, split, opts, grid)
    costs = {n: embedding_cost(lab.embedding, lab.paths or [], n=cost_images, device=device, runtime=runtime)
             for n, lab in zip(names, labs)}
    model.info["embedding_cost"] = costs
    model.info["embedding_seconds_per_image"] = {n: (c or {}).get("seconds_per_image") for n, c in costs.items()}
    _save(model, out, histories, opts)
    return model, histories, split


def fuse_members(members: list, names: list[str], labs: list[Labelled], split: dict, opts: TrainOptions,
                 grid: int = 11) -> FusedModel:
    """The FusedModel of members fitted on one split: weights and standardisers chosen, fused score calibrated
    and thresholded, all on the validation artists' pairs (the pairs `fit` validates each member on)."""
    va = np.asarray(split["indices"]["val"])
    vpairs = balanced_pairs([labs[0].artists[i] for i in va], seed=opts.seed)
    labels = vpairs[:, 2]
    val_scores = [m.scores(lab.vectors[va[vpairs[:, 0]]], lab.vectors[va[vpairs[:, 1]]])
                  for m, lab in zip(members, labs)]
    weights, stats, auc = choose_weights(val_scores, labels, grid)
    fused = fused_scores(val_scores, weights, stats)
    info = {"options": asdict(opts),
            "validation": {"pairs": int(len(vpairs)), "auc": float(roc_auc(fused, labels)),
                           "auc_by_member": {n: float(roc_auc(s, labels)) for n, s in zip(names, val_scores)},
                           "weight_grid": grid},
            "n_train_paintings": int(len(split["indices"]["train"]))}
    return FusedModel(members, names, weights, stats, Calibrator.fit(fused, labels),
                      best_threshold(fused, labels, criterion="accuracy"), info)


def _save(model: FusedModel, out, histories: list, opts: TrainOptions) -> None:
    from painterid.scoring.card import fused_model_card, model_card

    files = {}
    for name, member, history in zip(model.names, model.members, histories):
        files[name] = {"MODEL_CARD.md": model_card(member).encode()}
        if history:
            files[name]["curves.png"] = curves_png(history, f"painterid {opts.method} ({name})")
    model.save(out, extra_files={"MODEL_CARD.md": fused_model_card(model).encode()}, member_files=files)
