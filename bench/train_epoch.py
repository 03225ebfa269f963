"""Does DDP pay for training the heads? One epoch of the siamese head (the default method), 1 process vs 2 DDP ranks.

    python bench/train_epoch.py                  # 20k synthetic embeddings of dim 1120, 400 artists

One epoch as `painterid train --method siamese` runs it: 200k balanced pairs (TrainOptions.max_pairs), batch
128, AdamW, BCE. Single process: torch's intra-op threads use every core, and again with 1 thread. DDP: 2 gloo ranks on this machine
(torch.multiprocessing.spawn), each with `nproc // 2` threads, each taking half of every global batch of 128
(64 a rank), gradients all-reduced every step, so the optimisation is the same. Ratio = DDP time / single time
(below 1 would mean DDP pays); compare it with the 1-thread single time too, since
a machine busy with other jobs punishes multi-threaded small matmuls. Also a classifier-head epoch (the Kaggle winner's method) in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine  # noqa: E402

BATCH = 128


def data(n: int, dim: int, n_artists: int):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, n_artists, n)
    centres = rng.standard_normal((n_artists, dim), dtype=np.float32)
    x = centres[labels] + 2.0 * rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, [f"a{int(a)}" for a in labels]


def siamese_epoch(x: np.ndarray, pairs: np.ndarray, rank: int = 0, world: int = 1) -> float:
    import torch
    from torch import nn

    from painterid.scoring.heads import SiameseHead

    torch.manual_seed(0)
    head = SiameseHead(x.shape[1])
    if world > 1:
        head = nn.parallel.DistributedDataParallel(head)
    optim = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-4)
    lossf = nn.BCEWithLogitsLoss()
    xt = torch.from_numpy(x)
    trip = torch.from_numpy(pairs)
    order = torch.randperm(len(trip), generator=torch.Generator().manual_seed(0))
    head.train()
    t = time.perf_counter()
    for s in range(0, len(trip), BATCH):
        b = trip[order[s:s + BATCH]][rank::world]  # this rank's half of the global batch
        loss = lossf(head(xt[b[:, 0]], xt[b[:, 1]]), b[:, 2].float())
        optim.zero_grad()
        loss.backward()
        optim.step()
    return time.perf_counter() - t


def classifier_epoch(x: np.ndarray, artists: list[str]) -> float:
    import torch
    from torch import nn

    from painterid.scoring.heads import ClassifierHead

    names = sorted(set(artists))
    labels = torch.tensor([names.index(a) for a in artists])
    torch.manual_seed(0)
    head = ClassifierHead(x.shape[1], len(names), hidden=512)
    optim = torch.optim.AdamW(head.parameters(), lr=1e-3)
    lossf = nn.CrossEntropyLoss(label_smoothing=0.1)
    xt = torch.from_numpy(x)
    order = torch.randperm(len(xt))
    head.train()
    t = time.perf_counter()
    for s in range(0, len(order), BATCH):
        b = order[s:s + BATCH]
        loss = lossf(head.logits(xt[b]), labels[b])
        optim.zero_grad()
        loss.backward()
        optim.step()
    return time.perf_counter() - t


def _rank(rank: int, world: int, init: str, threads: int, x, pairs, out: str) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        dist.barrier()
        seconds = siamese_epoch(x, pairs, rank, world)
        dist.barrier()
        if rank == 0:
            Path(out).write_text(json.dumps({"seconds": seconds}))
    finally:
        dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=1120)
    ap.add_argument("--artists", type=int, default=400)
    ap.add_argument("--max-pairs", type=int, default=200_000)
    ap.add_argument("--world", type=int, default=2)
    args = ap.parse_args()

    import torch
    import torch.multiprocessing as mp

    from painterid.data.pairs import balanced_pairs

    x, artists = data(args.n, args.dim, args.artists)
    pairs = balanced_pairs(artists, seed=0, max_pos=args.max_pairs // 2)
    single = siamese_epoch(x, pairs)
    default_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    single_1t = siamese_epoch(x, pairs)
    torch.set_num_threads(default_threads)
    threads = max(1, (os.cpu_count() or 1) // args.world)
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "ddp.json")
        init = f"file://{Path(tmp) / 'rendezvous'}"
        t = time.perf_counter()
        mp.spawn(_rank, args=(args.world, init, threads, x, pairs, out), nprocs=args.world, join=True)
        ddp_wall = time.perf_counter() - t
        ddp = json.loads(Path(out).read_text())["seconds"]
    result = {
        "bench": "train_epoch", "paintings": args.n, "dim": args.dim, "artists": args.artists,
        "pairs_per_epoch": int(len(pairs)), "batch": BATCH, "steps": -(-len(pairs) // BATCH),
        "siamese_epoch_s_single": round(single, 2), "siamese_epoch_s_single_1_thread": round(single_1t, 2),
        "siamese_epoch_s_ddp": round(ddp, 2),
        "ddp_ranks": args.world, "ddp_threads_per_rank": threads, "ddp_wall_with_startup_s": round(ddp_wall, 2),
        "ratio_ddp_to_single": round(ddp / single, 2),
        "classifier_epoch_s_single": round(classifier_epoch(x, artists), 2),
        "machine": machine(), "torch_threads_single": default_threads,
    }
    print(json.dumps(result))
    print(f"siamese epoch: {single:.2f}s in one process ({single_1t:.2f}s with 1 thread), {ddp:.2f}s with "
          f"{args.world} DDP ranks "
          f"(ratio {ddp / single:.2f}; {ddp_wall:.1f}s with process start-up)", file=sys.stderr)


if __name__ == "__main__":
    main()
