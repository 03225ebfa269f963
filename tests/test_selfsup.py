"""The `selfsup` normaliser step: a projection learned without labels from per-patch vectors (issue 12, item 4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from painterid.scoring.loading import load_model

REPO = Path(__file__).resolve().parent.parent


def run(*args):
    return subprocess.run([sys.executable, "-m", "painterid.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=600)


def nuisance_patches(m=40, p=6, d=24, seed=0):
    """Paintings whose identity lives in 8 dims of small spread while 16 other dims vary a lot from patch to
    patch (framing, lighting): raw cosine is dominated by the nuisance, a good projection drops it."""
    rng = np.random.default_rng(seed)
    content = rng.normal(size=(m, 1, 8)).repeat(p, 1)
    x = np.concatenate([content, 3.0 * rng.normal(size=(m, p, 16))], axis=2) + 0.1 * rng.normal(size=(m, p, d))
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def same_painting_auc(vectors: np.ndarray) -> float:
    """AUC of patch pairs: same painting vs different paintings, by cosine."""
    from painterid.evaluation.metrics import roc_auc

    m, p, d = vectors.shape
    flat = vectors.reshape(-1, d)
    flat = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    owner = np.repeat(np.arange(m), p)
    sims = flat @ flat.T
    iu = np.triu_indices(len(flat), 1)
    return roc_auc(sims[iu], (owner[iu[0]] == owner[iu[1]]).astype(int))


def test_the_projection_learns_what_stays_the_same_within_a_painting_and_leaves_torch_seeded_as_it_was():
    import torch

    from painterid.scoring.selfsup import SelfSupSettings, train_projection

    train, held = nuisance_patches(seed=0), nuisance_patches(seed=1)  # held: other paintings, never trained on
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    s = SelfSupSettings(dim=8, steps=150, paintings=16, per_painting=3)
    got = train_projection(train, s)
    assert torch.rand(1) == before  # the fit ran in a forked random state
    assert got["proj"].shape == (24, 8) and got["bias"].shape == (8,) and got["step"] == 150
    projected = held @ got["proj"] + got["bias"]
    raw, learned = same_painting_auc(held), same_painting_auc(projected)
    assert raw < 0.8 and learned > raw + 0.1, (raw, learned)
    again = train_projection(train, s)
    np.testing.assert_array_equal(again["proj"], got["proj"])  # fixed seed: the same projection


def test_the_checkpoint_is_chosen_on_validation_pairs_and_recorded_in_the_step():
    from painterid.scoring.normalise import Chain
    from painterid.scoring.selfsup import project

    patches = nuisance_patches(m=30, seed=2)
    val = nuisance_patches(m=12, p=2, seed=3)
    val_vectors = val.reshape(-1, val.shape[-1])  # 24 "paintings": two per "artist"
    pairs = np.array([[2 * i, 2 * i + 1, 1] for i in range(12)] + [[2 * i, 2 * i + 3, 0] for i in range(11)])
    chain = Chain.parse("selfsup:8,l2,csls:3")
    chain.fit(patches.mean(1), patches=lambda: patches, validation=(val_vectors, pairs))
    step = chain.steps[0]
    assert [c["step"] for c in step.curve] == [50, 100, 150, 200, 250, 300]
    best = max(step.curve, key=lambda c: c["val_auc"])
    assert step.params["steps"] == best["step"]
    assert step.to_config() == {"name": "selfsup", "params": {"dim": 8, "steps": best["step"]}}
    v = chain.apply(val_vectors)
    np.testing.assert_allclose(v, project(step.state["proj"], step.state["bias"], val_vectors), atol=1e-6)
    rebuilt = Chain.from_config(chain.to_config(), chain.arrays(), cohort=patches.mean(1))
    np.testing.assert_array_equal(rebuilt.apply(val_vectors), v)


def test_selfsup_is_first_in_a_chain_and_says_what_it_needs():
    from painterid.scoring.normalise import Chain

    with pytest.raises(ValueError, match="must be the first step"):
        Chain.parse("l2,selfsup")
    with pytest.raises(ValueError, match="per-patch vectors"):
        Chain.parse("selfsup,l2").fit(np.ones((5, 4), np.float32))


@pytest.fixture(scope="module")
def patch_store(tmp_path_factory):
    """Generated paintings embedded with the `patches` view at a small size (what selfsup is trained on)."""
    from painterid.data.synthetic import make_synthetic_dataset
    from painterid.embedding.embedder import Embedder, EmbeddingConfig
    from painterid.embedding.pipeline import embed_data

    data = make_synthetic_dataset(tmp_path_factory.mktemp("selfsup") / "data", n_artists=10, per_artist=4,
                                  size=128, seed=3)
    embedder = Embedder(EmbeddingConfig(backbone="efficientnet_lite0", view="patches", pool="gap", n_patches=4,
                                        input_size=64), num_workers=0)
    out = tmp_path_factory.mktemp("selfsup") / "store"
    _, _, failures = embed_data(data, embedder, out)
    assert not failures
    return out


def test_patch_vectors_average_to_the_stored_vectors_and_are_cached_per_painting(patch_store, monkeypatch):
    from painterid.embedding.patches import EXTRA_PATCHES, PatchSource
    from painterid.embedding.pipeline import labelled

    lab = labelled(patch_store)
    source = PatchSource.of(lab)
    got = source(lab.hashes[:6])
    assert got.shape == (6, 4 + EXTRA_PATCHES, lab.vectors.shape[1])
    grid = got[:, :4].mean(1)
    grid /= np.linalg.norm(grid, axis=1, keepdims=True)
    np.testing.assert_allclose(grid, lab.vectors[:6], atol=2e-3)  # float16 cache
    assert sorted(p.name for p in source.dir.iterdir()) == sorted(f"{h}.npy" for h in lab.hashes[:6])
    assert not np.allclose(got[0, 4], got[0, 5])  # random crops, not one crop repeated
    # a second source reads the cache, never the backbone; another order gives the same rows
    monkeypatch.setattr(PatchSource, "_get_embedder", lambda self: pytest.fail("re-embedded a cached painting"))
    np.testing.assert_array_equal(PatchSource.of(lab)(lab.hashes[:6][::-1]), got[::-1])


def test_train_with_selfsup_then_replace_the_cohort(patch_store, tmp_path):
    from painterid.embedding.pipeline import labelled
    from painterid.store.feature_store import FeatureStore

    cosine, kept = tmp_path / "cosine", tmp_path / "wccn"
    for out, chain in ((cosine, "selfsup:16,l2,csls:3"), (kept, "selfsup:16,wccn,l2,csls:3")):
        proc = run("train", "--data", patch_store, "--out", out, "--method", "cosine", "--normaliser", chain,
                   "--val-artists", "0.3", "--test-artists", "0.2")
        assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = json.loads((cosine / "config.json").read_text())
    step = cfg["chain"][0]
    assert step["name"] == "selfsup" and step["params"]["dim"] == 16 and 50 <= step["params"]["steps"] <= 300
    model = load_model(cosine)
    assert model.chain.steps[0].state["proj"].shape == (model.embedding["dim"], 16)
    lab = labelled(patch_store)
    a, b = lab.vectors[:3], lab.vectors[3:6]
    assert np.all(np.isfinite(model.scores(a, b)))

    # a cohort of the first 6 artists' paintings: the cosine model retrains its projection on it, the model
    # with wccn after the projection keeps it (wccn was fitted on its output)
    few = [i for i, x in enumerate(lab.artists) if x in sorted(set(lab.artists))[:6]]
    src = FeatureStore.open(patch_store)
    sub = FeatureStore.create_or_open(tmp_path / "sub", src.embedding)
    sub.append([src.rows[i] for i in few], src.vectors[few])
    for out, refitted in ((cosine, True), (kept, False)):
        before = load_model(out).chain.steps[0].state["proj"]
        config = (out / "config.json").read_bytes()
        proc = run("cohort", "set", out, tmp_path / "sub", "--out", tmp_path / f"{out.name}-archive")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert (out / "config.json").read_bytes() == config  # --out: the original is left as it was
        after = load_model(tmp_path / f"{out.name}-archive")
        assert after.cohort_info["selfsup"] == ("refitted on this cohort" if refitted else "kept as trained")
        assert np.array_equal(after.chain.steps[0].state["proj"], before) is not refitted


def test_selfsup_on_an_embedding_without_patches_is_one_error_line(small_store, tmp_path):
    proc = run("train", "--data", small_store, "--out", tmp_path / "m", "--method", "cosine", "--normaliser",
               "selfsup,l2,csls:3")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "patches" in proc.stderr and not (tmp_path / "m").exists()
