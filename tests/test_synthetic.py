"""Synthetic artists: layouts, determinism, and that the artists are separable by style, not by mean colour."""

from __future__ import annotations

import csv
import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from painterid.data.synthetic import (
    COMPOSITIONS,
    STROKE_KINDS,
    ArtistStyle,
    artist_name,
    make_synthetic_dataset,
    paint,
    random_style,
)

KAGGLE_HEADER = ["filename", "artist", "title", "style", "genre", "date"]


def _all_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------ style / paint


def test_random_style_is_seeded_and_valid():
    a = random_style(np.random.default_rng(3))
    b = random_style(np.random.default_rng(3))
    c = random_style(np.random.default_rng(4))
    assert isinstance(a, ArtistStyle)
    assert a == b
    assert a != c
    for s in (random_style(np.random.default_rng(i)) for i in range(40)):
        assert 4 <= len(s.palette) <= 6
        assert all(len(col) == 3 and all(0 <= v <= 255 for v in col) for col in s.palette)
        assert s.stroke_kind in STROKE_KINDS
        assert s.composition in COMPOSITIONS
        assert 0 < s.opacity <= 1 and s.stroke_length > 0 and s.stroke_width > 0


def test_paint_size_mode_and_determinism():
    style = random_style(np.random.default_rng(0))
    img = paint(style, np.random.default_rng(1), size=(120, 90))
    assert img.mode == "RGB"
    assert img.size == (120, 90)
    again = paint(style, np.random.default_rng(1), size=(120, 90))
    assert np.array_equal(np.asarray(img), np.asarray(again))
    other = paint(style, np.random.default_rng(2), size=(120, 90))
    assert not np.array_equal(np.asarray(img), np.asarray(other))


def test_every_stroke_kind_renders():
    base = random_style(np.random.default_rng(0))
    for kind in STROKE_KINDS:
        for comp in COMPOSITIONS:
            style = dataclasses.replace(base, stroke_kind=kind, composition=comp)
            arr = np.asarray(paint(style, np.random.default_rng(5), size=(48, 64)))
            assert arr.shape == (64, 48, 3)
            assert arr.std() > 1.0  # not a flat image


def test_paint_rejects_tiny_size():
    with pytest.raises(ValueError):
        paint(random_style(np.random.default_rng(0)), np.random.default_rng(0), size=(4, 4))


# ------------------------------------------------------------------------------------------------ layouts


def test_kaggle_layout(tmp_path):
    root = make_synthetic_dataset(tmp_path / "k", n_artists=3, per_artist=4, size=64, seed=1, layout="kaggle")
    assert root == tmp_path / "k"
    files = sorted((root / "train").iterdir())
    assert [f.name for f in files] == [f"{i:05d}.jpg" for i in range(12)]
    with open(root / "train_info.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == KAGGLE_HEADER
    body = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert sorted(r["filename"] for r in body) == [f.name for f in files]
    assert Counter(r["artist"] for r in body) == {artist_name(i): 4 for i in range(3)}
    assert all(r["title"].startswith("Untitled ") for r in body)
    # Artists are interleaved, as in the Kaggle file numbering.
    assert [r["artist"] for r in body] != sorted(r["artist"] for r in body)


def test_folders_layout(tmp_path):
    root = make_synthetic_dataset(tmp_path / "f", n_artists=3, per_artist=4, size=64, seed=1, layout="folders")
    dirs = sorted(d for d in root.iterdir() if d.is_dir())
    assert [d.name for d in dirs] == [artist_name(i) for i in range(3)]
    for d in dirs:
        assert sorted(p.name for p in d.iterdir()) == [f"{i:03d}.jpg" for i in range(4)]
    assert not (root / "train_info.csv").exists()


def test_files_are_rgb_jpegs_with_varied_aspect(tmp_path):
    root = make_synthetic_dataset(tmp_path / "k", n_artists=3, per_artist=4, size=80, seed=2)
    sizes = set()
    for p in (root / "train").glob("*.jpg"):
        with Image.open(p) as im:
            assert im.format == "JPEG"
            assert im.mode == "RGB"
            assert max(im.size) == 80
            sizes.add(im.size)
    assert len(sizes) >= 2


def test_tuple_size_is_fixed(tmp_path):
    root = make_synthetic_dataset(tmp_path / "f", n_artists=2, per_artist=3, size=(70, 50), layout="folders")
    for p in root.rglob("*.jpg"):
        with Image.open(p) as im:
            assert im.size == (70, 50)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        make_synthetic_dataset(tmp_path, layout="zip")
    with pytest.raises(ValueError):
        make_synthetic_dataset(tmp_path, n_artists=0)


@pytest.mark.parametrize("layout", ["kaggle", "folders"])
def test_deterministic_bytes(tmp_path, layout):
    a = _all_bytes(make_synthetic_dataset(tmp_path / "a", 3, 3, size=64, seed=7, layout=layout))
    b = _all_bytes(make_synthetic_dataset(tmp_path / "b", 3, 3, size=64, seed=7, layout=layout))
    c = _all_bytes(make_synthetic_dataset(tmp_path / "c", 3, 3, size=64, seed=8, layout=layout))
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.endswith(".jpg"))


