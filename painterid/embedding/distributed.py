"""Distributed embedding over torch.distributed: `torchrun --nproc_per_node N -m painterid embed DATA --out STORE`.

Each rank embeds `lacking[rank::world]` of the files the store does not hold yet and writes its own chunks
(`shard-r{rank}-NNNNN`) into STORE; `FeatureStore.open` merges them. Slicing, not `DistributedSampler`: the
sampler pads the last ranks with duplicates so that every rank gets as many items, which would store some
images twice. Slicing gives ranks at most one file more than each other and every file exactly once.

Rank 0 creates (or checks) the store's config.json before any rank reads it; every rank reads the same
snapshot of the store before any rank writes, so they all agree on what is lacking; and a final collective
waits for every rank before rank 0 opens the merged store. A resumed run (any world size, or one process)
skips what any earlier run committed. CPU ranks use the gloo backend, CUDA ranks NCCL on `cuda:LOCAL_RANK`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from painterid.core.errors import ArtefactError

if TYPE_CHECKING:  # pragma: no cover
    import torch
# torch is imported where it runs: `painterid embed` on the ONNX Runtime path (no torchrun) must not import it.

# Ranks that finish early wait for the others at the final collective; a large data set on a slow rank may
# take hours, so the default of torch (30 min for gloo, 10 for NCCL) is too short.
TIMEOUT = timedelta(hours=12)


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in a torchrun job (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "DistEnv":
        """Read RANK, WORLD_SIZE and LOCAL_RANK as torchrun sets them."""
        try:
            world = int(environ.get("WORLD_SIZE", "1"))
            rank = int(environ.get("RANK", "0"))
            local = int(environ.get("LOCAL_RANK", str(rank)))
        except ValueError as exc:
            raise ArtefactError(f"bad torch.distributed environment ({exc})") from None
        if world < 1 or not 0 <= rank < world:
            raise ArtefactError(f"bad torch.distributed environment: RANK={rank}, WORLD_SIZE={world}")
        return cls(rank, world, local)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str | None = None) -> torch.device:
        """This rank's device: cuda:LOCAL_RANK when CUDA is requested or present, else CPU."""
        import torch

        if requested and not requested.startswith("cuda"):
            return torch.device(requested)
        if requested == "cuda" or (requested is None and torch.cuda.is_available()):
            return torch.device("cuda", self.local_rank % max(1, torch.cuda.device_count()))
        return torch.device(requested or "cpu")


def shard_indices(n: int, rank: int, world_size: int) -> list[int]:
    """The items of rank `rank` among `n`: every item goes to exactly one rank, none is repeated."""
    return list(range(rank, n, world_size))


def init_process_group(env: DistEnv, device: torch.device) -> bool:
    """Join the torchrun job (gloo on CPU, NCCL on CUDA); False if a group already existed."""
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=TIMEOUT, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=TIMEOUT)
    return True


def _broadcast_error(message: str | None) -> None:
    """Rank 0's error (or None) reaches every rank, so no rank waits forever on one that gave up."""
    import torch.distributed as dist

    box = [message]
    dist.broadcast_object_list(box, src=0)
    if box[0] is not None:
        raise ArtefactError(box[0])


def embed_data_distributed(data: str | Path, embedder, store_dir: str | Path, env: DistEnv | None = None,
                           progress: Callable[[int, int], None] | None = None, commit_every: int = 256):
    """This rank's share of `pipeline.embed_data`; returns (store, dataset, failures of all ranks).

    On rank 0 the store is the merged one (every rank's chunks); on other ranks it is their own view.
    Without a torchrun environment this is `pipeline.embed_data`.
    """
    from painterid.core.errors import PainterIDError
    from painterid.data.datasets import discover
    from painterid.embedding.embedder import embed_dataset
    from painterid.embedding.pipeline import embed_data
    from painterid.store.feature_store import FeatureStore

    env = env or DistEnv.from_env()
    if not env.distributed:
        return embed_data(data, embedder, store_dir, progress=progress, commit_every=commit_every)
    import torch.distributed as dist

    created = init_process_group(env, embedder.device)
    try:
        store_dir = Path(store_dir)
        error = None
        dataset = None
        if env.is_main:
            try:
                dataset = discover(data)
                FeatureStore.create_or_open(store_dir, embedder.fingerprint)
            except PainterIDError as exc:
                error = str(exc)
        _broadcast_error(error)  # also the barrier: config.json exists before any rank reads it
        if dataset is None:
            dataset = discover(data)
        store = FeatureStore.open(store_dir)
        store.rank = env.rank
        have = {r.path for r in store.rows}
        files = [str(Path(f)) for f in dataset.files]
        lacking = [i for i, f in enumerate(files) if f not in have]
        dist.barrier()  # every rank has read the same snapshot before any rank writes
        mine = [lacking[k] for k in shard_indices(len(lacking), env.rank, env.world_size)]

        def pick(values: Sequence | None):
            return None if values is None else [values[i] for i in mine]

        failures = embed_dataset(store, pick(files), embedder, artists=pick(dataset.artists),
                                 names=pick(dataset.names), sources=pick(dataset.sources), progress=progress,
                                 commit_every=commit_every)
        gathered: list = [None] * env.world_size
        dist.all_gather_object(gathered, failures)  # also the final barrier: every rank has committed
        order = {f: i for i, f in enumerate(files)}
        all_failures = sorted((f for part in gathered for f in part), key=lambda f: order.get(f[0], -1))
        if env.is_main:
            store = FeatureStore.open(store_dir)
        return store, dataset, all_failures
    finally:
        if created:
            dist.destroy_process_group()
