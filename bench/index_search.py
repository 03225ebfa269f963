"""ArtistIndex search latency at 100k and 1M synthetic paintings: exact (flat) against HNSW and IVF, recall@10.

    python bench/index_search.py                     # dim 256, 100k and 1M, 2.5 minutes on 2 cores

Vectors are dim 256 (not the default 1120) to keep 1M of them at 1 GB; they are clustered like paintings
(one Gaussian cloud per artist, noise 1.5x the spread of the centres, 100 paintings per artist,
L2-normalised), because uniform random vectors are the worst case for approximate search and nothing like
real embeddings. Queries are more paintings of
the same artists. Every index is built by `ArtistIndex.build` (the code `painterid index build` runs), with
its default search parameters. Latency: one query at a time (median over `--single` queries) and a batch of
`--queries` queries (time per query). Recall@10: the share of the exact top 10 an approximate index returns.
HNSW at 1M is skipped unless --hnsw-1m: its build took 288 s on 2 cores (the whole bench then 7.7 minutes
instead of 2.5).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine, peak_rss_mb  # noqa: E402


def clustered(n: int, dim: int, per_artist: int, rng: np.random.Generator, spread: float,
              centres: np.ndarray | None = None):
    if centres is None:
        centres = rng.standard_normal((-(-n // per_artist), dim), dtype=np.float32)
    labels = rng.integers(0, len(centres), n)
    x = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 100_000):  # in blocks: no [n, dim] float64 temporaries
        lab = labels[s:s + 100_000]
        block = centres[lab] + spread * rng.standard_normal((len(lab), dim), dtype=np.float32)
        x[s:s + len(lab)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return x, labels, centres


def latency(index, queries: np.ndarray, single: int, k: int = 10) -> dict:
    one = []
    for q in queries[:single]:
        t = time.perf_counter()
        index.search_paintings(q[None], k)
        one.append(time.perf_counter() - t)
    t = time.perf_counter()
    _, rows = index.search_paintings(queries, k)
    batch = (time.perf_counter() - t) / len(queries)
    return {"single_query_ms_median": round(1e3 * statistics.median(one), 3),
            "batch_ms_per_query": round(1e3 * batch, 4)}, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--per-artist", type=int, default=100)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--spread", type=float, default=1.5, help="noise around each artist centre (centre ~ N(0, 1))")
    ap.add_argument("--single", type=int, default=200)
    ap.add_argument("--hnsw-1m", action="store_true", help="also build HNSW at sizes above 200k")
    args = ap.parse_args()

    from painterid.tasks.index import ArtistIndex, recall_at_k

    t_start = time.perf_counter()
    result = {"bench": "index_search", "dim": args.dim, "per_artist": args.per_artist, "spread": args.spread, "k": 10,
              "queries": args.queries, "machine": machine(), "sizes": {}}
    for n in args.sizes:
        rng = np.random.default_rng(n)
        x, labels, centres = clustered(n, args.dim, args.per_artist, rng, args.spread)
        queries, _, _ = clustered(args.queries, args.dim, args.per_artist, rng, args.spread,
                                  centres=centres)
        files = [str(i) for i in range(n)]
        artists = [f"a{int(a)}" for a in labels]
        out: dict = {}
        exact_rows = None
        kinds = ["flat", "ivf", "hnsw"]
        if n > 200_000 and not args.hnsw_1m:
            kinds.remove("hnsw")
            out["hnsw"] = {"skipped": "pass --hnsw-1m to build it"}
        for kind in kinds:
            t = time.perf_counter()
            index = ArtistIndex.build(x, files, artists, {"bench": True}, kind=kind)
            build = time.perf_counter() - t
            lat, rows = latency(index, queries, args.single)
            rec = {"build_s": round(build, 2), **lat, "search_params": index.config["search_params"]}
            if kind == "flat":
                exact_rows = rows
            else:
                rec["recall@10"] = round(recall_at_k(rows, exact_rows), 4)
            out[kind] = rec
            print(f"n={n} {kind}: {json.dumps(rec)}", file=sys.stderr, flush=True)
            del index
            gc.collect()
        flat = out["flat"]["single_query_ms_median"]
        for kind in ("ivf", "hnsw"):
            if kind in out and "single_query_ms_median" in out[kind]:
                out[kind]["speedup_single_vs_flat"] = round(flat / out[kind]["single_query_ms_median"], 1)
        result["sizes"][str(n)] = out
        del x, queries, files, artists
        gc.collect()
    result["total_s"] = round(time.perf_counter() - t_start, 1)
    result["peak_rss_mb"] = round(peak_rss_mb())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
