"""Does `painterid calibrate` help on another collection? Refit on half of a source's artists, measure on the other.

    python bench/recalibrate.py --data ../shared/paintings --model painterid/default_model \
        --pools test test,val --seeds 0 1 2 3 4 --loso --out docs/results/recalibrate-real.json

For each source S of the data set (sources.csv) and each pool of the model's held-out artists (`test`: the
artists the model never saw; `test,val`: also its validation artists, which chose its threshold and calibration on
pairs pooled over every source), the pool's artists with paintings in S are cut into two halves (per seed; artists
dealt in decreasing painting count, each to the half with fewer same-artist pairs so far, ties by a seeded shuffle).
Balanced pairs are drawn within each half; the model is recalibrated on one half's pairs exactly as `painterid
calibrate` does (`painterid.tasks.calibrate.refit`: Platt scaling and the accuracy-best threshold) and measured on the
other half's, before and after; then the halves swap. A half with fewer than 10 pairs of a class is refused, as the
command refuses it. "in-sample" is the refit measured on the pairs it was fitted on (the best any refit can do).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine  # noqa: E402

from painterid.core.errors import DataError  # noqa: E402
from painterid.data.pairs import balanced_pairs  # noqa: E402
from painterid.embedding.pipeline import labelled  # noqa: E402
from painterid.evaluation.metrics import roc_auc  # noqa: E402
from painterid.scoring.loading import load_model
from painterid.tasks.calibrate import check_pairs, pair_metrics, refit  # noqa: E402

MEASURES = ("accuracy", "brier", "log_loss", "mean_p")


def halves(artists: list[str], seed: int) -> tuple[list[str], list[str]]:
    """Two groups of artists with about as many same-artist pairs each (see the module docstring)."""
    rng = np.random.default_rng(seed)
    names = sorted(set(artists))
    counts = {a: artists.count(a) for a in names}
    order = sorted(rng.permutation(len(names)), key=lambda i: -counts[names[i]])
    groups: tuple[list[str], list[str]] = ([], [])
    pos = [0, 0]
    for i in order:
        few = min(len(groups[0]), len(groups[1])) < 2  # first give each half two artists
        key = [(len(g), p) if few else (p, len(g)) for g, p in zip(groups, pos)]
        k = 0 if key[0] <= key[1] else 1
        groups[k].append(names[i])
        pos[k] += counts[names[i]] * (counts[names[i]] - 1) // 2
    return groups


def scored_pairs(model, vectors: np.ndarray, artists: list[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    pairs = balanced_pairs(artists, seed=seed)
    return model.scores(vectors[pairs[:, 0]], vectors[pairs[:, 1]]), pairs[:, 2].astype(int)


def one_fold(model, vectors, artists, cal_group, eval_group, seed) -> dict:
    """Recalibrate on the pairs of `cal_group`'s paintings, measure on those of `eval_group`'s."""
    try:
        return _fold(model, vectors, artists, cal_group, eval_group, seed)
    except DataError as exc:  # a half too small for a pair, or for a refit
        return {"refused": str(exc)}


def _fold(model, vectors, artists, cal_group, eval_group, seed) -> dict:
    idx = {g: [i for i, a in enumerate(artists) if a in grp] for g, grp in (("cal", cal_group),
                                                                                   ("eval", eval_group))}
    cal_s, cal_y = scored_pairs(model, vectors[idx["cal"]], [artists[i] for i in idx["cal"]], seed)
    ev_s, ev_y = scored_pairs(model, vectors[idx["eval"]], [artists[i] for i in idx["eval"]], seed)
    row = {"calibration_pairs": {"same": int(cal_y.sum()), "different": int((cal_y == 0).sum())},
           "evaluation_pairs": {"same": int(ev_y.sum()), "different": int((ev_y == 0).sum())}}
    try:
        check_pairs(cal_y, "calibration half")
        check_pairs(ev_y, "evaluation half", min_pairs=1)
    except DataError as exc:
        return {**row, "refused": str(exc)}
    new = copy.copy(model)
    rec = refit(new, cal_s, cal_y)
    own = copy.copy(model)
    refit(own, ev_s, ev_y)
    return {**row, "base_rate": float(ev_y.mean()), "auc": roc_auc(ev_s, ev_y),
            "threshold": {"before": model.threshold, "after": new.threshold},
            "before": pair_metrics(ev_s, ev_y, model.calibrator, model.threshold),
            "after": pair_metrics(ev_s, ev_y, new.calibrator, new.threshold),
            "in_sample": pair_metrics(ev_s, ev_y, own.calibrator, own.threshold),
            "calibration_half": {"auc": rec["auc"], "before": rec["before"], "after": rec["after"]}}


def summary(folds: list[dict]) -> dict:
    done = [f for f in folds if "refused" not in f]
    out = {"folds": len(folds), "refused": len(folds) - len(done)}
    if done:
        out["base_rate"] = float(np.mean([f["base_rate"] for f in done]))
        out["auc"] = float(np.mean([f["auc"] for f in done]))
        for when in ("before", "after", "in_sample"):
            out[when] = {m: [float(np.mean([f[when][m] for f in done])), float(np.std([f[when][m] for f in done]))]
                         for m in MEASURES}
        out["after_better"] = {m: int(sum((f["after"][m] > f["before"][m]) == (m == "accuracy") for f in done))
                               for m in ("accuracy", "brier", "log_loss")}
    return out


def measure(model, vectors: np.ndarray, arts: list[str], seeds: list[int]) -> dict:
    """Both directions of each seed's halves of these paintings' artists; the summary and every fold."""
    folds = []
    for seed in seeds:
        a, b = halves(arts, seed)
        for cal, ev in ((a, b), (b, a)):
            folds.append({"seed": seed, **one_fold(model, vectors, arts, cal, ev, seed)})
    return {"paintings": len(arts), "artists": len(set(arts)), **summary(folds), "per_fold": folds}


def shipped(model, lab, pools: list[str], seeds: list[int]) -> dict:
    """The shipped model on each source's paintings by its held-out artists (`pools`: parts of its artist split,
    e.g. "test" or "test,val"; "other": artists in none of its lists, as on a collection of one's own)."""
    out = {}
    listed = {a for part in model.artists.values() for a in part}
    sources = lab.sources or ["all"] * len(lab.artists)  # no sources.csv: one source
    for pool in pools:
        held = ({a for a in lab.artists if a and a not in listed} if pool == "other" else
                {a for part in pool.split(",") for a in model.artists.get(part, [])})
        out[pool] = {}
        for source in sorted(set(sources)):
            keep = [i for i, (a, s) in enumerate(zip(lab.artists, sources)) if s == source and a in held]
            out[pool][source] = measure(model, lab.vectors[keep], [lab.artists[i] for i in keep], seeds)
            report(f"default/{pool}", source, out[pool][source])
    return out


