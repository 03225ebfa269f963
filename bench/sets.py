"""Set evidence on held-out artists, both protocols: which set aggregate `verify` uses by default.

    python bench/sets.py --data ../shared/paintings --out docs/results/sets-real.json

The folds are bench/protocols.py's (5 random artist-disjoint splits, and leave one source out); in each, a model
of the shipped default's settings (cosine + CSLS over the default embedding; its cohort is the fold's training
paintings) is fitted on the training artists, and the set protocol (painterid.evaluation.sets) is scored on the
fold's test artists only: each test painting against K others of its artist and against K paintings of another
test artist. Trials of all folds of a protocol are pooled; AUC is also averaged per fold. The likelihood ratio is
calibrated out of fold: by questioned artist (5 artist folds) for random splits, by source for leave one source out.
Patch-pool reads the grid patches of the `patches` view (PatchSource, extra=0), computed once and cached.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from protocols import folds  # noqa: E402

from painterid.core.defaults import DEFAULT_CHAIN, DEFAULT_METHOD  # noqa: E402
from painterid.embedding.patches import PatchSource  # noqa: E402
from painterid.embedding.pipeline import labelled  # noqa: E402
from painterid.evaluation.sets import TrialScorer, k_metrics, pooled_scores, set_trials  # noqa: E402
from painterid.scoring.loading import load_model  # noqa: E402
from painterid.scoring.metrics import roc_auc  # noqa: E402
from painterid.scoring.sets import SET_AGGREGATES  # noqa: E402
from painterid.training import TrainOptions, fit  # noqa: E402


def fold_scores(lab, patches, protocols, seeds, ks, aggregates):
    """{(protocol, K): [(scores, labels, groups, fold)]} over every fold."""
    out: dict = {}
    for proto, fold, tr, va, test, split, seed in folds(lab, protocols, seeds):
        opts = TrainOptions(method=DEFAULT_METHOD, normaliser=DEFAULT_CHAIN, seed=seed)
        model, _ = fit(lab.vectors[tr], [lab.artists[i] for i in tr], lab.vectors[va], [lab.artists[i] for i in va],
                       lab.embedding, opts, artists_split=split, train_hashes=[lab.hashes[i] for i in tr])
        held = set(split["test"])
        idx = [i for i, a in enumerate(lab.artists) if a in held] if test is None else list(test)
        scorer = TrialScorer(model, lab.vectors, patches=patches)
        for k in ks:
            trials = set_trials(lab.artists, idx, k, seed)
            y = np.array([t[2] for t in trials], dtype=int)
            if len(trials) < 4 or len(np.unique(y)) < 2:
                continue
            aggs = [a for a in aggregates if SET_AGGREGATES.get(a).min_k <= k]
            s = scorer.scores(trials, aggs)
            out.setdefault((proto, k), []).append((s, y, [t[3] for t in trials], fold))
            print(json.dumps({"protocol": proto, "fold": fold, "K": k, "trials": len(y),
                              "auc": {a: round(float(roc_auc(v, y)), 3) for a, v in s.items()}}), flush=True)
    return out


def summarise(per: dict) -> dict:
    """Per (protocol, K): pooled metrics (k_metrics) and the mean of per-fold AUCs."""
    out: dict = {}
    for (proto, k), rows in sorted(per.items()):
        s, y, g = pooled_scores([(r[0], r[1], r[2]) for r in rows])
        entry = k_metrics(s, y, g)
        if proto == "loso":  # the LR calibrated on the other sources' trials only
            by_source = [r[3] for r in rows for _ in r[1]]
            entry["forensic_by_source"] = k_metrics(s, y, by_source)["forensic"]
        entry["folds"] = [r[3] for r in rows]
        entry["fold_auc"] = {a: float(np.mean([roc_auc(r[0][a], r[1]) for r in rows])) for a in s}
        out.setdefault(proto, {})[str(k)] = entry
    return out


def markdown(summary: dict, aggregates) -> str:
    lines = []
    for proto, by_k in summary.items():
        lines += [f"### {proto}: set AUC on held-out artists (pooled over folds; in brackets the mean per fold)", "",
                  "| K | trials | artists | one ref | " + " | ".join(aggregates) + " |",
                  "|---|---|---|---|" + "---|" * len(aggregates)]
        for k, e in by_k.items():
            def cell(a):
                return "–" if a not in e["auc"] else f"{e['auc'][a]:.3f} ({e['fold_auc'][a]:.3f})"
            lines.append(f"| {k} | {e['trials']} | {e['artists']} | {cell('one')} | "
                         + " | ".join(cell(a) for a in aggregates) + " |")
        for key, how in (("forensic", "calibrated out of fold by questioned artist"),
                         ("forensic_by_source", "calibrated on the other sources only")):
            if not any(key in e for e in by_k.values()):
                continue
            lines += ["", f"### {proto}: log10 LR {how} (Cllr / min Cllr / ECE of p at prior 0.5)", "",
                      "| K | " + " | ".join(aggregates) + " |", "|---|" + "---|" * len(aggregates)]
            for k, e in by_k.items():
                f = e.get(key, {})
                lines.append(f"| {k} | " + " | ".join("–" if a not in f else f"{f[a]['cllr']:.3f} / "
                                                     f"{f[a]['min_cllr']:.3f} / {f[a]['ece']:.3f}"
                                                     for a in aggregates) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=Path(__file__).resolve().parent.parent / "painterid/default_model",
                    help="whose embedding to use (the folds refit its method and chain)")
    ap.add_argument("--protocols", nargs="+", default=["random", "loso"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--ks", nargs="+", type=int, default=[1, 2, 3, 5, 10])
    ap.add_argument("--aggregates", nargs="+", default=list(SET_AGGREGATES.names()))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    model = load_model(args.model)
    lab = labelled(args.data, model.embedding, base_dir=model.root)
    patches = None
    if "patch-pool" in args.aggregates:
        patches = PatchSource.of(lab, extra=0, base_dir=model.root)(lab.hashes)
    per = fold_scores(lab, patches, args.protocols, args.seeds, args.ks, args.aggregates)
    summary = summarise(per)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "summary": summary},
                                   indent=1) + "\n")
    print(markdown(summary, args.aggregates))


if __name__ == "__main__":
    main()
