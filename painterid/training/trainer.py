"""The one training loop: seeding, epochs, early stopping on validation AUC, the kept state, the history.

Head training (:mod:`.fit`) and image training (:mod:`.finetune`) both hand it a `step_epoch(epoch) -> loss`
and a `validate() -> {"val_auc": ..., ...}` and the modules whose weights the best epoch keeps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch (deterministic algorithms where they exist) and return a numpy generator for the same seed."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return np.random.default_rng(seed)


def optimiser_step(loss: torch.Tensor, optim: torch.optim.Optimizer, scaler=None) -> None:
    """Zero the gradients, back-propagate `loss` (through a mixed-precision `scaler` when given), step."""
    optim.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optim)
        scaler.update()
    else:
        loss.backward()
        optim.step()


def _state(modules: Sequence[nn.Module]) -> list[dict]:
    return [{k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()} for m in modules]


@dataclass
class Trainer:
    """Runs up to `epochs` epochs; stops after `patience` epochs without a better validation AUC and restores
    the modules to their state at the best epoch."""

    epochs: int
    patience: int
    log: Callable[[dict], None] | None = None
    min_delta: float = 1e-4
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0

    def run(self, step_epoch: Callable[[int], float], validate: Callable[[], dict],
            keep: Sequence[nn.Module]) -> list[dict]:
        """Train; returns the history (one dict per epoch: epoch, train_loss, val_auc, and what validate adds)."""
        best_auc, best, stale = -math.inf, _state(keep), 0
        self.history, self.best_epoch = [], 0
        for epoch in range(1, self.epochs + 1):
            rec = {"epoch": epoch, "train_loss": step_epoch(epoch)}
            rec.update(validate())
            self.history.append(rec)
            if self.log:
                self.log(rec)
            if rec["val_auc"] > best_auc + self.min_delta:
                best_auc, self.best_epoch, best, stale = rec["val_auc"], epoch, _state(keep), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        for m, s in zip(keep, best):
            m.load_state_dict(s)
        return self.history
