"""`load_model`: the one loader of a model directory, a single PairModel or a FusedModel of several."""

from __future__ import annotations

import os
from pathlib import Path

from painterid.core.errors import ArtefactError
from painterid.core.io import read_json, read_stable
from painterid.scoring.fusion import FusedModel, refuse_fused
from painterid.scoring.model import FUSED_KIND, PairModel


def load_model(path: str | Path):
    """Load a model directory (JSON and safetensors only, never pickle): a fused model's directory gives a
    FusedModel, whose members are PairModels; any other gives a PairModel."""
    path = Path(path)

    def once():
        if not path.is_dir():
            raise ArtefactError(f"{path}: no such model directory")
        cfg = read_json(path / "config.json", "painterid model")
        if isinstance(cfg, dict) and cfg.get("kind") == FUSED_KIND:
            return FusedModel.from_config(path, cfg)
        return PairModel.load_single(path)

    return read_stable(path, once)


def single_model(model, command: str):
    """The PairModel a command that takes one embedding works with: `model` itself or loaded from its directory;
    a fused model is refused in one line (`refuse_fused`)."""
    pm = load_model(model) if isinstance(model, (str, os.PathLike)) else model
    refuse_fused(pm, command)
    return pm
