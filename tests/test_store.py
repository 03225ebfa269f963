import numpy as np
import pytest

from painterid.core.errors import ArtefactError
from painterid.store.feature_store import FeatureStore, Row

EMB = {"backbone": "x", "weights_id": "w", "view": "center", "pool": "gap", "n_patches": None,
       "input_size": [3, 8, 8], "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic",
       "crop_pct": 0.875, "dim": 4}


def test_append_and_reopen_round_trip(tmp_path):
    s = FeatureStore.create_or_open(tmp_path / "s", EMB)
    v1 = np.arange(8, dtype=np.float32).reshape(2, 4)
    v2 = -np.arange(4, dtype=np.float32).reshape(1, 4)
    s.append([Row("a.jpg", "h1", "A"), Row("b.jpg", "h2", "B")], v1)
    s.append([Row("c.jpg", "h3", "A")], v2)
    again = FeatureStore.open(tmp_path / "s")
    assert again.paths == ["a.jpg", "b.jpg", "c.jpg"]
    assert again.artists == ["A", "B", "A"]
    np.testing.assert_array_equal(again.vectors, np.concatenate([v1, v2]))
    assert list(again.lookup(["h3", "nope", "h1"])) == [2, -1, 0]


def test_uncommitted_chunk_is_ignored(tmp_path):
    s = FeatureStore.create_or_open(tmp_path / "s", EMB)
    s.append([Row("a.jpg", "h1", "A")], np.ones((1, 4), np.float32))
    # a run killed after writing a chunk's table but before its vectors were renamed into place
    (tmp_path / "s" / "shard-00001.csv").write_text("path,sha256,artist,name,source\nb.jpg,h2,B,,\n")
    (tmp_path / "s" / "shard-00001.safetensors.tmp-123").write_bytes(b"partial")
    again = FeatureStore.open(tmp_path / "s")
    assert again.paths == ["a.jpg"]


def test_mismatched_embedding_is_refused(tmp_path):
    FeatureStore.create_or_open(tmp_path / "s", EMB)
    other = dict(EMB, backbone="y")
    with pytest.raises(ArtefactError, match="backbone"):
        FeatureStore.create_or_open(tmp_path / "s", other)


def test_not_a_store(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "f.txt").write_text("x")
    with pytest.raises(ArtefactError):
        FeatureStore.open(tmp_path / "junk")
    with pytest.raises(ArtefactError, match="not empty"):
        FeatureStore.create_or_open(tmp_path / "junk", EMB)
