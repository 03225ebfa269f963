"""ArtistIndex: exact and approximate search, artist prototypes, atomic save and checked load."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from painterid.core.errors import ArtefactError, DataError, PainterIDError
from painterid.tasks import index as index_mod
from painterid.tasks.index import ArtistIndex, recall_at_k

EMB = {"backbone": "efficientnet_lite0", "pool": "gap", "view": "resize",
       "data_config": {"input_size": (3, 224, 224), "mean": (0.5, 0.5, 0.5)}}


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def random_data(n: int = 500, d: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = normalise(rng.standard_normal((n, d)))
    files = [f"img/{i:05d}.jpg" for i in range(n)]
    artists = [f"artist_{i % 7}" for i in range(n)]
    return x, files, artists


def clustered(n: int, d: int, n_clusters: int, noise: float, seed: int, centres: np.ndarray | None = None):
    rng = np.random.default_rng(seed)
    if centres is None:
        centres = rng.standard_normal((n_clusters, d)).astype(np.float32)
    labels = rng.integers(0, len(centres), n)
    x = normalise(centres[labels] + noise * rng.standard_normal((n, d)))
    return x, labels, centres


@pytest.fixture(scope="module")
def clustered_5000():
    x, labels, centres = clustered(5000, 32, 50, 0.5, seed=0)
    q, _, _ = clustered(200, 32, 50, 0.5, seed=1, centres=centres)
    files = [f"f{i}.jpg" for i in range(len(x))]
    artists = [f"a{l}" for l in labels]
    return x, files, artists, q


# -- painting search -------------------------------------------------------------------------------
def test_flat_equals_brute_force():
    x, files, artists = random_data()
    idx = ArtistIndex.build(x, files, artists, EMB)
    assert idx.kind == "flat" and idx.config["kind"] == "flat"
    q = normalise(np.random.default_rng(5).standard_normal((20, 32)))
    scores, rows = idx.search_paintings(q, 10)
    assert scores.shape == rows.shape == (20, 10)
    sims = q @ x.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(rows, order)
    np.testing.assert_allclose(scores, np.take_along_axis(sims, order, axis=1), rtol=1e-5, atol=1e-5)


def test_search_accepts_single_vector_and_caps_k():
    x, files, artists = random_data(n=30)
    idx = ArtistIndex.build(x, files, artists, EMB)
    scores, rows = idx.search_paintings(x[3], 100)
    assert rows.shape == (1, 30) and rows[0, 0] == 3
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ArtefactError, match="dimension"):
        idx.search_paintings(np.ones((1, 16), np.float32), 5)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_recall(kind, clustered_5000):
    # measured: hnsw 0.98, ivf 0.977 (N=5000, D=32, 50 clusters); bound with margin
    x, files, artists, q = clustered_5000
    exact = ArtistIndex.build(x, files, artists, EMB, kind="flat")
    approx = ArtistIndex.build(x, files, artists, EMB, kind=kind)
    assert approx.kind == kind
    _, exact_rows = exact.search_paintings(q, 10)
    approx_scores, approx_rows = approx.search_paintings(q, 10)
    assert recall_at_k(approx_rows, exact_rows) >= 0.9
    assert np.all(np.diff(approx_scores, axis=1) <= 1e-6)  # best first


def test_auto_switches_to_approximate_above_threshold(monkeypatch):
    x, files, artists = random_data(n=300)
    assert ArtistIndex.build(x, files, artists, EMB).kind == "flat"
    monkeypatch.setattr(index_mod, "AUTO_APPROX_THRESHOLD", 100)
    idx = ArtistIndex.build(x, files, artists, EMB, kind="auto")
    assert idx.kind == "hnsw" and idx.config["kind"] == "hnsw"


def test_build_rejects_bad_input():
    x, files, artists = random_data(n=20)
    with pytest.raises(DataError):
        ArtistIndex.build(x, files[:-1], artists, EMB)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError):
        ArtistIndex.build(bad, files, artists, EMB)
    with pytest.raises(PainterIDError, match="unknown index kind 'lsh'; choose from auto, flat, hnsw, ivf"):
        ArtistIndex.build(x, files, artists, EMB, kind="lsh")


def test_recall_at_k():
    exact = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    assert recall_at_k(exact, exact) == 1.0
    assert recall_at_k(np.array([[0, 1, 9, 9], [7, 6, -1, -1]]), exact) == pytest.approx(0.5)


# -- artists --------------------------------------------------------------------------------------
def test_prototype_top1_on_held_out():
    x, labels, centres = clustered(1000, 32, 10, 0.6, seed=3)
    held, held_labels, _ = clustered(50, 32, 10, 0.6, seed=4, centres=centres)
    idx = ArtistIndex.build(x, [f"f{i}" for i in range(len(x))], [f"artist{l}" for l in labels], EMB)
    results = idx.search_artists(held, 3)
    assert len(results) == 50
    for res, label in zip(results, held_labels):
        assert res[0][0] == f"artist{label}"
        assert len(res) == 3 and len({a for a, _ in res}) == 3
        assert [s for _, s in res] == sorted((s for _, s in res), reverse=True)


def test_subcentres_help_an_artist_with_two_styles():
    rng = np.random.default_rng(7)
    d = 32
    early, late, other = normalise(rng.standard_normal((3, d)))
    late = normalise((late - (late @ early) * early)[None])[0]  # orthogonal: two distant styles
    pts = lambda c, n: normalise(c + 0.05 * rng.standard_normal((n, d)))
    x = np.concatenate([pts(early, 40), pts(late, 40), pts(other, 40)])
    artists = ["changer"] * 80 + ["steady"] * 40
    files = [f"f{i}" for i in range(len(x))]
    query = pts(early, 1)
    one = ArtistIndex.build(x, files, artists, EMB, n_subcentres=1)
    two = ArtistIndex.build(x, files, artists, EMB, n_subcentres=2)
    assert one.prototypes.shape[0] == 2
    assert two.prototypes.shape[0] == 4  # both artists have >= 2 * 2 paintings: two sub-centres each
    score = lambda idx: dict(idx.search_artists(query, 2)[0])["changer"]
    assert score(two) > 0.9 > 0.8 > score(one)  # measured: 0.96 vs 0.74
    assert two.search_artists(query, 5)[0][0][0] == "changer"
    assert len(two.search_artists(query, 5)[0]) == 2  # distinct artists only


def test_nearest_paintings_of():
    x, files, artists = random_data(n=200)
    idx = ArtistIndex.build(x, files, artists, EMB)
    q = x[10]
    res = idx.nearest_paintings_of(q, "artist_3", 5)
    rows = [i for i, a in enumerate(artists) if a == "artist_3"]
    sims = x[rows] @ q
    want = [files[rows[j]] for j in np.argsort(-sims)[:5]]
    assert [f for f, _ in res] == want
    assert all(artists[files.index(f)] == "artist_3" for f, _ in res)
    with pytest.raises(DataError, match="nobody"):
        idx.nearest_paintings_of(q, "nobody", 5)


# -- save / load ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_save_load_round_trip(tmp_path, kind):
    x, files, artists = random_data(n=800)
    files[1] = 'odd, "name"\nwith newline.jpg'
    idx = ArtistIndex.build(x, files, artists, EMB, kind=kind, n_subcentres=2)
    out = tmp_path / "index"
    idx.save(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(index_mod.REQUIRED_FILES)
    assert not list(tmp_path.glob("index.*"))  # no temporary siblings left
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == kind and cfg["dim"] == 32 and cfg["n"] == 800 and cfg["n_subcentres"] == 2
    assert cfg["format_version"] == index_mod.FORMAT_VERSION and "painterid_version" in cfg

    back = ArtistIndex.load(out, expected_embedding_config=EMB)  # tuples vs JSON lists still match
    assert back.files == files and back.artists == artists and back.kind == kind
    q = x[:25]
    s1, r1 = idx.search_paintings(q, 10)
    s2, r2 = back.search_paintings(q, 10)
    np.testing.assert_array_equal(r1, r2)
    np.testing.assert_allclose(s1, s2)
    assert idx.search_artists(q, 4) == back.search_artists(q, 4)
    assert idx.nearest_paintings_of(q[0], "artist_2", 3) == back.nearest_paintings_of(q[0], "artist_2", 3)


def test_load_refuses_other_embedding_config(tmp_path):
    x, files, artists = random_data(n=50)
    ArtistIndex.build(x, files, artists, EMB).save(tmp_path / "ix")
    other = dict(EMB, pool="style")
    with pytest.raises(ArtefactError, match="pool") as exc:
        ArtistIndex.load(tmp_path / "ix", expected_embedding_config=other)
    assert "painterid index build" in str(exc.value) and "\n" not in str(exc.value)
    nested = dict(EMB, data_config={"input_size": (3, 256, 256), "mean": (0.5, 0.5, 0.5)})
    with pytest.raises(ArtefactError, match=r"data_config\.input_size"):
        ArtistIndex.load(tmp_path / "ix", expected_embedding_config=nested)
    ArtistIndex.load(tmp_path / "ix")  # no expectation: no check


def test_load_missing_or_newer(tmp_path):
    with pytest.raises(ArtefactError, match="no artist index"):
        ArtistIndex.load(tmp_path / "absent")
    x, files, artists = random_data(n=50)
    out = tmp_path / "ix"
    ArtistIndex.build(x, files, artists, EMB).save(out)
    cfg = json.loads((out / "config.json").read_text())
    cfg["format_version"] = index_mod.FORMAT_VERSION + 1
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ArtefactError, match="newer"):
        ArtistIndex.load(out)
    (out / "index.faiss").unlink()
    with pytest.raises(ArtefactError, match="index.faiss") as exc:
        ArtistIndex.load(out)
    assert "\n" not in str(exc.value)


def test_load_corrupt_index_file(tmp_path):
    x, files, artists = random_data(n=50)
    out = tmp_path / "ix"
    ArtistIndex.build(x, files, artists, EMB).save(out)
    (out / "index.faiss").write_bytes(b"not a faiss index")
    with pytest.raises(ArtefactError, match="index.faiss"):
        ArtistIndex.load(out)


def test_crash_mid_save_leaves_old_index_intact(tmp_path, monkeypatch):
    x, files, artists = random_data(n=100)
    old = ArtistIndex.build(x, files, artists, EMB)
    out = tmp_path / "ix"
    old.save(out)
    new = ArtistIndex.build(x[:60], files[:60], artists[:60], EMB)

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(faiss, "write_index", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        new.save(out)
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        new.save(fresh)
    monkeypatch.undo()

    assert not fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ix"]  # no temporary siblings left
    back = ArtistIndex.load(out)
    assert back.n == 100
    np.testing.assert_array_equal(back.search_paintings(x[:5], 5)[1], old.search_paintings(x[:5], 5)[1])

    new.save(out)  # a later save replaces it
    assert ArtistIndex.load(out).n == 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ix"]


def test_save_refuses_to_overwrite_something_else(tmp_path):
    x, files, artists = random_data(n=20)
    idx = ArtistIndex.build(x, files, artists, EMB)
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(ArtefactError, match="not an artist index"):
        idx.save(tmp_path / "precious")
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    idx.save(tmp_path / "empty")
    assert ArtistIndex.load(tmp_path / "empty").n == 20
