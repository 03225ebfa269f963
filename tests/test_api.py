"""The public API: painterid.compare / embed / load_model / verify, imported lazily (import painterid stays cheap)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import painterid
from painterid.scoring.model import PairModel
from tests.test_robustness import siamese_model


def test_import_painterid_loads_neither_numpy_nor_torch():
    code = "import sys, painterid; print('numpy' in sys.modules, 'torch' in sys.modules, painterid.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", painterid.__version__]


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError):
        painterid.no_such_function  # noqa: B018


def test_compare_and_embed_agree_with_the_model_scoring_its_embeddings(tmp_path, monkeypatch, synthetic_data):
    """compare(a, b) is the model's score of embed([a]) and embed([b]); one image or a list gives one dict or many."""
    model_dir = tmp_path / "m"
    siamese_model(model_dir, seed=0, threshold=0.25)
    model = painterid.load_model(model_dir)
    assert isinstance(model, PairModel)
    images = sorted(p for p in (synthetic_data / "train").iterdir() if p.suffix in (".jpg", ".png"))[:3]
    monkeypatch.setattr("painterid.tasks.compare.embed_files", _fake_embed(model.embedding["dim"]))
    vecs = painterid.embed(images, model=model_dir)
    assert vecs.shape == (3, model.embedding["dim"]) and vecs.dtype == np.float32
    one = painterid.compare(images[0], images[1], model=model_dir)
    many = painterid.compare(images[0], images[1:], model=model_dir)
    expected = model.scores(vecs[[0, 0]], vecs[[1, 2]])
    assert one["score"] == pytest.approx(float(expected[0]), abs=1e-5)
    assert [r["score"] for r in many] == pytest.approx([float(s) for s in expected], abs=1e-5)
    assert one["same_artist"] == (one["score"] >= 0.25)


def test_load_model_takes_the_shipped_names():
    assert painterid.load_model("default").method == "cosine"
    assert painterid.load_model("archive").root.name == "archive_model"


def _fake_embed(dim):
    """A deterministic stand-in for the backbone: a vector from the file's bytes (the API, not the CNN, is tested)."""
    import hashlib
    from pathlib import Path

    def embed_files(paths, fingerprint, device=None, base_dir=None, runtime=None):
        rows = [np.random.default_rng(int(hashlib.sha256(Path(p).read_bytes()).hexdigest()[:8], 16)).normal(size=dim)
                for p in paths]
        return np.asarray(rows, dtype=np.float32), "stub"

    return embed_files