def loso(lab, seeds: list[int]) -> dict:
    """For each source, a model trained (siamese, wccn,l2,csls, validation calibration) on the other sources without
    any painting of this source's artists (bench/protocols.py's LOSO folds), measured on all of its paintings."""
    from protocols import folds

    from painterid.training.fit import TrainOptions, fit

    out = {}
    for _, source, tr, va, test, split, seed in folds(lab, ["loso"], [0]):
        opts = TrainOptions(method="siamese", normaliser="wccn,l2,csls", seed=seed, calibration="validation")
        model, _ = fit(lab.vectors[tr], [lab.artists[i] for i in tr], lab.vectors[va], [lab.artists[i] for i in va],
                       lab.embedding, opts, artists_split=split, train_hashes=[lab.hashes[i] for i in tr])
        out[source] = measure(model, lab.vectors[test], [lab.artists[i] for i in test], seeds)
        report("loso", source, out[source])
    return out


def report(setting: str, source: str, s: dict) -> None:
    line = f"{setting:16s} {source:15s} {s['paintings']:3d} paintings, {s['folds'] - s['refused']}/{s['folds']} folds"
    if "before" in s:
        line += "".join(f"  {m} {s['before'][m][0]:.3f}->{s['after'][m][0]:.3f}" for m in MEASURES)
    print(line, flush=True)


def strip_folds(tree):
    if isinstance(tree, dict):
        return {k: strip_folds(v) for k, v in tree.items() if k != "per_fold"}
    return tree


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=Path("painterid/default_model"))
    ap.add_argument("--pools", nargs="+", default=["test", "test,val"],
                    help="held-out artists of the model: test | val | test,val | other (in none of its lists)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--loso", action="store_true", help="also models trained leaving each source out")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message="balanced_pairs: only")  # small halves: fewer negatives, said so
    t0 = time.time()
    model = load_model(args.model)
    lab = labelled(args.data, model.embedding, base_dir=model.root)
    if args.loso and not lab.sources:
        raise SystemExit(f"{args.data}: --loso needs the source of every painting (sources.csv)")
    result = {"data": str(args.data), "model": str(args.model), "seeds": args.seeds, "machine": machine(),
              "default": shipped(model, lab, args.pools, args.seeds)}
    if args.loso:
        result["loso"] = loso(lab, args.seeds)
    result["seconds"] = round(time.time() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(strip_folds(result)))  # the summaries, one line
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
