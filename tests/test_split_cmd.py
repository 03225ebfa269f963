"""`painterid split` writes an artist-disjoint split file; `train --split` trains on exactly that split."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from painterid.cli import app
from painterid.core.errors import ArtefactError, DataError
from painterid.data.splits import read_split, split_indices

runner = CliRunner()


def _artist_of(data) -> dict[str, str]:
    with open(data / "train_info.csv", newline="") as fh:
        return {r["filename"]: r["artist"] for r in csv.DictReader(fh)}


def _split(data, out, *extra):
    res = runner.invoke(app, ["split", "--data", str(data), "--out", str(out), *map(str, extra)])
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


def test_split_file_is_seeded_artist_disjoint_and_covers_every_painting(synthetic_data, tmp_path):
    a = _split(synthetic_data, tmp_path / "a.json", "--seed", 0)
    b = _split(synthetic_data, tmp_path / "b.json", "--seed", 0)
    c = _split(synthetic_data, tmp_path / "c.json", "--seed", 1)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert c["artists"] != a["artists"]

    artist_of = _artist_of(synthetic_data)
    groups = {k: set(v) for k, v in a["artists"].items()}
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"] or groups["val"] & groups["test"])
    assert groups["train"] | groups["val"] | groups["test"] == set(artist_of.values())
    # 16 artists at val 0.2 / test 0.2
    assert (len(groups["train"]), len(groups["val"]), len(groups["test"])) in {(10, 3, 3), (9, 4, 3), (9, 3, 4)}

    files = a["files"]
    listed = [f for part in ("train", "val", "test_seen", "test_unseen") for f in files[part]]
    assert sorted(listed) == sorted(artist_of)  # every painting exactly once
    must_be_by = {"train": "train", "test_seen": "train", "val": "val", "test_unseen": "test"}
    for part, group in must_be_by.items():
        assert files[part] and all(artist_of[f] in groups[group] for f in files[part]), part
    # 6 paintings per training artist, a quarter (at least two) held out for the seen test
    assert len(files["test_seen"]) == 2 * len(groups["train"])
    assert a["counts"]["train_paintings"] == len(files["train"])


def test_train_with_split_uses_exactly_the_split(synthetic_data, small_store, tmp_path):
    from painterid.data.splits import split_paintings
    from painterid.store.feature_store import FeatureStore

    split = _split(synthetic_data, tmp_path / "s.json", "--val", 0.25, "--test", 0.25, "--seed", 3)
    rows = FeatureStore.open(small_store).rows
    own = split_paintings([r.artist for r in rows], val=0.2, test=0.2, holdout=0.25, seed=0)["artists"]
    assert own != split["artists"]  # what train would have chosen by itself differs

    model = tmp_path / "model"
    res = runner.invoke(app, ["train", "--data", str(small_store), "--out", str(model), "--method", "cosine",
                              "--split", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    cfg = json.loads((model / "config.json").read_text())
    assert {k: sorted(cfg["artists"][k]) for k in ("train", "val", "test")} == split["artists"]
    with open(model / "training_set.csv", newline="") as fh:
        trained = {r["sha256"] for r in csv.DictReader(fh)}
    by_name = {r.name: r.sha256 for r in rows}
    assert trained == {by_name[n] for n in split["files"]["train"]}


def test_a_split_of_other_data_is_refused(synthetic_data, tmp_path):
    split = _split(synthetic_data, tmp_path / "s.json")
    artist_of = _artist_of(synthetic_data)
    names = sorted(artist_of)
    artists = [artist_of[n] for n in names]
    ok = split_indices(split, names, artists)
    assert sum(len(v) for v in ok["indices"].values()) == len(names)
    assert [names[i] for i in ok["indices"]["val"]] == split["files"]["val"]

    moved = json.loads(json.dumps(split))
    moved["files"]["val"].append(moved["files"]["train"].pop())  # a training artist's painting under val
    with pytest.raises(DataError, match="other data"):
        split_indices(moved, names, artists)

    clash = json.loads(json.dumps(split))
    clash["artists"]["val"].append(clash["artists"]["train"][0])
    (tmp_path / "clash.json").write_text(json.dumps(clash))
    with pytest.raises(ArtefactError, match="artist-disjoint"):
        read_split(tmp_path / "clash.json")