def test_more_artists_keep_existing_ones(tmp_path):
    small = _all_bytes(make_synthetic_dataset(tmp_path / "s", 2, 2, size=64, seed=3, layout="folders"))
    big = _all_bytes(make_synthetic_dataset(tmp_path / "b", 3, 2, size=64, seed=3, layout="folders"))
    assert all(big[k] == v for k, v in small.items())


# ------------------------------------------------------------------------------------------------ separability

# Measured on seeds 0..19 (6 artists x 5 paintings, size 192): full feature AUC 0.85-0.99 (mean 0.93), mean
# colour AUC 0.49-0.77 (mean 0.63), gap >= 0.15 on every seed. Seed 0 here: full 0.98, mean colour 0.77.
MIN_FULL_AUC = 0.80
MAX_MEAN_COLOUR_AUC = 0.85
MIN_GAP = 0.10


def _colour_hist(a: np.ndarray) -> np.ndarray:
    q = np.minimum((a / 64).astype(int), 3)
    h = np.bincount((q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).ravel(), minlength=64).astype(float)
    return (h / h.sum()) ** 0.25


def _lbp_hist(g: np.ndarray) -> np.ndarray:
    """8-neighbour local binary pattern histogram (a contrast-invariant texture descriptor)."""
    c = g[1:-1, 1:-1]
    h, w = c.shape
    code = np.zeros(c.shape, dtype=int)
    for k, (dy, dx) in enumerate([(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]):
        code |= (g[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] >= c + 2).astype(int) << k
    hist = np.bincount(code.ravel(), minlength=256).astype(float)
    return np.sqrt(hist / hist.sum())


def _features(path: Path) -> dict[str, np.ndarray]:
    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB").resize((128, 128), Image.BILINEAR), dtype=np.float64)
    g = a.mean(-1)
    g2 = g.reshape(64, 2, 64, 2).mean((1, 3))
    return {
        "colour": _colour_hist(a),
        "texture1": _lbp_hist(g),
        "texture2": _lbp_hist(g2),
        "mean": a.reshape(-1, 3).mean(0),
    }


@pytest.fixture(scope="module")
def separability(tmp_path_factory):
    root = make_synthetic_dataset(tmp_path_factory.mktemp("sep"), n_artists=6, per_artist=5, size=192, seed=0,
                                  layout="folders")
    paths = sorted(root.glob("*/*.jpg"))
    labels = np.array([p.parent.name for p in paths])
    feats = [_features(p) for p in paths]
    iu = np.triu_indices(len(paths), 1)
    same = (labels[:, None] == labels[None, :])[iu]

    def cos_sims(key):
        f = np.stack([x[key] for x in feats])
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
        s = (f @ f.T)[iu]
        return (s - s.mean()) / s.std()  # z-scored so that each block weighs the same

    full = cos_sims("colour") + cos_sims("texture1") + cos_sims("texture2")
    m = np.stack([x["mean"] for x in feats])
    mean_sim = -np.linalg.norm(m[:, None] - m[None, :], axis=-1)[iu]
    return {"full": roc_auc_score(same, full), "mean": roc_auc_score(same, mean_sim),
            "n_pos": int(same.sum()), "n_neg": int((~same).sum())}


def test_artists_separable_by_hand_features(separability):
    assert separability["n_pos"] == 6 * 10 and separability["n_neg"] == 15 * 25
    assert separability["full"] > MIN_FULL_AUC, separability


def test_mean_colour_alone_is_weaker(separability):
    assert separability["mean"] < MAX_MEAN_COLOUR_AUC, separability
    assert separability["full"] - separability["mean"] > MIN_GAP, separability
