"""Robustness and safety (issue 8): interrupted runs, bad images and data sets, mismatched and untrusted artefacts.

Most commands run in-process through `painterid.cli.main` (the same code path as the shell, without paying a
Python start per call); the interrupted-run test kills a real `painterid embed` process.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import pickle
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from painterid.core.errors import ArtefactError, DataError
from painterid.scoring.loading import load_model

REPO = Path(__file__).resolve().parent.parent
LITE0 = "efficientnet_lite0"

# A made-up embedding: stores and models built from it never load a backbone.
FAKE = {"backbone": LITE0, "weights_id": "package:test", "view": "center", "pool": "style", "n_patches": None,
        "input_size": [3, 224, 224], "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic",
        "crop_pct": 0.875, "dim": 16}


# ----------------------------------------------------------------------------------------------- helpers
def cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """Run `painterid ARGS` in-process; returns (exit status, stdout, stderr)."""
    from painterid import cli as cli_mod

    monkeypatch.setattr(sys, "argv", ["painterid", *map(str, args)])
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it
    with pytest.raises(SystemExit) as exc:
        cli_mod.main()
    cap = capsys.readouterr()
    return exc.value.code, cap.out, cap.err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    progress = re.compile(r"painterid: [\w ]+ \d+/\d+ \w+ \(\d+%")  # lines a non-terminal stderr shows first
    lines = [ln for ln in err.strip().splitlines() if not progress.match(ln)]
    assert len(lines) == 1 and lines[0].startswith("painterid: error:"), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def fake_store(root: Path, artists: list[str], embedding: dict = FAKE, seed: int = 0) -> Path:
    from painterid.store.feature_store import FeatureStore, Row

    store = FeatureStore.create_or_open(root, embedding)
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(len(artists), embedding["dim"])).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    store.append([Row(f"/data/{i}.jpg", f"h{i}", a, f"{i}.jpg") for i, a in enumerate(artists)], v)
    return root


def cosine_model(out: Path, embedding: dict = FAKE) -> Path:
    from painterid.scoring import PairModel, build_head

    PairModel("cosine", embedding, build_head("cosine", embedding["dim"], {})).save(out)
    return out


def siamese_model(out: Path, seed: int, threshold: float = 0.5):
    from painterid.scoring import PairModel, build_head

    torch.manual_seed(seed)
    model = PairModel("siamese", FAKE, build_head("siamese", 16, {"hidden": 8}), {"hidden": 8}, threshold=threshold)
    model.save(out)
    return model


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Evil:
    """Unpickling this creates `marker`: the side effect a model file must never get to cause."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def evil_pickle(marker: Path) -> bytes:
    blob = pickle.dumps({"head.net.0.weight": _Evil(marker)})
    pickle.loads(blob).clear()  # the control: plain unpickling does run it
    assert marker.exists()
    marker.unlink()
    return blob


@pytest.fixture(scope="module")
def lite0_fingerprint() -> dict:
    from painterid.embedding.embedder import Embedder, EmbeddingConfig

    return Embedder(EmbeddingConfig(backbone=LITE0, view="center", pool="style"), num_workers=0).fingerprint


# ----------------------------------------------------------------------------------------- 1. interrupted
def test_killed_embed_resumes_without_recomputing_and_equals_an_uninterrupted_run(tmp_path):
    from painterid.data.synthetic import make_synthetic_dataset
    from painterid.embedding.embedder import Embedder, EmbeddingConfig
    from painterid.embedding.pipeline import embed_data
    from painterid.store.feature_store import FeatureStore

    data = make_synthetic_dataset(tmp_path / "data", n_artists=8, per_artist=4, size=96, seed=11)
    n = 32
    out = tmp_path / "store"
    cmd = [sys.executable, "-m", "painterid.cli", "embed", str(data), "--out", str(out), "--backbone", LITE0, "--view", "center", "--pool", "style",
           "--workers", "0", "--batch-size", "4", "--commit-every", "8"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("shard-*.safetensors")):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no shard was committed"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed, not finished
    shards = sorted(out.glob("shard-*.safetensors"))
    committed = {p.name: digest(p) for s in shards for p in (s, s.with_suffix(".csv"))}
    before = len(FeatureStore.open(out))
    assert 8 <= before < n, before

    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]

    store = FeatureStore.open(out)
    files = sorted(str(p) for p in (data / "train").glob("*.jpg"))
    assert len(store) == n and sorted(store.paths) == files  # every image exactly once
    for name, h in committed.items():  # what was committed before the kill was kept as it was
        assert digest(out / name) == h, name
    assert len(list(out.glob("shard-*.safetensors"))) == len(shards) + (n - before + 7) // 8  # only the rest added

    ref_store, _, failures = embed_data(data, Embedder(EmbeddingConfig(backbone=LITE0, view="center", pool="style"), num_workers=0,
                                                       batch_size=4), tmp_path / "reference")
    assert not failures
    ref = dict(zip(ref_store.paths, ref_store.vectors))
    got = np.stack([ref[p] for p in store.paths])
    np.testing.assert_allclose(store.vectors, got, atol=1e-5)
    assert store.artists == [dict(zip(ref_store.paths, ref_store.artists))[p] for p in store.paths]


