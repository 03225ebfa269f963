"""finetune and cnn: the backbone itself trained from image files, saved inside the (movable) model directory.

CPU, tiny: 8 generated artists x 5 paintings at 96 px, 64 px inputs, 2-3 epochs.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from painterid.cli import app, main
from painterid.core.errors import ArtefactError, DataError, PainterIDError
from painterid.embedding.embedder import EmbeddingConfig
from painterid.scoring.loading import load_model
from painterid.training import TrainOptions, train_from_images

SIZE = 64
LAST_STAGE = {"blocks.5", "blocks.6", "conv_head", "bn2"}  # EfficientNet-Lite0 after its stride-16 map


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: on a small shared CPU, OpenMP threads waiting on each other cost more than they give."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from painterid.data.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("ftdata") / "data", n_artists=8, per_artist=5, size=96,
                                  seed=3)


def _move(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(dst))
    assert not src.exists()
    return dst


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, data) -> Path:
    """`painterid train --method finetune`, then the model directory moved elsewhere."""
    where = tmp_path_factory.mktemp("ft")
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--out", str(where / "trained" / "ft"),
                                   "--method", "finetune", "--backbone", "efficientnet_lite0", "--view", "center", "--pool", "gap",
                                   "--input-size", str(SIZE), "--epochs", "2", "--batch-size", "8",
                                   "--val-artists", "0.25", "--test-artists", "0.25"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "saved" in res.stderr and "finetune" in res.stderr
    return _move(where / "trained" / "ft", where / "elsewhere" / "moved-ft")


def _train_cnn(data: Path, out: Path) -> list[dict]:
    _, history, _ = train_from_images(
        data, out, TrainOptions(method="cnn", epochs=3, batch_size=8, seed=0),
        EmbeddingConfig(backbone="cnn_baseline", view="center", pool="gap", input_size=SIZE), val=0.25, test=0.25, num_workers=0)
    return history


@pytest.fixture(scope="module")
def cnn(tmp_path_factory, data) -> tuple[Path, list[dict]]:
    where = tmp_path_factory.mktemp("cnn")
    history = _train_cnn(data, where / "trained" / "cnn")
    return _move(where / "trained" / "cnn", where / "elsewhere" / "moved-cnn"), history


def _by_artist(data: Path) -> dict[str, list[Path]]:
    by: dict[str, list[Path]] = {}
    for r in csv.DictReader(open(data / "train_info.csv")):
        by.setdefault(r["artist"], []).append(data / "train" / r["filename"])
    return by


def test_finetune_model_directory_holds_its_backbone(finetuned):
    for f in ("config.json", "backbone.safetensors", "curves.png", "MODEL_CARD.md", "training_set.csv"):
        assert (finetuned / f).is_file(), f
    emb = json.loads((finetuned / "config.json").read_text())["embedding"]
    digest = hashlib.sha256((finetuned / "backbone.safetensors").read_bytes()).hexdigest()[:16]
    assert emb["weights_file"] == "backbone.safetensors"  # relative: the directory moves with it
    assert emb["weights_id"] == f"file:sha256:{digest}"
    assert emb["backbone"] == "efficientnet_lite0" and emb["input_size"] == [3, SIZE, SIZE]
    model = load_model(finetuned)
    assert model.method == "finetune" and model.root == finetuned
    assert model.info["training"]["unfrozen_modules"] == ["blocks.5", "blocks.6", "conv_head", "bn2"]


def test_finetune_changes_only_the_last_stage(finetuned):
    from safetensors.torch import load_file

    from painterid.embedding.factory import create_backbone

    pretrained = create_backbone("efficientnet_lite0")[0].state_dict()
    tuned = load_file(str(finetuned / "backbone.safetensors"))
    assert set(tuned) == set(pretrained)
    changed = {k for k in pretrained if not torch.equal(pretrained[k], tuned[k])}
    top = {".".join(k.split(".")[:2]) if k.startswith("blocks.") else k.split(".")[0] for k in changed}
    assert top <= LAST_STAGE, top - LAST_STAGE  # everything before the last stage is frozen, BN statistics too
    assert any(k.startswith("blocks.6.") and k.endswith("weight") for k in changed)
    assert "conv_head.weight" in changed  # gap pooling reads conv_head, so it trains
    assert "classifier.weight" not in changed and "conv_stem.weight" not in changed


def test_cnn_trains_from_random_init(cnn):
    path, history = cnn
    model = load_model(path)
    assert model.method == "cnn" and model.embedding["backbone"] == "cnn_baseline"
    assert model.embedding["weights_id"].startswith("file:sha256:")  # its own trained file, never a package
    assert (path / "backbone.safetensors").is_file() and (path / "model.safetensors").is_file()
    assert [h["epoch"] for h in history] == [1, 2, 3] and all("val_loss" in h for h in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert 1 <= model.info["best_epoch"] <= 3


def test_cnn_training_is_reproducible(cnn, data, tmp_path):
    path, history = cnn
    again = _train_cnn(data, tmp_path / "again")
    assert again == history
    assert (tmp_path / "again" / "backbone.safetensors").read_bytes() == (path / "backbone.safetensors").read_bytes()
    a, b = (json.loads((p / "config.json").read_text()) for p in (path, tmp_path / "again"))
    assert a["threshold"] == b["threshold"] and a["artists"] == b["artists"]


@pytest.mark.parametrize("which", ["finetune", "cnn"])
def test_compare_and_evaluate_load_the_moved_model(which, finetuned, cnn, data):
    from painterid.embedding.embedder import Embedder
    from painterid.tasks.compare import embed_paths

    path = finetuned if which == "finetune" else cnn[0]
    model = load_model(path)
    by = _by_artist(data)
    a, b = model.artists["test"][:2]
    runner = CliRunner()
    res = runner.invoke(app, ["compare", str(by[a][0]), str(by[a][1]), str(by[b][0]), "--model", str(path),
                              "--json"], catch_exceptions=False)
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == 2 and all(0.0 <= r["probability"] <= 1.0 and r["method"] == which for r in rows)

    # the vectors come from the model's own backbone file, not the registry's weights
    vec = embed_paths([by[a][0]], model.embedding, base_dir=path)
    own = Embedder(EmbeddingConfig(model.embedding["backbone"], view="center", pool="gap", input_size=SIZE,
                                   weights=str(path / "backbone.safetensors")), num_workers=0)
    mine = own.embed_files([by[a][0], by[a][1], by[b][0]])[0]
    assert torch.allclose(torch.from_numpy(vec), torch.from_numpy(mine[:1]), atol=1e-5)
    # the scores, verdicts and exit status compare printed are those of the moved model on its own backbone's
    # vectors, computed here without compare: scores of the registry's backbone, or a verdict against another
    # threshold, or an exit status that ignores the verdicts, fail
    scores = model.scores(mine[[0, 0]], mine[[1, 2]])
    np.testing.assert_allclose([r["score"] for r in rows], scores, atol=1e-4)
    verdicts = [bool(s >= model.threshold) for s in scores]
    assert [r["same_artist"] for r in rows] == verdicts and rows[0]["threshold"] == model.threshold
    assert res.exit_code == (0 if all(verdicts) else 1)

    res = runner.invoke(app, ["evaluate", "--model", str(path), "--data", str(data), "--json", "--bootstrap", "0"],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    groups = json.loads(res.stdout)["groups"]
    assert groups["unseen"]["n_pairs"] > 0 and groups["unseen"]["n_pos"] == groups["unseen"]["n_neg"]


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickled_backbone_is_refused(cnn, tmp_path, monkeypatch, capsys, data):
    model_dir = tmp_path / "evil-model"
    shutil.copytree(cnn[0], model_dir)
    marker = tmp_path / "pwned"
    torch.save({"conv1.0.weight": _Evil(marker)}, model_dir / "backbone.safetensors")
    with pytest.raises(ArtefactError, match="safetensors"):
        load_model(model_dir)
    image = next(iter(_by_artist(data).values()))[0]
    monkeypatch.setattr(sys, "argv", ["painterid", "compare", str(image), str(image), "--model", str(model_dir)])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("painterid: error:") and len(err.splitlines()) == 1 and "safetensors" in err
    assert not marker.exists()
    (model_dir / "backbone.safetensors").unlink()
    with pytest.raises(ArtefactError, match="missing"):
        load_model(model_dir)


def test_train_from_images_refuses_stores_and_bad_options(tmp_path, data, monkeypatch, capsys):
    store = tmp_path / "store"
    store.mkdir()
    (store / "config.json").write_text(json.dumps({"kind": "painterid.feature-store"}))
    monkeypatch.setattr(sys, "argv", ["painterid", "train", "--data", str(store), "--out", str(tmp_path / "m"),
                                      "--method", "finetune"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2 and "not the feature store" in capsys.readouterr().err
    with pytest.raises(DataError, match="image files"):
        train_from_images(store, tmp_path / "m", TrainOptions(method="cnn"))
    with pytest.raises(PainterIDError, match="random initialisation"):
        train_from_images(data, tmp_path / "m", TrainOptions(method="cnn"),
                          EmbeddingConfig(backbone="cnn_baseline", view="center", weights=str(tmp_path / "w.safetensors")))
    assert not (tmp_path / "m").exists()


def test_explain_on_a_moved_finetune_model_uses_its_own_backbone(finetuned, data, tmp_path):
    """explain rebuilds the embedder like compare (embedding.embedder_for): the model's backbone.safetensors,
    resolved against the moved model directory; its pair score is compare's."""
    from painterid.tasks.compare import compare_files
    from painterid.tasks.explain import explain_pair

    by = _by_artist(data)
    model = load_model(finetuned)
    a = model.artists["test"][0]
    r = explain_pair(by[a][0], by[a][1], finetuned, out=tmp_path / "heat.png", device="cpu")
    assert (tmp_path / "heat.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ref = compare_files(by[a][0], [by[a][1]], finetuned, device="cpu")[0]
    assert abs(r["score"] - ref["score"]) < 1e-4
