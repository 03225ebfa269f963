"""identify on real paintings: top-1 / top-5 accuracy, open-set rejection, and whether its probability is right.

    python bench/identify.py --data ../shared/paintings --out docs/results/identify-real.json

- `loo`: the index holds every painting; each painting is searched against prototypes built without it (what
  `painterid index build` fits its calibration on). Artists with one painting are then absent: open-set queries.
- `loso` (leave one source out): the index holds two sources (its calibration fitted on them, leave-one-out);
  every painting of the third source is a query. Its artist is in the index or not (open set). Reported: top-1 /
  top-5 of queries whose artist is in the index, rejection AUC (top score, indexed vs absent artists), the share
  of queries rejected at the index's threshold, and the calibration on these new queries (mean predicted p vs
  the observed rate that the top candidate is the painter; Brier score).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from painterid.core.errors import DataError  # noqa: E402
from painterid.embedding.embedder import EmbeddingConfig  # noqa: E402
from painterid.embedding.pipeline import labelled  # noqa: E402
from painterid.evaluation.metrics import roc_auc  # noqa: E402
from painterid.scoring.calibration import Calibrator  # noqa: E402
from painterid.tasks.identify import open_set_calibration  # noqa: E402
from painterid.tasks.index import ArtistIndex  # noqa: E402


def _l2(x):
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def loso(x, artists, sources) -> dict:
    out = {}
    for src in sorted(set(sources)):
        idx = [i for i, s in enumerate(sources) if s != src]
        q = [i for i, s in enumerate(sources) if s == src]
        try:
            cal = open_set_calibration(x[idx], [artists[i] for i in idx])
        except DataError as e:  # a backwards fit is refused, as `painterid index build` refuses it
            cal = {"refused": str(e)}
        index = ArtistIndex.build(x[idx], [str(i) for i in idx], [artists[i] for i in idx], {"bench": 1})
        res = index.search_artists(x[q], 5)
        indexed = set(artists[i] for i in idx)
        known = np.array([artists[i] in indexed for i in q])
        top = np.array([r[0][1] for r in res])
        hit1 = np.array([r[0][0] == artists[i] for r, i in zip(res, q)])
        hit5 = np.array([any(a == artists[i] for a, _ in r) for r, i in zip(res, q)])
        out[src] = {"queries": len(q), "known": int(known.sum()), "top1": float(hit1[known].mean()),
                    "top5": float(hit5[known].mean()), "rejection_auc": roc_auc(top, known.astype(int)),
                    "rate_top_is_painter": float(hit1.mean())}
        if "refused" in cal:
            out[src]["calibration_refused"] = cal["refused"]
            continue
        p = Calibrator(**cal["calibration"])(top)
        out[src].update({"rejected_known": float((top[known] < cal["threshold"]).mean()),
                         "rejected_unknown": float((top[~known] < cal["threshold"]).mean()),
                         "mean_p": float(p.mean()), "brier": float(np.mean((p - hit1) ** 2)),
                         "p_vs_correct_auc": roc_auc(p, hit1.astype(int)),
                         "calibration_slope": cal["calibration"]["slope"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--pool", default=None, help="pooling of the default backbone (default: its own)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    lab = labelled(args.data, EmbeddingConfig(pool=args.pool))
    x = _l2(lab.vectors)
    res = {"loo": open_set_calibration(x, list(lab.artists)), "loso": loso(x, list(lab.artists), lab.sources)}
    keys = ("top1", "top5", "rejection_auc", "rejected_known", "rejected_unknown", "mean_p", "rate_top_is_painter",
            "brier")
    res["loso_mean"] = {k: float(np.mean(vals)) for k in keys
                        if (vals := [v[k] for v in res["loso"].values() if k in v])}
    res["loso_calibrations_refused"] = sorted(k for k, v in res["loso"].items() if "calibration_refused" in v)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