def test_store_crash_mid_commit_keeps_committed_rows_and_recovers(tmp_path, monkeypatch):
    import safetensors.numpy

    from painterid.store.feature_store import FeatureStore, Row

    store = FeatureStore.create_or_open(tmp_path / "s", FAKE)
    store.append([Row("a.jpg", "h1", "A")], np.ones((1, 16), np.float32))

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        store.append([Row("b.jpg", "h2", "B")], np.full((1, 16), 2, np.float32))
    monkeypatch.undo()
    assert FeatureStore.open(tmp_path / "s").paths == ["a.jpg"]  # the half-written chunk does not load
    again = FeatureStore.open(tmp_path / "s")
    again.append([Row("c.jpg", "h3", "C")], np.full((1, 16), 3, np.float32))
    back = FeatureStore.open(tmp_path / "s")
    assert back.paths == ["a.jpg", "c.jpg"]
    np.testing.assert_array_equal(back.vectors[:, 0], [1, 3])


def test_model_crash_mid_save_keeps_the_previous_model(tmp_path, monkeypatch):
    import safetensors.numpy

    from painterid.scoring import PairModel, build_head

    out = tmp_path / "model"
    old = siamese_model(out, seed=0, threshold=0.25)
    before = sorted(p.name for p in tmp_path.iterdir())
    new = PairModel("siamese", FAKE, build_head("siamese", 16, {"hidden": 8}), {"hidden": 8}, threshold=0.75)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", boom)  # what PairModel.save writes its arrays with
    with pytest.raises(OSError, match="disk full"):
        new.save(out)
    with pytest.raises(OSError, match="disk full"):
        new.save(tmp_path / "fresh")
    monkeypatch.undo()

    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temporary or half-written sibling
    back = load_model(out)
    assert back.threshold == 0.25
    v = np.random.default_rng(1).normal(size=(6, 16)).astype(np.float32)
    np.testing.assert_allclose(back.scores(v[:3], v[3:]), old.scores(v[:3], v[3:]), rtol=1e-5, atol=1e-7)  # loaded: numpy scoring; in memory: torch

    # a weights file cut short (a copy interrupted by hand) is refused, not half-loaded
    blob = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ArtefactError, match="model.safetensors"):
        load_model(out)


