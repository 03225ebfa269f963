"""Distributed embedding: 2 gloo ranks on CPU under torchrun give the same store as one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from painterid.embedding.distributed import DistEnv, shard_indices
from painterid.store.feature_store import FeatureStore, Row

BACKBONE = "efficientnet_lite0"


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    from painterid.data.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("dist") / "data", n_artists=5, per_artist=4, size=96,
                                  seed=3)


@pytest.fixture(scope="module")
def embedder():
    from painterid.embedding.embedder import Embedder, EmbeddingConfig

    return Embedder(EmbeddingConfig(backbone=BACKBONE, view="center", pool="style"), num_workers=0)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_data, embedder) -> FeatureStore:
    """The single-process store of the tiny data."""
    from painterid.embedding.pipeline import embed_data

    store, _, failures = embed_data(tiny_data, embedder, tmp_path_factory.mktemp("ref") / "store")
    assert not failures and len(store) == 20
    return FeatureStore.open(store.root)


def torchrun(data: Path, out: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "painterid", "embed", str(data), "--out", str(out), "--backbone", BACKBONE, "--view", "center", "--pool", "style", "--workers", "0"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def assert_same_store(got: FeatureStore, want: FeatureStore) -> None:
    paths = got.paths
    assert len(paths) == len(set(paths)), "an image was stored twice"
    assert sorted(paths) == sorted(want.paths)
    g, w = got.select(want.paths), want.select(want.paths)
    assert [got.rows[i].sha256 for i in g] == [want.rows[i].sha256 for i in w]
    assert [got.rows[i].artist for i in g] == [want.rows[i].artist for i in w]
    np.testing.assert_allclose(got.vectors[g], want.vectors[w], atol=1e-5)


# -- the pieces ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,world", [(0, 2), (1, 2), (20, 2), (21, 2), (20, 3), (7, 8)])
def test_shards_cover_every_item_exactly_once(n, world):
    parts = [shard_indices(n, r, world) for r in range(world)]
    flat = [i for p in parts for i in p]
    assert sorted(flat) == list(range(n))  # no padding duplicates (unlike DistributedSampler), none lost
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1


def test_env_from_torchrun_variables():
    env = DistEnv.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (env.rank, env.world_size, env.local_rank, env.distributed, env.is_main) == (3, 4, 1, True, False)
    assert DistEnv.from_env({}) == DistEnv(0, 1, 0)
    assert env.device("cpu").type == "cpu"


def test_rank_shards_load_in_number_then_rank_order(tmp_path):
    store = FeatureStore.create_or_open(tmp_path / "s", {"dim": 2})
    store.append([Row("a", "ha")], np.array([[1, 0]], np.float32))  # shard-00000
    writers = [FeatureStore.open(tmp_path / "s") for _ in range(2)]  # both read the store before either writes
    for rank, name in ((1, "c"), (0, "b")):  # written out of order on purpose
        writers[rank].rank = rank
        writers[rank].append([Row(name, "h" + name)], np.array([[0, rank]], np.float32))
    names = sorted(p.name for p in (tmp_path / "s").glob("*.safetensors"))
    assert names == ["shard-00000.safetensors", "shard-r0-00001.safetensors", "shard-r1-00001.safetensors"]
    merged = FeatureStore.open(tmp_path / "s")
    assert merged.paths == ["a", "b", "c"]
    assert merged._next_shard == 2
    merged.append([Row("d", "hd")], np.array([[1, 1]], np.float32))
    assert (tmp_path / "s" / "shard-00002.safetensors").is_file()
    assert FeatureStore.open(tmp_path / "s").paths == ["a", "b", "c", "d"]


# -- torchrun, 2 gloo ranks ---------------------------------------------------------------------------
def test_two_ranks_equal_one_process(tmp_path, tiny_data, reference):
    out = tmp_path / "store"
    run = torchrun(tiny_data, out)
    assert run.returncode == 0, run.stderr[-3000:]
    shards = sorted(p.name for p in out.glob("*.safetensors"))
    assert any(s.startswith("shard-r0-") for s in shards) and any(s.startswith("shard-r1-") for s in shards)
    assert_same_store(FeatureStore.open(out), reference)
    assert "20 paintings of 5 artists" in run.stderr


def test_resume_across_world_sizes(tmp_path, tiny_data, reference, embedder):
    """One process did 6 files, rank 1 of a killed 3-rank run did 3 more; 2 ranks finish; then 1 process adds
    nothing."""
    from painterid.data.datasets import discover
    from painterid.embedding.embedder import embed_dataset
    from painterid.embedding.pipeline import embed_data

    ds = discover(tiny_data)
    files = [str(f) for f in ds.files]
    out = tmp_path / "store"
    store = FeatureStore.create_or_open(out, embedder.fingerprint)
    assert not embed_dataset(store, files[:6], embedder, artists=ds.artists[:6])
    killed = FeatureStore.open(out)
    killed.rank = 1
    picked = [files[6:][k] for k in shard_indices(14, 1, 3)][:3]
    assert not embed_dataset(killed, picked, embedder, artists=[ds.artists[files.index(f)] for f in picked])
    assert len(FeatureStore.open(out)) == 9

    run = torchrun(tiny_data, out)
    assert run.returncode == 0, run.stderr[-3000:]
    merged = FeatureStore.open(out)
    assert_same_store(merged, reference)

    before = sorted(p.name for p in out.iterdir())
    again, _, failures = embed_data(tiny_data, embedder, out)
    assert not failures and len(again) == 20
    assert sorted(p.name for p in out.iterdir()) == before  # nothing was lacking: no new chunk
