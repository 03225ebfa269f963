"""Untrained cosine AUC of each offline backbone × view × pooling on a labelled data set, and images per second.

    python bench/backbones.py --data ../shared/paintings --out docs/results/backbones-real.json

ROC AUC over all same/different-artist pairs of the data set (no training: the embedding alone), also restricted to
pairs whose two images come from the same source, with and without CSLS (k = 10, cohort = the other paintings).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from painterid.data.datasets import discover  # noqa: E402
from painterid.embed.embedding import Embedder, EmbeddingConfig  # noqa: E402
from painterid.evaluation.metrics import roc_auc  # noqa: E402
from painterid.scoring.normalise import neighbourhood  # noqa: E402


def aucs(vectors: np.ndarray, artists: list[str], sources: list[str] | None) -> dict:
    n = len(artists)
    i, j = np.triu_indices(n, 1)
    art = np.asarray(artists, dtype=object)
    labels = (art[i] == art[j]).astype(int)
    sims = vectors @ vectors.T
    raw = sims[i, j]
    np.fill_diagonal(sims, -np.inf)  # a painting is not its own neighbour in the cohort
    r = neighbourhood(lambda rows: rows, sims, 10)  # rows of sims already are the scores against the cohort
    csls = 2 * raw - r[i] - r[j]
    out = {"auc": roc_auc(raw, labels), "auc_csls": roc_auc(csls, labels), "pairs": int(len(labels)),
           "positives": int(labels.sum())}
    if sources:
        src = np.asarray(sources, dtype=object)
        m = src[i] == src[j]
        out["auc_within_source"] = roc_auc(raw[m], labels[m])
        out["auc_csls_within_source"] = roc_auc(csls[m], labels[m])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "efficientnet_lite2", "mobilenetv2"])
    ap.add_argument("--views", nargs="+", default=["resize", "center", "corners", "patches"])
    ap.add_argument("--pools", nargs="+", default=["gap", "style"])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    ds = discover(args.data)
    rows = []
    for backbone, view, pool in itertools.product(args.backbones, args.views, args.pools):
        emb = Embedder(EmbeddingConfig(backbone=backbone, view=view, pool=pool), batch_size=args.batch_size)
        t0 = time.perf_counter()
        vecs, failures = emb.embed_files(ds.files)
        secs = time.perf_counter() - t0
        ok = ~np.isnan(vecs).any(1)
        res = aucs(vecs[ok], [a for a, k in zip(ds.artists, ok) if k],
                   [s for s, k in zip(ds.sources, ok) if k] if ds.sources else None)
        row = {"backbone": backbone, "view": view, "pool": pool, "dim": emb.dim,
               "images_per_s": round(len(ds.files) / secs, 2), "failures": len(failures), **res}
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"data": str(args.data), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
