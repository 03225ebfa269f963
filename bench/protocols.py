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
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from painterid.data.pairs import balanced_pairs  # noqa: E402
from painterid.embedding.embedder import EmbeddingConfig  # noqa: E402
from painterid.embedding.patches import EXTRA_PATCHES, PatchSource  # noqa: E402

#: random crops per painting beside the grid patches for selfsup (--patch-extra)
PATCH_EXTRA = [EXTRA_PATCHES]
from painterid.embedding.pipeline import labelled  # noqa: E402
from painterid.evaluation.metrics import best_threshold  # noqa: E402
from painterid.evaluation.protocols import folds, metrics, test_pairs  # noqa: E402, F401 (one implementation)
from painterid.scoring.calibration import Calibrator  # noqa: E402
from painterid.scoring.fusion import choose_weights, fused_scores  # noqa: E402
from painterid.training import TrainOptions, fit  # noqa: E402
from painterid.training.fit import CALIBRATIONS, crossfit_logits  # noqa: E402


def calibrations(model, opts, lab_e, tr, va, artists, kinds: list[str]):
    """(kind, calibrator, threshold, info) of `model` for each calibration kind (training.fit.CALIBRATIONS)."""
    for kind in kinds:
        if kind == "validation":
            yield kind, model.calibrator, model.threshold, {"calibration_pairs": model.info["validation"]["pairs"]}
            continue
        idx = np.concatenate([tr, va])
        z, y, used = crossfit_logits(lab_e.vectors[idx], [artists[i] for i in idx], lab_e.embedding,
                                     replace(opts, normaliser=model.normaliser), opts.calibration_folds,
                                     PatchSource.of(lab_e, extra=PATCH_EXTRA[0]) if model.chain.needs_patches else None,
                                     [lab_e.hashes[i] for i in idx])
        recal = Calibrator.fit(z, y)  # what training.fit._calibrate does with calibration="crossfit"
        yield kind, model.calibrator.then(recal), model.threshold, {
            "calibration_folds": used, "calibration_pairs": int(len(y)), "recalibration": recal.to_dict()}


def archive_row(model, lab_e, va, pairs, within, patches, row: dict) -> dict:
    """`model` with its cohort replaced by every painting but the validation artists' (an unlabelled archive
    that holds the test paintings), scored on the same test pairs; `model` itself is left as it was."""
    import copy

    keep = np.setdiff1d(np.arange(len(lab_e.hashes)), va)
    hashes = [lab_e.hashes[i] for i in keep]
    archived = copy.copy(model)
    archived.set_cohort(lab_e.vectors[keep], {"source": "archive"},
                        patches=(lambda: patches(hashes)) if patches is not None else None)
    row.update(metrics(archived.score_pairs(lab_e.vectors, pairs), pairs, within, archived.threshold))
    print(json.dumps(row), flush=True)
    return row


