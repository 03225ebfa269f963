"""`painterid embed` in one process against `torchrun --nproc_per_node N` on the same machine: wall time, same store.

    python bench/embed_distributed.py                # 256 synthetic 512 px paintings, default backbone, N = 2

Both are timed end to end as a user runs them (process start-up, model creation, hashing, decoding, forward,
writing the store). One process uses torch's intra-op threads on every core; each torchrun rank gets
`nproc / N` threads (OMP_NUM_THREADS). Ratio = torchrun wall time / single-process wall time (below 1: the
ranks pay). The two stores are checked to hold the same paintings with the same vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine  # noqa: E402


def timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {run.stderr[-2000:]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--backbone", default=None)
    args = ap.parse_args()

    from painterid.data.synthetic import make_synthetic_dataset
    from painterid.store.feature_store import FeatureStore

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_synthetic_dataset(tmp / "data", n_artists=-(-args.n // 8), per_artist=8, size=args.size, seed=5)
        extra = ["--backbone", args.backbone] if args.backbone else []
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "OMP_NUM_THREADS")}
        env["PAINTERID_CACHE"] = str(tmp / "cache")
        single = timed([sys.executable, "-m", "painterid", "embed", str(data), "--out", str(tmp / "one"), *extra], env)
        threads = max(1, (os.cpu_count() or 1) // args.nproc)
        ranks = timed([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
                       "-m", "painterid", "embed", str(data), "--out", str(tmp / "ranks"), *extra],
                      dict(env, OMP_NUM_THREADS=str(threads)))
        one, many = FeatureStore.open(tmp / "one"), FeatureStore.open(tmp / "ranks")
        assert sorted(one.paths) == sorted(many.paths) and len(set(many.paths)) == len(many.paths)
        diff = float(np.abs(one.vectors[one.select(many.paths)] - many.vectors).max())
    result = {"bench": "embed_distributed", "images": args.n, "size": args.size, "nproc": args.nproc,
              "threads_per_rank": threads, "single_process_s": round(single, 2), "torchrun_s": round(ranks, 2),
              "images_per_s": {"single": round(args.n / single, 2), "torchrun": round(args.n / ranks, 2)},
              "ratio_torchrun_to_single": round(ranks / single, 3), "max_abs_vector_diff": diff,
              "machine": machine()}
    print(json.dumps(result))
    print(f"embed {args.n} images: one process {single:.1f}s, torchrun x{args.nproc} {ranks:.1f}s "
          f"(ratio {ranks / single:.2f}); same store (max |diff| {diff:.1e})", file=sys.stderr)


if __name__ == "__main__":
    main()