def test_model_save_never_replaces_a_foreign_directory(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ArtefactError, match="not a painterid model"):
        siamese_model(precious, seed=0)
    assert (precious / "notes.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    siamese_model(tmp_path / "empty", seed=0)  # an empty folder is fine
    siamese_model(tmp_path / "empty", seed=1)  # and so is replacing a model


# ----------------------------------------------------------------------------------------- 2. bad images
GOOD = {  # name -> (artist, how it is made)
    "a1.jpg": "Alpha", "café au lait 1.jpg": "Alpha", "cmyk.jpg": "Alpha",
    "b16.png": "Beta", "palette alpha.png": "Beta", "anim.gif": "Beta",
    "g1.jpg": "Gamma", "g2.jpg": "Gamma", "g3.jpg": "Gamma",
}
BAD = {"zero.jpg": "Delta", "trunc.jpg": "Delta", "text.jpg": "Delta"}  # files that fail to decode
NOT_FILES = {"x.jpg": "Delta", "missing.jpg": "Delta"}  # a directory, and a file that is not there


def _noise(seed: int, size=(48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, 3)
    arr = np.clip(base + rng.normal(0, 40, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


@pytest.fixture(scope="module")
def messy_data(tmp_path_factory) -> Path:
    """Kaggle layout holding every odd but valid kind of image and every bad kind of entry."""
    root = tmp_path_factory.mktemp("messy") / "data"
    train = root / "train"
    train.mkdir(parents=True)
    for k, name in enumerate(GOOD):
        im = _noise(k)
        if name == "cmyk.jpg":
            im.convert("CMYK").save(train / name, quality=90)
        elif name == "b16.png":
            Image.fromarray((np.asarray(im.convert("L"), np.uint16) * 257)).save(train / name)  # 16-bit grey
        elif name == "palette alpha.png":
            im.convert("P", palette=Image.ADAPTIVE, colors=16).save(train / name, transparency=0)
        elif name == "anim.gif":
            frames = [_noise(k + 100 * i).convert("P") for i in range(3)]
            frames[0].save(train / name, save_all=True, append_images=frames[1:], duration=80, loop=0)
        else:
            im.save(train / name, quality=90)
    (train / "zero.jpg").write_bytes(b"")
    buf = io.BytesIO()
    _noise(99, (64, 64)).save(buf, "JPEG", quality=90)
    (train / "trunc.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (train / "text.jpg").write_text("this is a shopping list, not a painting\n")
    (train / "x.jpg").mkdir()
    with open(root / "train_info.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["filename", "artist"])
        for name, artist in {**GOOD, **BAD, **NOT_FILES}.items():
            w.writerow([name, artist])
    return root


def test_embed_skips_and_lists_bad_images_and_embeds_the_odd_good_ones(messy_data, tmp_path, monkeypatch, capsys):
    from painterid.store.feature_store import FeatureStore

    out = tmp_path / "store"
    with pytest.warns(UserWarning, match="2 listed file") as rec:  # the directory x.jpg and the missing file
        code, _, err = cli(monkeypatch, capsys, "embed", messy_data, "--out", out, "--backbone", LITE0, "--view", "center", "--pool", "style",
                           "--workers", "0", "--batch-size", "4")
    assert code == 0, err
    assert any("x.jpg" in str(w.message) for w in rec)
    assert f"skipped {len(BAD)} unreadable image(s)" in err
    for name in BAD:
        assert name in err, name
    with open(out / "failures.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(Path(r["path"]).name for r in rows) == sorted(BAD)
    assert all(r["error"] for r in rows)
    store = FeatureStore.open(out)
    assert sorted(r.name for r in store.rows) == sorted(GOOD)  # CMYK, 16-bit, palette+alpha, GIF, unicode name
    assert {r.name: r.artist for r in store.rows} == GOOD
    v = store.vectors
    assert np.isfinite(v).all() and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    assert len({tuple(np.round(x, 4)) for x in v}) == len(GOOD)  # each file its own vector


def test_index_build_and_evaluate_skip_bad_images(messy_data, tmp_path, monkeypatch, capsys):
    store = tmp_path / "store"
    with pytest.warns(UserWarning, match="not found"):
        code, _, err = cli(monkeypatch, capsys, "index", "build", "--data", messy_data, "--out", tmp_path / "ix",
                           "--backbone", LITE0, "--view", "center", "--pool", "style", "--store", store)
    assert code == 0, err
    assert "skipped 3 unreadable image(s)" in err and all(n in err for n in BAD)
    assert f"indexed {len(GOOD)} paintings of 3 artists" in err

    model = cosine_model(tmp_path / "m", json.loads((store / "config.json").read_text())["embedding"])
    with pytest.warns(UserWarning, match="not found"):
        code, out, err = cli(monkeypatch, capsys, "evaluate", "--model", model, "--data", messy_data,
                             "--store", store, "--split", "unseen", "--bootstrap", "0", "--json")
    assert code == 0, err
    assert "skipped 3 unreadable image(s)" in err and "trunc.jpg" in err
    res = json.loads(out)
    assert res["groups"]["unseen"]["n_pos"] == 3 * 3  # three artists with three readable paintings each


@pytest.mark.parametrize("bad", ["zero.jpg", "trunc.jpg"])
def test_compare_on_a_bad_file_is_one_line_exit_2(bad, messy_data, lite0_fingerprint, tmp_path, monkeypatch,
                                                  capsys):
    model = cosine_model(tmp_path / "m", lite0_fingerprint)
    code, _, err = cli(monkeypatch, capsys, "compare", messy_data / "train" / "a1.jpg", messy_data / "train" / bad,
                       "--model", model)
    assert_one_line_error(code, err, bad)


def test_compare_takes_unicode_and_odd_formats(messy_data, lite0_fingerprint, tmp_path, monkeypatch, capsys):
    model = cosine_model(tmp_path / "m", lite0_fingerprint)
    train = messy_data / "train"
    code, out, err = cli(monkeypatch, capsys, "compare", train / "café au lait 1.jpg", train / "anim.gif",
                         train / "b16.png", "--model", model, "--json")
    assert code in (0, 1), err
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert [Path(r["image_a"]).name for r in rows] == ["café au lait 1.jpg"] * 2
    assert all(-1.0 <= r["score"] <= 1.0 for r in rows)


# ----------------------------------------------------------------------------------------- 3. bad data sets
def _kaggle(root: Path, csv_text: str, files=("a.jpg", "b.jpg", "c.jpg")) -> Path:
    (root / "train").mkdir(parents=True, exist_ok=True)
    for k, f in enumerate(files):
        _noise(k, (8, 8)).save(root / "train" / f)
    (root / "train_info.csv").write_text(csv_text, encoding="utf-8")
    return root


def test_csv_problems_are_errors_or_warnings_that_say_what(tmp_path):
    from painterid.data.datasets import discover

    with pytest.raises(DataError, match="missing column.*artist"):
        discover(_kaggle(tmp_path / "nocol", "filename,title\na.jpg,x\n"))
    root = _kaggle(tmp_path / "latin1", "")
    (root / "train_info.csv").write_bytes("filename,artist\na.jpg,C\xe9zanne\n".encode("latin-1"))
    with pytest.raises(DataError, match="UTF-8"):
        discover(root)
    with pytest.warns(UserWarning, match="1 duplicate row") as rec:
        ds = discover(_kaggle(tmp_path / "dups", "filename,artist\na.jpg,A\na.jpg,A\nb.jpg,B\nghost.jpg,B\n"))
    assert any("1 listed file(s) not found" in str(w.message) and "ghost.jpg" in str(w.message) for w in rec)
    assert [f.name for f in ds.files] == ["a.jpg", "b.jpg"] and ds.artists == ["A", "B"]
    ds = discover(_kaggle(tmp_path / "short", "filename,artist\na.jpg\nb.jpg,B\n"))  # a row cut short
    assert ds.artists == ["", "B"]
    with pytest.raises(DataError, match="none of the listed images"):
        discover(_kaggle(tmp_path / "none", "filename,artist\nq.jpg,A\n"))


def test_cli_refuses_a_csv_without_the_artist_column(tmp_path, monkeypatch, capsys):
    data = _kaggle(tmp_path / "d", "filename,title\na.jpg,x\n")
    code, _, err = cli(monkeypatch, capsys, "index", "build", "--data", data, "--out", tmp_path / "ix",
                       "--backbone", LITE0, "--view", "center", "--pool", "style")
    assert_one_line_error(code, err, "missing column", "artist")
    assert not (tmp_path / "ix").exists()


def test_train_and_evaluate_on_single_painting_artists_are_clear_errors(tmp_path, monkeypatch, capsys):
    store = fake_store(tmp_path / "singles", [f"artist{i}" for i in range(20)])
    code, _, err = cli(monkeypatch, capsys, "train", "--data", store, "--out", tmp_path / "m", "--epochs", "2")
    assert_one_line_error(code, err, "same-artist pairs")
    assert not (tmp_path / "m").exists()
    model = cosine_model(tmp_path / "cos")
    for protocol in ("balanced", "natural"):  # natural would otherwise report accuracy ~1 on zero positives
        code, out, err = cli(monkeypatch, capsys, "evaluate", "--model", model, "--data", store, "--protocol",
                             protocol, "--bootstrap", "0")
        assert_one_line_error(code, err, "same artist" if protocol == "balanced" else "same-artist")
        assert "nan" not in (out + err).lower()


def test_training_artists_without_pairs_are_refused():
    from painterid.training.fit import TrainOptions, fit

    rng = np.random.default_rng(0)
    tx, vx = rng.normal(size=(10, 16)).astype(np.float32), rng.normal(size=(8, 16)).astype(np.float32)
    val = ["v0", "v0", "v1", "v1", "v2", "v2", "v3", "v3"]
    for method in ("siamese", "metric"):  # silently a random head / a sampler crash before
        with pytest.raises(DataError, match="two or more training artists"):
            fit(tx, [f"t{i}" for i in range(10)], vx, val, FAKE, TrainOptions(method=method, epochs=1))
    with pytest.raises(DataError, match="validation artists have no same-artist pairs"):
        fit(tx, ["a", "a", "b", "b"] + [f"t{i}" for i in range(6)], vx, [f"v{i}" for i in range(8)], FAKE,
            TrainOptions(method="cosine"))


def test_evaluate_warns_about_a_split_with_one_class_of_pairs():
    from painterid.embedding.pipeline import Labelled
    from painterid.evaluation.run import evaluate_model
    from painterid.scoring import PairModel, build_head

    # seen artists A, B have pairs; the unseen ones are single paintings: unseen pairs are all negatives
    artists = ["A", "A", "A", "B", "B", "B", "u1", "u2", "u3"]
    rng = np.random.default_rng(0)
    v = rng.normal(size=(len(artists), 16)).astype(np.float32)
    lab = Labelled(v / np.linalg.norm(v, axis=1, keepdims=True), artists, [f"{i}" for i in range(9)],
                   [f"h{i}" for i in range(9)], None, FAKE)
    model = PairModel("cosine", FAKE, build_head("cosine", 16, {}), artists={"train": ["A", "B"], "val": [],
                                                                             "test": []})
    with pytest.warns(UserWarning, match="unseen: all 3 test pairs are different-artist pairs"):
        res = evaluate_model(model, lab, protocol="natural", n_boot=0)
    assert res["groups"]["unseen"]["auc"] is None and res["groups"]["seen"]["auc"] is not None
    with pytest.raises(DataError, match="no test pairs"):
        evaluate_model(model, lab, split="unseen", protocol="balanced", n_boot=0)


_CELLS = st.sampled_from(["filename", "artist", "new_filename", "in_train", "image1", "image2", "same", "a.jpg",
                          "b.jpg", "c.jpg", "train/a.jpg", "1", "0", "yes", "maybe", "", " ", '"', "\ufeff", "é",
                          "\x00", "..", "/etc/passwd", "a.jpg,b.jpg", "\r"])
_STRUCTURED = st.lists(st.lists(_CELLS, max_size=5).map(",".join), max_size=6).map(lambda ls: "\n".join(ls).encode())
_CSV_BYTES = st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda s: s.encode("utf-8", "replace")),
                       _STRUCTURED, _STRUCTURED.map(lambda b: b.decode().encode("utf-16")))


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory) -> Path:
    return _kaggle(tmp_path_factory.mktemp("fuzz") / "data", "")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=_CSV_BYTES, name=st.sampled_from(["train_info.csv", "all_data_info.csv"]))
def test_fuzz_dataset_csv_reader(fuzz_root, content, name):
    from painterid.data.datasets import discover

    for f in ("train_info.csv", "all_data_info.csv"):
        (fuzz_root / f).unlink(missing_ok=True)
    (fuzz_root / name).write_bytes(content)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = discover(fuzz_root)
    except DataError as exc:
        assert str(exc)
        return
    assert len(ds.files) == len(ds.artists) == len(ds.names) > 0
    assert all(f.is_file() for f in ds.files) and all(isinstance(a, str) for a in ds.artists)
    assert len(set(ds.names)) == len(ds.names)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=_CSV_BYTES)
def test_fuzz_pairs_csv_reader(fuzz_root, content):
    from painterid.data.pairs import read_pairs_csv

    path = fuzz_root / "pairs.csv"
    path.write_bytes(content)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pairs = read_pairs_csv(path, {"a.jpg": 0, "b.jpg": 1, "c.jpg": 2})
    except DataError:
        return
    assert pairs.dtype == np.int64 and pairs.ndim == 2 and pairs.shape[1] == 3
    assert ((pairs[:, :2] >= 0) & (pairs[:, :2] <= 2)).all() and np.isin(pairs[:, 2], [-1, 0, 1]).all()
    assert (pairs[:, 0] != pairs[:, 1]).all()


# ----------------------------------------------------------------------------------------- 4. mismatch
def test_evaluate_refuses_a_store_made_with_another_backbone(tmp_path, monkeypatch, capsys):
    store = fake_store(tmp_path / "s", ["A", "A", "B", "B", "C", "C"], dict(FAKE, backbone="efficientnet_lite1"))
    model = cosine_model(tmp_path / "m")
    code, _, err = cli(monkeypatch, capsys, "evaluate", "--model", model, "--data", store)
    assert_one_line_error(code, err, "backbone", "efficientnet_lite1", LITE0, "painterid embed --backbone")


def test_identify_refuses_an_index_whose_embedding_this_machine_cannot_reproduce(messy_data, lite0_fingerprint,
                                                                                 tmp_path, monkeypatch, capsys):
    from painterid.tasks.index import ArtistIndex

    other = dict(lite0_fingerprint, weights_id="file:someone-elses-finetune")
    v = np.random.default_rng(0).normal(size=(6, lite0_fingerprint["dim"])).astype(np.float32)
    ArtistIndex.build(v, [f"{i}.jpg" for i in range(6)], list("AABBCC"), other).save(tmp_path / "ix")
    code, _, err = cli(monkeypatch, capsys, "identify", messy_data / "train" / "a1.jpg", "--index", tmp_path / "ix")
    assert_one_line_error(code, err, "weights_id", "someone-elses-finetune")


def test_newer_format_versions_are_refused_with_upgrade_advice(tmp_path, monkeypatch, capsys):
    from painterid.scoring import PairModel
    from painterid.store.feature_store import FeatureStore
    from painterid.tasks.index import ArtistIndex

    store = fake_store(tmp_path / "s", ["A", "A", "B", "B"])
    model = cosine_model(tmp_path / "m")
    v = np.random.default_rng(0).normal(size=(4, 16)).astype(np.float32)
    ArtistIndex.build(v, list("abcd"), list("AABB"), FAKE).save(tmp_path / "ix")
    for d in (store, model, tmp_path / "ix"):
        cfg = json.loads((d / "config.json").read_text())
        cfg["format_version"] += 1
        (d / "config.json").write_text(json.dumps(cfg))
    for load, d in ((FeatureStore.open, store), (PairModel.load, model), (ArtistIndex.load, tmp_path / "ix")):
        with pytest.raises(ArtefactError, match="upgrade painterid"):
            load(d)
    code, _, err = cli(monkeypatch, capsys, "evaluate", "--model", tmp_path / "m", "--data", store)
    assert_one_line_error(code, err, "upgrade painterid")
    cosine_model(tmp_path / "m2")
    code, _, err = cli(monkeypatch, capsys, "evaluate", "--model", tmp_path / "m2", "--data", store)
    assert_one_line_error(code, err, "upgrade painterid", str(store))


# ----------------------------------------------------------------------------------------- 5. untrusted
def test_a_pickle_posing_as_model_weights_is_refused_without_running(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "pwned-model"
    model = tmp_path / "m"
    siamese_model(model, seed=0)  # a head with weights, so model.safetensors is read
    (model / "model.safetensors").write_bytes(evil_pickle(marker))
    a = tmp_path / "a.jpg"
    _noise(0).save(a)
    code, _, err = cli(monkeypatch, capsys, "compare", a, a, "--model", model)
    assert_one_line_error(code, err, "model.safetensors")
    assert not marker.exists()


def test_a_pickle_posing_as_a_faiss_index_is_refused_without_running(tmp_path, monkeypatch, capsys):
    from painterid.tasks.index import ArtistIndex

    marker = tmp_path / "pwned-index"
    v = np.random.default_rng(0).normal(size=(4, 16)).astype(np.float32)
    ArtistIndex.build(v, list("abcd"), list("AABB"), FAKE).save(tmp_path / "ix")
    (tmp_path / "ix" / "index.faiss").write_bytes(evil_pickle(marker))
    with pytest.raises(ArtefactError, match="index.faiss"):
        ArtistIndex.load(tmp_path / "ix")
    a = tmp_path / "a.jpg"
    _noise(0).save(a)
    code, _, err = cli(monkeypatch, capsys, "identify", a, "--index", tmp_path / "ix")
    assert_one_line_error(code, err, "index.faiss")
    assert not marker.exists()


def test_a_pickle_passed_as_weights_is_refused_without_running(messy_data, tmp_path, monkeypatch, capsys):
    marker = tmp_path / "pwned-weights"
    evil_pickle(marker)  # the control
    weights = tmp_path / "x.pth"
    torch.save({"state_dict": {"conv_stem.weight": _Evil(marker)}}, weights)  # the zip format torch.load reads
    code, _, err = cli(monkeypatch, capsys, "embed", messy_data, "--out", tmp_path / "store", "--backbone", LITE0, "--view", "center", "--pool", "style",
                       "--weights", weights, "--workers", "0")
    assert_one_line_error(code, err, "x.pth", "refused")
    assert not marker.exists()
    assert not (tmp_path / "store").exists()
