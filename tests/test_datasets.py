import pytest

from painterid.core.errors import DataError
from painterid.data.datasets import discover
from painterid.data.splits import split_paintings
from painterid.data.synthetic import make_synthetic_dataset


def test_kaggle_layout(tmp_path):
    root = make_synthetic_dataset(tmp_path / "k", n_artists=3, per_artist=2, size=64, seed=1)
    ds = discover(root)
    assert ds.layout == "kaggle" and len(ds) == 6
    assert sorted(set(ds.artists)) == ["synth-artist-00", "synth-artist-01", "synth-artist-02"]
    assert all(f.is_file() for f in ds.files)


def test_folder_layout_and_missing_rows(tmp_path):
    root = make_synthetic_dataset(tmp_path / "f", n_artists=2, per_artist=3, size=64, seed=1, layout="folders")
    ds = discover(root)
    assert ds.layout == "folders" and len(ds) == 6 and ds.artists.count("synth-artist-01") == 3

    k = make_synthetic_dataset(tmp_path / "k", n_artists=2, per_artist=2, size=64, seed=1)
    with open(k / "train_info.csv", "a") as fh:
        fh.write("missing.jpg,Nobody,,,,\n")
    with pytest.warns(UserWarning, match="not found"):
        ds = discover(k)
    assert ds.dropped == ["missing.jpg"] and len(ds) == 4


def test_bad_data(tmp_path):
    with pytest.raises(DataError, match="no such"):
        discover(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no paintings"):
        discover(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "train_info.csv").write_text("name,painter\nx.jpg,A\n")
    with pytest.raises(DataError, match="missing column"):
        discover(tmp_path / "bad")


def test_split_paintings_is_artist_disjoint():
    artists = [f"a{i // 6}" for i in range(60)] + [f"b{i}" for i in range(10)]
    s = split_paintings(artists, val=0.2, test=0.2, holdout=0.25, seed=3)
    a = s["artists"]
    assert not set(a["train"]) & set(a["val"]) and not set(a["train"]) & set(a["test"])
    ix = s["indices"]
    every = sorted(i for k in ix for i in ix[k])
    assert every == list(range(70))  # each painting in exactly one part
    train_artists = {artists[i] for i in ix["train"]}
    assert {artists[i] for i in ix["test_seen"]} <= train_artists
    assert not {artists[i] for i in ix["test_unseen"]} & train_artists
    assert split_paintings(artists, seed=3)["artists"] == split_paintings(artists, seed=3)["artists"]


def test_csv_names_outside_the_data_folder_are_dropped(tmp_path):
    k = make_synthetic_dataset(tmp_path / "k", n_artists=2, per_artist=2, size=64, seed=1)
    secret = tmp_path / "secret.jpg"
    secret.write_bytes((k / "train" / "00000.jpg").read_bytes())
    with open(k / "train_info.csv", "a") as fh:
        fh.write(f"../../secret.jpg,Thief,,,,\n{secret},Thief,,,,\n")
    with pytest.warns(UserWarning, match="outside the data folder"):
        ds = discover(k)
    assert "Thief" not in ds.artists and len(ds) == 4
