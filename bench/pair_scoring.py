"""PairModel.score_pairs over a store-sized matrix: pairs per second and memory for a 22-million-pair file.

    python bench/pair_scoring.py                     # 20k vectors of the default dim, 22M pairs, cosine + siamese

The pairs are drawn block by block (1M pairs a block, as `painterid submit` reads a pair file), so the pair
list itself never sits in memory; the scores of a block are reduced and dropped. Memory: resident set size
after every block (flat = it does not grow with the number of pairs) and the process's peak.

cosine (and every head with a dot-product space: metric, classifier): all 22M pairs, against the target of
1M pairs/s and against the code before this bench (einsum over gathered rows, measured on a sample: at 1M
pairs a chunk it held two 4.5 GB copies). siamese (the default model): the MLP needs both rows of every pair,
so it is compute bound; measured on `--siamese-pairs` pairs against its limit, the bare head forward on
pre-gathered rows of the same block size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import current_rss_mb, machine, peak_rss_mb  # noqa: E402
from painterid.scoring.loading import load_model

BLOCK = 1_000_000


def run(model, vectors: np.ndarray, n_pairs: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    n = len(vectors)
    prepared = model.prepare(vectors)
    rss, checksum = [], 0.0
    t = time.perf_counter()
    for s in range(0, n_pairs, BLOCK):
        pairs = rng.integers(0, n, size=(min(BLOCK, n_pairs - s), 2))
        scores = model.score_pairs(vectors, pairs, prepared=prepared)
        checksum += float(scores.sum(dtype=np.float64))
        rss.append(current_rss_mb())
    dt = time.perf_counter() - t
    return {"pairs": n_pairs, "seconds": round(dt, 2), "pairs_per_s": round(n_pairs / dt),
            "rss_mb_first_block": round(rss[0]), "rss_mb_last_block": round(rss[-1]),
            "rss_mb_max_over_blocks": round(max(rss)), "checksum": checksum}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vectors", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=None, help="default: the default model's embedding dim")
    ap.add_argument("--pairs", type=int, default=22_000_000)
    ap.add_argument("--siamese-pairs", type=int, default=1_000_000)
    ap.add_argument("--old-sample", type=int, default=200_000, help="pairs for the old einsum path")
    ap.add_argument("--model", type=Path, default=ROOT / "painterid" / "default_model")
    args = ap.parse_args()

    import torch

    from painterid.scoring import PairModel
    from painterid.scoring.heads import CosineScorer, SiameseHead

    model = load_model(args.model)
    dim = args.dim or int(model.embedding["dim"])
    # the siamese path: the model's own head when it is one, else an untrained head of its width (speed only)
    siamese = model if model.method == "siamese" and dim == int(model.embedding["dim"]) else \
        PairModel("siamese", {"dim": dim}, SiameseHead(dim))
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.vectors, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = PairModel("cosine", {"dim": dim}, CosineScorer())
    base_rss, base_peak = current_rss_mb(), peak_rss_mb()
    result = {"bench": "pair_scoring", "vectors": args.vectors, "dim": dim, "block": BLOCK,
              "rss_mb_before": round(base_rss), "machine": machine()}

    result["cosine"] = run(cosine, vectors, args.pairs, seed=1)
    result["cosine"]["ratio_to_target_1M"] = round(result["cosine"]["pairs_per_s"] / 1e6, 3)

    result["siamese"] = run(siamese, vectors, args.siamese_pairs, seed=2)
    result["peak_rss_mb"] = round(peak_rss_mb())  # before the old path below, which gathers copies
    sample = rng.integers(0, args.vectors, size=(args.old_sample, 2))
    from painterid.scoring.indexed import rows_per_block

    step = rows_per_block(dim)  # the block score_pairs gathers
    a = torch.from_numpy(vectors[sample[:step, 0]])
    b = torch.from_numpy(vectors[sample[:step, 1]])
    reps = max(1, 200_000 // step)
    with torch.inference_mode():
        siamese.head(a, b)
        t = time.perf_counter()
        for _ in range(reps):
            siamese.head(a, b)
        limit = reps * step / (time.perf_counter() - t)
        t = time.perf_counter()  # the head's forward before: concatenate [|a-b|, a*b], then the first layer
        for _ in range(reps):
            siamese.head.net(torch.cat([(a - b).abs(), a * b], dim=-1))
        concat = reps * step / (time.perf_counter() - t)
    result["siamese"]["old_concat_head_forward_pairs_per_s"] = round(concat)
    result["siamese"]["limit_head_forward_pairs_per_s"] = round(limit)
    result["siamese"]["ratio_to_limit"] = round(result["siamese"]["pairs_per_s"] / limit, 3)
    result["siamese"]["extrapolated_22M_seconds"] = round(22e6 / result["siamese"]["pairs_per_s"])
    result["peak_rss_mb_before_scoring"] = round(base_peak)

    # the code before: gather both rows of every pair, then einsum
    space = cosine.space(vectors)
    t = time.perf_counter()
    old = np.einsum("nd,nd->n", space[sample[:, 0]], space[sample[:, 1]])
    old_rate = args.old_sample / (time.perf_counter() - t)
    assert np.allclose(old, cosine.score_pairs(vectors, sample), atol=1e-5)
    result["cosine"]["old_einsum_pairs_per_s"] = round(old_rate)
    result["cosine"]["speedup_vs_old"] = round(result["cosine"]["pairs_per_s"] / old_rate, 2)
    print(json.dumps(result))
    c, s = result["cosine"], result["siamese"]
    print(f"cosine: {c['pairs_per_s'] / 1e6:.2f}M pairs/s over {c['pairs'] / 1e6:.0f}M pairs "
          f"(ratio to 1M/s target {c['ratio_to_target_1M']:.2f}; {c['speedup_vs_old']:.1f}x the old einsum path); "
          f"RSS {c['rss_mb_first_block']} -> {c['rss_mb_last_block']} MiB", file=sys.stderr)
    print(f"siamese: {s['pairs_per_s'] / 1e3:.1f}k pairs/s (ratio to bare head forward {s['ratio_to_limit']:.2f}); "
          f"RSS {s['rss_mb_first_block']} -> {s['rss_mb_last_block']} MiB", file=sys.stderr)


if __name__ == "__main__":
    main()
