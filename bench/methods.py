"""Measure every training method on a labelled data set over several artist-disjoint splits (seeds).

    python bench/methods.py --data ../shared/paintings --seeds 0 1 2 3 4 --out docs/results/methods-real.json
    python bench/methods.py --synthetic 24x8 --seeds 0 1 2 --out docs/results/methods-synthetic.json
    python bench/methods.py --data ../shared/paintings --methods finetune cnn --normalisers auto --epochs 8 ...

finetune and cnn train the network from the image files (slow on a CPU); the others train heads on embeddings.

Prints mean ± std of ROC AUC and accuracy on seen / unseen / mixed test pairs (and within one source, when the
data set says where images came from); writes all figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from painterid.embedding.embedder import EmbeddingConfig  # noqa: E402
from painterid.embedding.pipeline import labelled  # noqa: E402
from painterid.evaluation.run import evaluate_model  # noqa: E402
from painterid.training import IMAGE_METHODS, TrainOptions, train_from_images, train_model  # noqa: E402

METHODS = ("cosine", "siamese", "metric", "classifier")


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--synthetic", help="ARTISTSxPAINTINGS of generated data, e.g. 24x8")
    ap.add_argument("--backbone", default="mobilenetv2")
    ap.add_argument("--view", default="center")
    ap.add_argument("--pool", default="style")
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--normalisers", nargs="+", default=["auto"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--val", type=float, default=0.2)
    ap.add_argument("--test", type=float, default=0.3)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="painterid-bench-"))
    data = args.data
    if args.synthetic:
        from painterid.data.synthetic import make_synthetic_dataset

        n_art, per = (int(x) for x in args.synthetic.lower().split("x"))
        data = make_synthetic_dataset(tmp / "synthetic", n_artists=n_art, per_artist=per, seed=123)
    lab = labelled(data, EmbeddingConfig(backbone=args.backbone, view=args.view, pool=args.pool),
                   store_dir=args.store)
    rows = []
    for method in args.methods:
        for norm in args.normalisers:
            for seed in args.seeds:
                t0 = time.time()
                opts = TrainOptions(method=method, normaliser=norm, seed=seed, epochs=args.epochs)
                out = tmp / f"{method}-{norm}-{seed}"
                if method in IMAGE_METHODS:  # trains the network itself from the image files, then re-embeds
                    emb = None if method == "cnn" else EmbeddingConfig(backbone=args.backbone, view=args.view,
                                                                       pool=args.pool)
                    model, history, split = train_from_images(data, out, opts, embedding=emb, val=args.val,
                                                              test=args.test)
                    test_lab = labelled(data, model.embedding, store_dir=out.with_suffix(".store"),
                                        base_dir=model.root or out)
                else:
                    model, history, split = train_model(lab, out, opts, val=args.val, test=args.test)
                    test_lab = lab
                res = evaluate_model(model, test_lab, split="all", seed=seed, n_boot=0)
                row = {"method": method, "normaliser": norm, "chosen_normaliser": model.normaliser, "seed": seed,
                       "epochs": len(history), "seconds": round(time.time() - t0, 1)}
                for scope, groups in (("all", res["groups"]), ("within", res["within_source"])):
                    for g, r in groups.items():
                        if r:
                            row[f"{scope}.{g}.auc"] = r["auc"]
                            row[f"{scope}.{g}.accuracy"] = r["accuracy"]
                            row[f"{scope}.{g}.pairs"] = r["n_pairs"]
                rows.append(row)
                print(json.dumps(row), flush=True)

    summary = {}
    for method in args.methods:
        for norm in args.normalisers:
            sel = [r for r in rows if r["method"] == method and r["normaliser"] == norm]
            keys = sorted({k for r in sel for k in r if k.count(".") == 2 and not k.endswith("pairs")})
            summary[f"{method}/{norm}"] = {
                k: {"mean": float(np.nanmean(vals)), "std": float(np.nanstd(vals)), "n": int(np.isfinite(vals).sum())}
                for k in keys if np.isfinite(vals := np.array([_num(r.get(k)) for r in sel])).any()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": rows,
                                    "summary": summary}, indent=2) + "\n")
    print(f"\n{'method':24s} {'unseen AUC':>14s} {'unseen acc':>14s} {'seen AUC':>14s} {'mixed AUC':>14s}")
    for name, s in summary.items():
        def f(k):
            v = s.get(k)
            return f"{v['mean']:.3f}±{v['std']:.3f}" if v else "–"
        print(f"{name:24s} {f('all.unseen.auc'):>14s} {f('all.unseen.accuracy'):>14s} {f('all.seen.auc'):>14s} "
              f"{f('all.mixed.auc'):>14s}  within-source unseen AUC {f('within.unseen.auc')}")


if __name__ == "__main__":
    main()