def summarise(rows: list[dict]) -> dict:
    out: dict = {}
    def key_of(r: dict) -> tuple:
        return r["method"], r["normaliser"], r["embedding"], r.get("calibration", "validation")

    for key in dict.fromkeys(key_of(r) for r in rows):
        sel = [r for r in rows if key_of(r) == key]
        entry = {}
        for proto in ("random", "loso"):
            ps = [r for r in sel if r["protocol"] == proto]
            for m in ("unseen.auc", "unseen.accuracy", "within.unseen.auc", "within.unseen.accuracy", "unseen.brier",
                      "unseen.log_loss", "unseen.ece", "unseen.mean_p", "unseen.rate"):
                vals = np.array([np.nan if r.get(m) is None else r[m] for r in ps], dtype=float)
                if np.isfinite(vals).any():
                    entry[f"{proto}.{m}"] = {"mean": float(np.nanmean(vals)), "std": float(np.nanstd(vals)),
                                             "n": int(np.isfinite(vals).sum())}
        if "random.unseen.auc" in entry and "loso.unseen.auc" in entry:
            entry["both.unseen.auc"] = (entry["random.unseen.auc"]["mean"] + entry["loso.unseen.auc"]["mean"]) / 2
        out[f"{key[0]}/{key[1]}" + ("" if key[2] == "main" else f" [{key[2]}]")
            + ("" if key[3] == "validation" else f" ({key[3]} calibration)")] = entry
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
    ap.add_argument("--fuse", nargs="*", help="more embeddings BACKBONE:VIEW:POOL, fused with the main one by "
                    "a weighted sum of standardised scores (weights chosen on validation artists; "
                    "painterid.scoring.fusion)")
    ap.add_argument("--calibration", nargs="+", default=["validation"], choices=list(CALIBRATIONS),
                    help="also score each model's probabilities as calibrated by these (crossfit refits the "
                    "model on artist folds: several times slower)")
    ap.add_argument("--archive", action="store_true",
                    help="also score each model after replacing its cohort by the whole collection but the "
                    "validation artists' paintings (what `painterid cohort set MODEL ARCHIVE` does with an "
                    "unlabelled archive that holds the paintings to compare; a cosine model's selfsup step is "
                    "retrained on it)")
    ap.add_argument("--patch-extra", type=int, default=EXTRA_PATCHES,
                    help="random crops per painting beside its grid patches for selfsup (cohort set uses "
                    "painterid.embedding.patches.COHORT_EXTRA_PATCHES)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    PATCH_EXTRA[0] = args.patch_extra

    labs = [labelled(args.data, EmbeddingConfig(backbone=args.backbone, view=args.view, pool=args.pool))]
    names = ["main"]
    for spec in args.fuse or []:
        bb, view, pool = spec.split(":")
        labs.append(labelled(args.data, EmbeddingConfig(backbone=bb, view=view, pool=pool)))
        names.append(spec)
        assert labs[-1].hashes == labs[0].hashes, "the embeddings must cover the same paintings in the same order"
    lab = labs[0]
    rows = []
    for proto, fold, tr, va, test, split, seed in folds(lab, args.protocols, args.seeds):
        vp = balanced_pairs([lab.artists[i] for i in va], seed=seed)
        for method in args.methods:
            for norm in args.normalisers:
                t0 = time.time()
                opts = TrainOptions(method=method, normaliser=norm, seed=seed, epochs=args.epochs)
                val_scores, test_scores = [], []
                for name, lab_e in zip(names, labs):
                    patches = PatchSource.of(lab_e, extra=PATCH_EXTRA[0]) if "selfsup" in norm else None
                    model, history = fit(lab_e.vectors[tr], [lab.artists[i] for i in tr], lab_e.vectors[va],
                                         [lab.artists[i] for i in va], lab_e.embedding, opts, artists_split=split,
                                         train_hashes=[lab.hashes[i] for i in tr], patches=patches,
                                         val_hashes=[lab.hashes[i] for i in va])
                    pairs, within = test_pairs(proto, model, lab, test, seed)
                    ts = model.score_pairs(lab_e.vectors, pairs)
                    if args.archive:
                        rows.append(archive_row(model, lab_e, va, pairs, within, patches, {
                            "protocol": proto, "fold": fold, "method": method, "normaliser": norm,
                            "embedding": name + " (cohort: archive)", "chosen": model.normaliser}))
                    val_scores.append(model.scores(lab_e.vectors[va[vp[:, 0]]], lab_e.vectors[va[vp[:, 1]]]))
                    test_scores.append(ts)
                    for cal, calibrator, threshold, cal_info in calibrations(model, opts, lab_e, tr, va, lab.artists,
                                                                  args.calibration):
                        rows.append({"protocol": proto, "fold": fold, "method": method, "normaliser": norm,
                                     "embedding": name, "chosen": model.normaliser, "calibration": cal,
                                     "val_auc": model.info["validation"]["auc"],
                                     **cal_info, **metrics(ts, pairs, within, threshold, calibrator),
                                     "seconds": round(time.time() - t0, 1)})
                        print(json.dumps(rows[-1]), flush=True)
                if len(labs) >= 2:  # the rule `painterid train --backbone a,b` uses (painterid.scoring.fusion)
                    w, stats, _ = choose_weights(val_scores, vp[:, 2])
                    fused_val = fused_scores(val_scores, w, stats)
                    fused = fused_scores(test_scores, w, stats)
                    thr = best_threshold(fused_val, vp[:, 2], criterion="accuracy")
                    rows.append({"protocol": proto, "fold": fold, "method": method, "normaliser": norm,
                                 "embedding": "fused " + "+".join(names), "weights": [float(x) for x in w],
                                 **metrics(fused, pairs, within, thr)})
                    print(json.dumps(rows[-1]), flush=True)
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
    print("\n" + markdown(summary))


def markdown(summary: dict) -> str:
    """The RESULTS.md table of a summary: both protocols, unseen AUC / accuracy, and within one source."""
    def f(s, k):
        v = s.get(k)
        return "–" if not v else f"{v['mean']:.3f} ± {v['std']:.3f}"
    lines = ["| method / normaliser | random: unseen AUC | random: accuracy | random: AUC within source | "
             "LOSO: unseen AUC | LOSO: accuracy | mean AUC of both |", "|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        both = s.get("both.unseen.auc")
        label = name.replace("|", " \\| ")
        lines.append(f"| {label} | {f(s, 'random.unseen.auc')} | {f(s, 'random.unseen.accuracy')} | "
                     f"{f(s, 'random.within.unseen.auc')} | {f(s, 'loso.unseen.auc')} | {f(s, 'loso.unseen.accuracy')} "
                     f"| {'–' if both is None else format(both, '.3f')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
