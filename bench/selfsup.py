"""Self-supervision without artist labels (issue 12, item 4): does a projection of frozen patch features, trained
so that patches of one painting score high and patches of different paintings low, beat the unsupervised chain?

    python bench/selfsup.py --data ../shared/paintings --out docs/results/selfsup-real.json

What it does, on exactly the folds and pairs of bench/protocols.py (5 random artist splits + leave one source out):
1. Per-patch vectors of the default embedding (EfficientNet-Lite1, `patches`, `gap`) for every painting, taken
   through the library's own Embedder (its view transform, then its feature extractor) BEFORE they are averaged:
   the `n_patches` grid patches of the `patches` view, plus `--extra` crops of the same size at random positions
   of the same resized image (the training material). Cached in a .npz under `--cache`. The mean of the grid
   patches (each L2-normalised, as the Embedder does) must reproduce the stored painting vectors; the script
   prints and records the largest difference.
2. A projection (`linear`: D -> `--dim`; `mlp`: D -> `--hidden` -> `--dim`) trained with pytorch-metric-learning's
   SupConLoss (NTXent with every other patch of the same painting a positive; PML's NTXentLoss gives the same loss
   but materialises a positives x negatives matrix, 100x slower here), labels = painting id (no artist label): batches of `--paintings-per-batch` paintings x
   `--patches-per-painting` patches, Adam, `--steps` steps. The checkpoint (every `--eval-every` steps) is the one
   with the best cosine AUC on the fold's VALIDATION artists; the test artists choose nothing. Every other
   hyper-parameter (dim, temperature, learning rate, batch) is fixed a priori (the defaults below).
   Variants: `inductive` (trained on the fold's training + validation paintings) and `transductive` (trained on
   every painting of the collection, test ones included, still without any artist label: an archive's own
   unlabelled paintings).
3. The painting vector = L2(mean of the L2-normalised projected grid patches) (with `--on-painting-vectors` also
   L2(projection of the stored painting vector), which needs no per-patch vectors); scored by the library's `cosine`
   method with each `--normalisers` chain fitted on the fold's training paintings (painterid.training.fit, as
   bench/protocols.py does), beside the same chains on the unprojected vectors (the baselines).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from protocols import folds, markdown, metrics, summarise, test_pairs  # noqa: E402
from torch import nn  # noqa: E402

from painterid.core.locations import cache_dir  # noqa: E402
from painterid.data.pairs import balanced_pairs  # noqa: E402
from painterid.embedding.embedder import Embedder, EmbeddingConfig  # noqa: E402
from painterid.embedding.images import load_image  # noqa: E402
from painterid.embedding.patches import random_crops  # noqa: E402
from painterid.embedding.pipeline import labelled  # noqa: E402
from painterid.evaluation.metrics import roc_auc  # noqa: E402
from painterid.training import TrainOptions, fit  # noqa: E402

# ---------------------------------------------------------------------------------------------------------------
# Per-patch features through the library's Embedder
# ---------------------------------------------------------------------------------------------------------------

def patch_features(embedder: Embedder, paths: list[str], extra: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """([N, V, D] grid patches of the `patches` view, [N, extra, D] random patches), each patch L2-normalised."""
    rng = np.random.default_rng(seed)
    grid, rand = [], []
    t0 = time.time()
    with torch.inference_mode():
        for i, p in enumerate(paths):
            img = load_image(p)
            views = torch.cat([embedder.transform(img), random_crops(embedder.transform, img, extra, rng)])
            feats = torch.cat([embedder.extractor(c.to(embedder.device)) for c in views.split(8)])
            feats = nn.functional.normalize(feats.float(), dim=-1).cpu().numpy().astype(np.float32)
            grid.append(feats[: embedder.transform.n_views])
            rand.append(feats[embedder.transform.n_views:])
            if (i + 1) % 25 == 0:
                print(f"  patches: {i + 1}/{len(paths)} paintings, {time.time() - t0:.0f} s", file=sys.stderr,
                      flush=True)
    return np.stack(grid), np.stack(rand)


def cached_patch_features(lab, cfg: EmbeddingConfig, extra: int, seed: int, cache: Path):
    key = hashlib.sha256(json.dumps([lab.hashes, repr(cfg), extra, seed]).encode()).hexdigest()[:16]
    path = cache / f"patches-{cfg.backbone}-{key}.npz"
    if path.is_file():
        with np.load(path) as z:
            return z["grid"], z["rand"], path
    embedder = Embedder(cfg, num_workers=0)
    grid, rand = patch_features(embedder, list(lab.paths), extra, seed)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, grid=grid, rand=rand)
    os.replace(tmp, path)
    return grid, rand, path


def l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


# ---------------------------------------------------------------------------------------------------------------
# The projection
# ---------------------------------------------------------------------------------------------------------------

def make_head(kind: str, d_in: int, dim: int, hidden: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(d_in, dim)
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, dim))


def project(head: nn.Module, patches: np.ndarray) -> np.ndarray:
    """[N, V, D] patches -> [N, dim] painting vectors: L2(mean of the L2-normalised projected patches)."""
    head.eval()
    with torch.inference_mode():
        z = head(torch.from_numpy(patches.reshape(-1, patches.shape[-1])))
        z = nn.functional.normalize(z, dim=-1).view(patches.shape[0], patches.shape[1], -1).mean(1)
        return nn.functional.normalize(z, dim=-1).numpy().astype(np.float32)


def train_projection(patches: np.ndarray, val_grid: np.ndarray, val_pairs: np.ndarray, args, kind: str, seed: int):
    """Train on `patches` [M, P, D] (labels = painting id), keep the checkpoint with the best validation-artist AUC
    of the projected `val_grid` paintings. Returns (head, chosen step, validation AUC curve)."""
    from pytorch_metric_learning import losses

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = make_head(kind, patches.shape[-1], args.dim, args.hidden)
    opt = torch.optim.Adam(head.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    loss_fn = losses.SupConLoss(temperature=args.temperature)  # NTXent with several positives per anchor
    x = torch.from_numpy(patches)
    m, p = patches.shape[:2]
    n_pick, k = min(args.paintings_per_batch, m), min(args.patches_per_painting, p)
    labels = torch.arange(n_pick).repeat_interleave(k)
    curve, best = [], (-1.0, 0, None)
    for step in range(1, args.steps + 1):
        head.train()
        who = rng.choice(m, n_pick, replace=False)
        which = np.stack([rng.choice(p, k, replace=False) for _ in who])
        batch = x[torch.from_numpy(np.repeat(who, k)), torch.from_numpy(which.reshape(-1))]
        loss = loss_fn(head(batch), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            v = project(head, val_grid)
            auc = roc_auc(np.sum(v[val_pairs[:, 0]] * v[val_pairs[:, 1]], axis=1), val_pairs[:, 2])
            curve.append({"step": step, "loss": round(float(loss.detach()), 4), "val_auc": round(float(auc), 4)})
            if auc > best[0] + 1e-9:
                best = (auc, step, {k_: t.clone() for k_, t in head.state_dict().items()})
    head.load_state_dict(best[2])
    return head, best[1], curve


# ---------------------------------------------------------------------------------------------------------------
# The folds
# ---------------------------------------------------------------------------------------------------------------

def score_fold(vectors, lab, embedding, proto, fold, tr, va, test, split, seed, norm, name) -> dict:
    """Cosine + `norm` fitted on the fold's training paintings, tested on the fold's pairs (bench/protocols.py)."""
    opts = TrainOptions(method="cosine", normaliser=norm, seed=seed)
    model, _ = fit(vectors[tr], [lab.artists[i] for i in tr], vectors[va], [lab.artists[i] for i in va],
                   {**dict(embedding), "dim": int(vectors.shape[1])}, opts, artists_split=split,
                   train_hashes=[lab.hashes[i] for i in tr])
    pairs, within = test_pairs(proto, model, lab, test, seed)
    return {"protocol": proto, "fold": fold, "method": "cosine", "normaliser": norm, "embedding": name,
            "val_auc": model.info["validation"]["auc"],
            **metrics(model.score_pairs(vectors, pairs), pairs, within, model.threshold)}


def run_folds(lab, grid, rand, args) -> list[dict]:
    rows = []
    allp = np.concatenate([grid, rand], axis=1)  # the training material: grid + random patches
    n = len(lab.artists)
    more = {"grid32 (no projection)": l2(l2(allp).mean(1))} if args.more_patches_baseline else {}
    for proto, fold, tr, va, test, split, seed in folds(lab, args.protocols, args.seeds):
        vp = balanced_pairs([lab.artists[i] for i in va], seed=seed)
        embeds = {"main": lab.vectors, **more}
        for kind in args.heads:
            for variant in args.variants:
                t0 = time.time()
                fit_on = np.concatenate([tr, va]) if variant == "inductive" else np.arange(n)
                head, step, curve = train_projection(allp[fit_on], grid[va], vp, args, kind, seed)
                name = f"{kind} {variant}"
                embeds[name] = project(head, grid)
                if args.on_painting_vectors:  # what a chain step could do: project the stored (averaged) vector
                    embeds[f"{name}, applied to the painting vector"] = project(head, lab.vectors[:, None, :])
                info = {"protocol": proto, "fold": fold, "projection": name, "paintings": int(len(fit_on)),
                        "chosen_step": step, "train_seconds": round(time.time() - t0, 1), "curve": curve}
                rows.append({"kind": "training", **info})
                print(json.dumps({k: v for k, v in info.items() if k != "curve"}), flush=True)
        for name, vectors in embeds.items():
            for norm in args.normalisers:
                rows.append(score_fold(vectors, lab, lab.embedding, proto, fold, tr, va, test, split, seed, norm,
                                       name))
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--backbone", default="efficientnet_lite1")
    ap.add_argument("--pool", default="gap")
    ap.add_argument("--n-patches", type=int, default=8)
    ap.add_argument("--input-size", type=int, default=None, help="square patch side (default: the backbone's)")
    ap.add_argument("--extra", type=int, default=24, help="random patches per painting (training material)")
    ap.add_argument("--cache", type=Path, default=None, help="where the patch features are cached "
                    "(default $PAINTERID_CACHE/selfsup)")
    ap.add_argument("--protocols", nargs="+", default=None, choices=["random", "loso"],
                    help="default: both, or random only when the data set has no sources")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--normalisers", nargs="+", default=["none", "csls", "power,center,l2,csls"])
    ap.add_argument("--heads", nargs="+", default=["linear", "mlp"], choices=["linear", "mlp"])
    ap.add_argument("--variants", nargs="+", default=["inductive", "transductive"],
                    choices=["inductive", "transductive"])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--paintings-per-batch", type=int, default=64)
    ap.add_argument("--patches-per-painting", type=int, default=4)
    ap.add_argument("--more-patches-baseline", action="store_true",
                    help="also score the unprojected mean of grid + random patches (more patches, no training)")
    ap.add_argument("--on-painting-vectors", action="store_true",
                    help="also score L2(projection(stored painting vector)): the projection applied after the "
                    "patches are averaged, i.e. a vector step a normaliser chain could hold")
    args = ap.parse_args()

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    cfg = EmbeddingConfig(backbone=args.backbone, view="patches", pool=args.pool, n_patches=args.n_patches,
                          input_size=args.input_size)
    lab = labelled(args.data, cfg)
    if args.protocols is None:
        args.protocols = ["random", "loso"] if lab.sources else ["random"]
    t0 = time.time()
    grid, rand, cached = cached_patch_features(lab, cfg, args.extra, 0, args.cache or cache_dir() / "selfsup")
    diff = float(np.abs(l2(grid.mean(1)) - lab.vectors).max())
    print(json.dumps({"paintings": len(lab.artists), "grid": list(grid.shape), "random": list(rand.shape),
                      "cache": str(cached), "seconds": round(time.time() - t0, 1),
                      "max_abs_diff_vs_stored_vectors": diff}), flush=True)
    if diff > 1e-3:
        raise SystemExit(f"the mean of the grid patches differs from the stored vectors by {diff:g}")
    t0 = time.time()
    rows = run_folds(lab, grid, rand, args)
    scored = [r for r in rows if r.get("kind") != "training"]
    summary = summarise(scored)
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "paintings": len(lab.artists),
              "max_abs_diff_vs_stored_vectors": diff, "seconds": round(time.time() - t0, 1),
              "runs": rows, "summary": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("\n" + markdown(summary))
    print(json.dumps({"summary": {k: v.get("both.unseen.auc", v.get("random.unseen.auc", {}).get("mean"))
                                  for k, v in summary.items()}}))


if __name__ == "__main__":
    main()
