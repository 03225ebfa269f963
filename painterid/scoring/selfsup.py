"""Training of the `selfsup` normaliser step: a linear projection of frozen patch vectors, learned with no artist
label so that patches of one painting score high and patches of different paintings low.

pytorch-metric-learning's SupConLoss (NTXent with every other patch of the same painting a positive), labels =
painting id; batches of `paintings` paintings x `per_painting` of their patches; Adam. With validation pairs the
checkpoint (every `eval_every` steps) with the best cosine AUC of the projected validation vectors is kept;
without, the last step. Settings as measured in docs/RESULTS.md, "Which default, and why" (bench/selfsup.py): dim 256,
temperature 0.1, lr 1e-3, weight decay 1e-4, 32 paintings x 4 patches, 300 steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SelfSupSettings:
    dim: int = 256
    steps: int = 300
    eval_every: int = 50
    paintings: int = 32
    per_painting: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.1
    seed: int = 0


def project(proj: np.ndarray, bias: np.ndarray, x: np.ndarray) -> np.ndarray:
    """L2(x @ proj + bias): the step followed by `l2`, as a chain applies it."""
    z = np.asarray(x, np.float32) @ proj + bias
    return z / np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


def train_projection(patches: np.ndarray, s: SelfSupSettings = SelfSupSettings(),
                     validation: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Fit on `patches` [M, P, D] (M paintings); `validation` = (vectors [V, D], pairs [K, 3]: i, j, same).
    Returns {"proj": [D, dim], "bias": [dim], "step": chosen step, "curve": [...]}."""
    import torch
    from pytorch_metric_learning import losses

    from painterid.scoring.metrics import roc_auc

    patches = np.ascontiguousarray(patches, dtype=np.float32)
    m, p, d = patches.shape
    if m < 2 or p < 2:
        raise ValueError(f"selfsup needs two or more paintings with two or more patches each (got {m} x {p})")
    rng = np.random.default_rng(s.seed)
    with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
        torch.manual_seed(s.seed)
        head = torch.nn.Linear(d, s.dim)
    opt = torch.optim.Adam(head.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    loss_fn = losses.SupConLoss(temperature=s.temperature)
    x = torch.from_numpy(patches)
    n_pick, k = min(s.paintings, m), min(s.per_painting, p)
    labels = torch.arange(n_pick).repeat_interleave(k)

    def weights():
        return (head.weight.detach().T.numpy().copy(), head.bias.detach().numpy().copy())

    curve, best = [], (-np.inf, s.steps, None)
    for step in range(1, s.steps + 1):
        who = rng.choice(m, n_pick, replace=False)
        which = np.stack([rng.choice(p, k, replace=False) for _ in who])
        loss = loss_fn(head(x[torch.from_numpy(np.repeat(who, k)), torch.from_numpy(which.reshape(-1))]), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if validation is not None and (step % s.eval_every == 0 or step == s.steps):
            v = project(*weights(), validation[0])
            pairs = validation[1]
            auc = roc_auc(np.sum(v[pairs[:, 0]] * v[pairs[:, 1]], axis=1), pairs[:, 2])
            curve.append({"step": step, "loss": round(float(loss.detach()), 4), "val_auc": round(float(auc), 4)})
            if auc > best[0] + 1e-9:
                best = (auc, step, weights())
    proj, bias = best[2] if best[2] is not None else weights()
    return {"proj": proj.astype(np.float32), "bias": bias.astype(np.float32), "step": int(best[1]),
            "curve": curve}
