"""Embedder throughput over image files against the bare forward pass on preloaded tensors (the limit).

    python bench/embed_throughput.py                    # 64 synthetic 512 px JPEG paintings, default backbone

Files: `Embedder.embed_files` end to end with 0, 1 and 2 DataLoader workers (0: the main process decodes,
resizes and crops between forward passes; otherwise the workers do, including their start-up). Limit:
`Embedder.embed_views` on the same images already decoded and transformed into tensors, with the same batch
size. Both are timed in interleaved rounds (the median is reported) so that load from other jobs on the
machine hits them alike. Ratio = files / limit.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64, help="synthetic paintings")
    ap.add_argument("--size", type=int, default=512, help="longer side of each painting (px)")
    ap.add_argument("--backbone", default=None, help="default: the shipped backbone")
    ap.add_argument("--view", default=None, help="default: the shipped view")
    ap.add_argument("--pool", default=None, help="default: the shipped pooling")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", type=Path, default=None, help="reuse/generate the paintings here")
    args = ap.parse_args()

    import torch

    from painterid.data.synthetic import make_synthetic_dataset
    from painterid.embedding.embedder import Embedder, EmbeddingConfig, default_backbone
    from painterid.embedding.images import load_image

    tmp = tempfile.TemporaryDirectory()
    root = args.data or Path(tmp.name) / "paintings"
    if not (root / "train").is_dir():
        per = 8
        make_synthetic_dataset(root, n_artists=-(-args.n // per), per_artist=per, size=args.size, seed=1)
    files = sorted((root / "train").glob("*.jpg"))[: args.n]
    from painterid.core.defaults import DEFAULT_VIEW

    config = EmbeddingConfig(backbone=args.backbone or default_backbone(), view=args.view or DEFAULT_VIEW,
                             pool=args.pool)  # None: the backbone's own default pooling
    embedder = Embedder(config, batch_size=args.batch_size, num_workers=0)

    views = torch.stack([embedder.transform(load_image(f)) for f in files])
    embedder.embed_views(views[: args.batch_size])  # warm-up (first-call allocations, oneDNN primitives)

    def limit() -> float:
        t = time.perf_counter()
        for s in range(0, len(views), args.batch_size):
            embedder.embed_views(views[s:s + args.batch_size])
        return len(views) / (time.perf_counter() - t)

    def over_files(workers: int) -> float:
        embedder.num_workers = workers
        t = time.perf_counter()
        _, failures = embedder.embed_files(files)
        assert not failures, failures
        return len(files) / (time.perf_counter() - t)

    runs: dict[str, list[float]] = {"limit": []} | {f"files_w{w}": [] for w in args.workers}
    for _ in range(args.rounds):
        runs["limit"].append(limit())
        for w in args.workers:
            runs[f"files_w{w}"].append(over_files(w))
    med = {k: statistics.median(v) for k, v in runs.items()}
    result = {
        "bench": "embed_throughput", "n_images": len(files), "size": args.size, "backbone": config.backbone,
        "view": config.view, "pool": config.pool, "batch_size": args.batch_size, "rounds": args.rounds,
        "images_per_s": {k: round(v, 2) for k, v in med.items()},
        "all_rounds": {k: [round(x, 2) for x in v] for k, v in runs.items()},
        "ratio_to_limit": {k: round(v / med["limit"], 3) for k, v in med.items() if k != "limit"},
        "machine": machine(),
    }
    print(json.dumps(result))
    for k, r in result["ratio_to_limit"].items():
        print(f"{k}: {med[k]:.2f} img/s vs limit {med['limit']:.2f} img/s -> ratio {r:.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
