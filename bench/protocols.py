"""Unseen-artist accuracy under two protocols, to choose methods and normaliser chains that carry over.

    python bench/protocols.py --data ../shared/paintings --methods cosine siamese \
        --normalisers none csls center,l2,csls power,center,l2,csls --out docs/results/protocols-real.json

- `random`: 5 random artist-disjoint splits (seeds 0-4; 50% training, 20% validation, 30% test artists, the
  protocol of bench/methods.py), unseen-artist pairs (balanced) and those within one source;
- `loso` (leave one source out): for each source of the data set (sources.csv), test on all its paintings
  (balanced pairs, every test artist unseen) and train / choose on the other sources, without any painting of a
  test artist; 25% of the remaining artists are the validation artists (threshold, calibration, early stopping,
  `auto` choices).

The cohort of every model is its training paintings (what `painterid train` uses by default). AUC and accuracy
(at the threshold chosen on validation artists) come from sklearn via painterid.evaluation.metrics. Several
embeddings (`--embeddings B:V:P ...`, each already cached or embedded here) are fused by a weighted sum of
their normalised scores, weights chosen on the validation artists (`--fusion`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from painterid.datasets import split_paintings  # noqa: E402
from painterid.embedding import EmbeddingConfig  # noqa: E402
from painterid.evaluation.metrics import roc_auc, threshold_metrics  # noqa: E402
from painterid.evaluation.pairs import balanced_pairs  # noqa: E402
from painterid.evaluation.run import evaluate_model  # noqa: E402
from painterid.pipeline import labelled  # noqa: E402
from painterid.training import TrainOptions, fit  # noqa: E402


def folds(lab, protocols: list[str], seeds: list[int]):
    """(protocol, fold name, train indices, val indices, test indices or None, split artists) of each fold."""
    artists = list(lab.artists)
    if "random" in protocols:
        for seed in seeds:
            sp = split_paintings(artists, val=0.2, test=0.3, holdout=0.25, seed=seed)
            yield "random", f"seed{seed}", sp["indices"]["train"], sp["indices"]["val"], None, sp["artists"], seed
    if "loso" in protocols:
        if not lab.sources:
            raise SystemExit("loso needs the source of every painting (sources.csv)")
        for src in sorted(set(lab.sources)):
            test = np.array([i for i, s in enumerate(lab.sources) if s == src])
            test_artists = {artists[i] for i in test}
            pool = np.array([i for i, (s, a) in enumerate(zip(lab.sources, artists))
                             if s != src and a not in test_artists])
            sp = split_paintings([artists[i] for i in pool], val=0.25, test=0.0, holdout=0.0, seed=0)
            tr, va = pool[sp["indices"]["train"]], pool[sp["indices"]["val"]]
            split = {"train": sp["artists"]["train"], "val": sp["artists"]["val"], "test": sorted(test_artists)}
            yield "loso", src, tr, va, test, split, 0


def loso_metrics(model, lab, test: np.ndarray, seed: int) -> dict:
    pairs = balanced_pairs([lab.artists[i] for i in test], seed=seed)
    i, j, y = test[pairs[:, 0]], test[pairs[:, 1]], pairs[:, 2]
    s = model.scores(lab.vectors[i], lab.vectors[j])
    return {"unseen.auc": roc_auc(s, y), "unseen.accuracy": threshold_metrics(s, y, model.threshold)["accuracy"],
            "unseen.pairs": int(len(y)), "within.unseen.auc": roc_auc(s, y),
            "within.unseen.accuracy": threshold_metrics(s, y, model.threshold)["accuracy"]}


def random_metrics(model, lab, seed: int) -> dict:
    res = evaluate_model(model, lab, split="unseen", seed=seed, n_boot=0)
    g, w = res["groups"]["unseen"], (res.get("within_source") or {}).get("unseen") or {}
    return {"unseen.auc": g["auc"], "unseen.accuracy": g["accuracy"], "unseen.pairs": g["n_pairs"],
            "within.unseen.auc": w.get("auc"), "within.unseen.accuracy": w.get("accuracy")}


def summarise(rows: list[dict]) -> dict:
    out: dict = {}
    for key in dict.fromkeys((r["method"], r["normaliser"]) for r in rows):
        sel = [r for r in rows if (r["method"], r["normaliser"]) == key]
        entry = {}
        for proto in ("random", "loso"):
            ps = [r for r in sel if r["protocol"] == proto]
            for m in ("unseen.auc", "unseen.accuracy", "within.unseen.auc", "within.unseen.accuracy"):
                vals = np.array([np.nan if r.get(m) is None else r[m] for r in ps], dtype=float)
                if np.isfinite(vals).any():
                    entry[f"{proto}.{m}"] = {"mean": float(np.nanmean(vals)), "std": float(np.nanstd(vals)),
                                             "n": int(np.isfinite(vals).sum())}
        if "random.unseen.auc" in entry and "loso.unseen.auc" in entry:
            entry["both.unseen.auc"] = (entry["random.unseen.auc"]["mean"] + entry["loso.unseen.auc"]["mean"]) / 2
        out[f"{key[0]}/{key[1]}"] = entry
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--backbone", default="efficientnet_lite1")
    ap.add_argument("--view", default="patches")
    ap.add_argument("--pool", default="gap")
    ap.add_argument("--methods", nargs="+", default=["cosine", "siamese"])
    ap.add_argument("--normalisers", nargs="+", default=["none", "csls"],
                    help="normaliser chains (painterid.scoring.normalise), 'auto', or several joined by '|'")
    ap.add_argument("--protocols", nargs="+", default=["random", "loso"], choices=["random", "loso"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    lab = labelled(args.data, EmbeddingConfig(backbone=args.backbone, view=args.view, pool=args.pool))
    rows = []
    for proto, fold, tr, va, test, split, seed in folds(lab, args.protocols, args.seeds):
        for method in args.methods:
            for norm in args.normalisers:
                t0 = time.time()
                opts = TrainOptions(method=method, normaliser=norm, seed=seed, epochs=args.epochs)
                model, history = fit(lab.vectors[tr], [lab.artists[i] for i in tr], lab.vectors[va],
                                     [lab.artists[i] for i in va], lab.embedding, opts, artists_split=split,
                                     train_hashes=[lab.hashes[i] for i in tr])
                m = loso_metrics(model, lab, test, seed) if proto == "loso" else random_metrics(model, lab, seed)
                row = {"protocol": proto, "fold": fold, "method": method, "normaliser": norm,
                       "chosen": model.normaliser, "val_auc": model.info["validation"]["auc"], **m,
                       "seconds": round(time.time() - t0, 1)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary = summarise(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": rows,
                                    "summary": summary}, indent=1) + "\n")
    print(f"\n{'method / normaliser':40s} {'random AUC':>13s} {'random acc':>13s} {'LOSO AUC':>13s} "
          f"{'LOSO acc':>13s} {'mean AUC':>8s}")
    for name, s in summary.items():
        def f(k):
            v = s.get(k)
            return f"{v['mean']:.3f}±{v['std']:.3f}" if v else "–"
        both = s.get("both.unseen.auc")
        print(f"{name:40s} {f('random.unseen.auc'):>13s} {f('random.unseen.accuracy'):>13s} "
              f"{f('loso.unseen.auc'):>13s} {f('loso.unseen.accuracy'):>13s} "
              f"{'–' if both is None else format(both, '.3f'):>8s}")


if __name__ == "__main__":
    main()
