"""`cohort set` on an archive with a selfsup chain: each painting embedded once (its grid patches and random crops
in one forward pass, reused for selfsup), progress shown as lines when stderr is not a terminal."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from painterid.embedding.patches import COHORT_EXTRA_PATCHES
from painterid.scoring.model import PairModel
from painterid.scoring.normalise import Chain

PATCH, N_GRID, DIM = 32, 4, 12
FP = {"backbone": "stand-in", "weights_id": "none", "weights_file": None, "view": "patches", "pool": "gap",
      "n_patches": N_GRID, "input_size": [3, PATCH, PATCH], "mean": [0.5] * 3, "std": [0.5] * 3,
      "interpolation": "bicubic", "crop_pct": 1.0, "dim": DIM}


class CountingEmbedder:
    """A stand-in backbone: a fixed projection of each crop's 4 x 4 pooled pixels; counts its forward passes."""

    fingerprint = FP
    runtime = "stand-in"
    device = "cpu"

    def __init__(self):
        self.proj = np.random.default_rng(1).normal(size=(48, DIM)).astype(np.float32)
        self.calls, self.crops = 0, []

    def view_vectors(self, flat):
        self.calls += 1
        self.crops.append(len(flat))
        x = np.asarray(flat, np.float32).reshape(len(flat), 3, 4, PATCH // 4, 4, PATCH // 4).mean((3, 5))
        v = x.reshape(len(flat), -1) @ self.proj
        return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    import painterid.embedding.runtime as runtime

    emb = CountingEmbedder()
    monkeypatch.setattr(runtime, "make_embedder", lambda *a, **k: emb)
    rng = np.random.default_rng(0)
    for artist in ("a", "b", "c"):
        (tmp_path / "data" / artist).mkdir(parents=True)
        for k in range(5):
            Image.fromarray((rng.random((80, 72, 3)) * 255).astype(np.uint8)).save(tmp_path / "data" / artist
                                                                                 / f"{k}.png")
    chain = Chain.parse("selfsup:6,l2,csls:3")
    chain.steps[0].params["steps"] = 5
    fake = rng.normal(size=(8, 6, DIM)).astype(np.float32)
    chain.fit(fake.mean(1), patches=fake)
    model = PairModel("cosine", FP, None, cohort=fake.mean(1), chain=chain,
                      artists={"train": [], "val": [], "test": []})
    return model.save(tmp_path / "model"), tmp_path / "data", emb


def test_each_painting_is_embedded_once_and_its_patches_reused(setup, tmp_path):
    from painterid.embedding.pipeline import labelled
    from painterid.scoring.cohort import set_cohort

    model_dir, data, emb = setup
    seen, stages = [], []
    model, failures = set_cohort(model_dir, data, out=tmp_path / "m2", progress=lambda d, t: seen.append((d, t)),
                                 stage=stages.append)
    assert not failures and len(model.cohort) == 15
    assert emb.calls == 15 and set(emb.crops) == {N_GRID + COHORT_EXTRA_PATCHES}  # one pass a painting
    assert seen[-1] == (15, 15)
    assert model.cohort_info["selfsup"] == "refitted on this cohort"
    assert any("random crops" in s for s in stages) and any(s.startswith("fitting selfsup") for s in stages)
    # the store's painting vector is the mean of the grid patches: what the embedding alone would give
    from painterid.embedding.patches import PatchSource

    source = PatchSource(FP, {}, extra=COHORT_EXTRA_PATCHES)
    lab = labelled(data, FP, embedder=source.capturing())  # everything is in the store already
    patches = source(lab.hashes)
    grid = patches[:, :N_GRID].mean(1)
    np.testing.assert_allclose(grid / np.linalg.norm(grid, axis=1, keepdims=True), lab.vectors, atol=2e-3)
    assert emb.calls == 15  # all read back from the store and the patch cache


def test_cli_cohort_set_shows_progress_lines_when_not_a_terminal(setup, tmp_path, monkeypatch, capsys):
    from painterid.cli import main

    model_dir, data, _ = setup
    monkeypatch.setattr(sys, "argv", ["painterid", "cohort", "set", str(model_dir), str(data), "--out",
                                      str(tmp_path / "m3")])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code in (0, None), err
    lines = [ln for ln in err.splitlines() if ln.startswith("painterid: embedding ")]
    assert lines and lines[-1].startswith("painterid: embedding 15/15 img (100%")
    assert 1 <= len(lines) <= 21  # a line every few per cent, not one per image (1: all reused from the cache)
    assert "fitting selfsup" in err and "cohort of 15 paintings" in err
