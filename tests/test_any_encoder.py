"""Bring your own encoder: any timm model (`timm:NAME`) or timm hub repo (`hf-hub:ORG/REPO`) as the backbone.

Tiny timm test models (`test_resnet`, `test_vit`: < 0.5 M parameters, 160 px) with random weights saved to files
go through embed, train, compare, benchmark and the ONNX path; the hub is stubbed (no network)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from painterid.cli import app
from painterid.core.errors import PainterIDError, WeightsUnavailable
from painterid.core.io import config_differences
from painterid.embedding import weights as weights_mod
from painterid.embedding.backbones import get_spec
from painterid.embedding.embedder import Embedder, EmbeddingConfig
from painterid.embedding.factory import create_backbone
from tests.hubstub import put_in_hf_cache

CNN, VIT = "timm:test_resnet", "timm:test_vit"


def _save(arch: str, path: Path, seed: int) -> Path:
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = timm.create_model(arch)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("weights")
    return {CNN: _save("test_resnet", root / "cnn.safetensors", 1), VIT: _save("test_vit", root / "vit.safetensors", 2)}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from painterid.data.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("byo") / "data", n_artists=8, per_artist=3, size=96, seed=5)


def _run(*args):
    res = CliRunner().invoke(app, [str(a) for a in args])
    return res, (res.stderr if hasattr(res, "stderr") else res.output)


def _one_line_error(monkeypatch, capsys, *args) -> str:
    """Run `painterid ARGS` in-process through main(); it must exit 2 with one line on stderr."""
    import sys
    import warnings

    from painterid import cli as cli_mod

    monkeypatch.setattr(sys, "argv", ["painterid", *map(str, args)])
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it
    with pytest.raises(SystemExit) as exc:
        cli_mod.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("painterid: error: "), err
    return lines[0]


def test_fingerprint_records_timm_name_tag_sha_and_preprocessing(files):
    emb = Embedder(EmbeddingConfig(backbone=VIT, weights=str(files[VIT]), view="center", pool="cls"), num_workers=0)
    fp = emb.fingerprint
    assert fp["timm_name"] == "test_vit.r160_in1k" and fp["pretrained_tag"] == "r160_in1k"
    assert fp["weights_sha256"] == hashlib.sha256(files[VIT].read_bytes()).hexdigest()
    assert fp["pool"] == "cls" and fp["input_size"] == [3, 160, 160] and fp["crop_mode"] == "center"
    assert fp["dim"] == 64  # test_vit's width
    # Another weights file of the same model is another embedding; an artefact made before these keys still loads.
    other = {**dict(fp), "weights_sha256": "0" * 64}
    assert config_differences(dict(fp), other) == ["weights_sha256"]
    old = {k: v for k, v in dict(fp).items() if k not in ("timm_name", "weights_sha256", "crop_mode")}
    assert config_differences(dict(fp), old) == []


def test_transformer_poolings_are_the_class_token_and_the_mean_of_patch_tokens(files):
    from painterid.embedding.features import FeatureExtractor

    model, _ = create_backbone(VIT, weights=files[VIT])
    x = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        tokens = model.forward_features(x)
        cls, mean = FeatureExtractor(model, "cls")(x), FeatureExtractor(model, "tokens")(x)
    prefix = model.num_prefix_tokens
    assert prefix >= 1
    torch.testing.assert_close(cls, tokens[:, 0])
    torch.testing.assert_close(mean, tokens[:, prefix:].mean(1))
    assert not torch.allclose(cls, mean)
    cnn, _ = create_backbone(CNN, weights=files[CNN])
    with pytest.raises(PainterIDError, match="class token"):
        FeatureExtractor(cnn, "cls")


def test_a_fixed_size_vit_runs_the_patches_view_at_another_size_through_dynamic_img_size(tmp_path):
    from PIL import Image

    name = "timm:test_vit3"  # a fixed input size (timm's test_vit is already dynamic)
    path = _save("test_vit3", tmp_path / "vit3.safetensors", 0)
    img = Image.fromarray((np.random.default_rng(0).random((200, 300, 3)) * 255).astype("uint8"))
    native = Embedder(EmbeddingConfig(backbone=name, weights=str(path), view="center"), num_workers=0)
    assert not native.extractor.model.dynamic_img_size and native.fingerprint["input_size"] == [3, 160, 160]
    emb = Embedder(EmbeddingConfig(backbone=name, weights=str(path), view="patches", n_patches=3, input_size=96),
                   num_workers=0)
    assert emb.fingerprint["input_size"] == [3, 96, 96] and emb.extractor.model.dynamic_img_size
    vec = emb.embed_images([img])
    assert vec.shape == (1, native.dim) and np.isfinite(vec).all()


@pytest.mark.parametrize("name", [CNN, VIT])
def test_embed_train_compare_end_to_end(name, files, data, tmp_path):
    store, model = tmp_path / "store", tmp_path / "model"
    res, err = _run("embed", data, "--out", store, "--backbone", name, "--weights", files[name], "--view", "center",
                    "--runtime", "torch")
    assert res.exit_code == 0, res.output
    assert json.loads((store / "config.json").read_text())["embedding"]["timm_name"] == get_spec(name).timm_name + (
        ".r160_in1k")
    res, err = _run("train", "--data", store, "--out", model, "--epochs", "1")
    assert res.exit_code == 0, res.output
    card = json.loads((model / "config.json").read_text())
    assert card["embedding"]["backbone"] == name
    assert card["embedding"]["weights_sha256"] == hashlib.sha256(files[name].read_bytes()).hexdigest()
    imgs = sorted((data / "train").glob("*.jpg"))[:2]
    res, err = _run("compare", imgs[0], imgs[1], "--model", model, "--json", "--runtime", "torch")
    assert res.exit_code in (0, 1), res.output
    row = json.loads(res.stdout.strip().splitlines()[-1])
    assert np.isfinite(row["score"]) and (row["same_artist"] == (res.exit_code == 0))


@pytest.mark.parametrize("name,pool", [(CNN, "gap"), (VIT, "cls"), (VIT, "tokens")])
def test_onnx_export_agrees_with_torch(name, pool, files, monkeypatch, tmp_path):
    pytest.importorskip("onnxruntime")
    from PIL import Image

    from painterid.embedding.runtime import OnnxEmbedder, export_request, make_embedder

    monkeypatch.setenv("PAINTERID_CACHE", str(tmp_path / "cache"))
    req = export_request(name, "patches", pool, 3, str(files[name]), None)
    onnx, torch_ = make_embedder(req, runtime="onnx"), make_embedder(req, runtime="torch")
    assert isinstance(onnx, OnnxEmbedder)
    rng = np.random.default_rng(1)
    imgs = [Image.fromarray((rng.random((180, 240, 3)) * 255).astype("uint8")) for _ in range(2)]
    a, b = onnx.embed_images(imgs), torch_.embed_images(imgs)
    assert np.abs(a - b).max() <= 1e-5
    assert onnx.fingerprint["weights_sha256"] == torch_.fingerprint["weights_sha256"]


def test_auto_falls_back_to_torch_and_says_so_once(files, monkeypatch, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from painterid.embedding import onnx_export
    from painterid.embedding.embedder import Embedder as TorchEmbedder
    from painterid.embedding.runtime import export_request, make_embedder

    monkeypatch.setenv("PAINTERID_CACHE", str(tmp_path / "cache"))

    def refuse(*a, **k):
        raise onnx_export.ExportError("backbone 'timm:test_vit' does not export to ONNX (stub)")

    monkeypatch.setattr(onnx_export, "export", refuse)
    req = export_request(VIT, "center", "gap", None, str(files[VIT]), None)
    first, second = make_embedder(req, runtime="auto"), make_embedder(req, runtime="auto")
    assert isinstance(first, TorchEmbedder) and isinstance(second, TorchEmbedder)
    said = [ln for ln in capsys.readouterr().err.splitlines() if "does not export" in ln]
    assert len(said) == 1 and "torch embeds it instead" in said[0]


def test_benchmark_ranks_a_cnn_and_a_vit_and_names_the_commands(files, data, tmp_path):
    png, out = tmp_path / "bench.png", tmp_path / "bench.json"
    res, err = _run("benchmark", "--data", data, "--backbone", CNN, "--backbone", VIT,
                    "--weights", f"{CNN}={files[CNN]}", "--weights", f"{VIT}={files[VIT]}", "--view", "center",
                    "--seeds", "1", "--epochs", "1", "--out", out, "--plot", png, "--json")
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert [r["backbone"] for r in result["encoders"]] == [CNN, VIT]
    assert [r["dim"] for r in result["encoders"]] == [96, 64]
    for r in result["encoders"]:
        assert set(r["auc"]) == {"random.default", "random.head"}  # no sources.csv: no leave-one-source-out
        assert r["auc"]["random.default"]["n"] == 1 and 0.0 <= r["auc"]["random.default"]["mean"] <= 1.0
        assert r["s_per_image"] > 0 and r["weights_mb"] > 0 and r["images"] == 24
    means = {(r["backbone"], s): np.mean([r["auc"][f"random.{s}"]["mean"]]) for r in result["encoders"]
             for s in ("default", "head")}
    best = result["best"]
    assert means[(best["backbone"], best["scoring"])] == pytest.approx(max(means.values()))
    assert best["commands"][0].startswith(f"painterid train --data {data} --backbone {best['backbone']}")
    assert "painterid cohort set" in best["commands"][1]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(res.stdout)["best"] == best


def test_set_auc_column_only_when_the_rows_have_it():
    from painterid.evaluation.benchmark_report import table

    row = {"backbone": "x", "pool": "gap", "auc": {"random.default": {"mean": 0.7, "std": 0.0, "n": 1}},
           "s_per_image": 0.1, "dim": 8, "weights_mb": 1.0, "rss_mb": 10.0}
    assert "set AUC K=3" not in table({"encoders": [row]})[0]
    row["set_auc_k3"] = {"random.default": {"mean": 0.9, "std": 0.0, "n": 1}}
    head, rows = table({"encoders": [row]})
    assert rows[0][head.index("set AUC K=3")] == "0.900 ± 0.000"


# ------------------------------------------------------------------------------------------ bad input, hub


def test_unknown_timm_name_lists_close_matches(monkeypatch, capsys, tmp_path):
    line = _one_line_error(monkeypatch, capsys, "embed", tmp_path, "--out", tmp_path / "s", "--backbone",
                           "timm:resnet10x")
    assert "unknown timm model 'resnet10x'" in line and "resnet10t" in line
    line = _one_line_error(monkeypatch, capsys, "embed", tmp_path, "--out", tmp_path / "s", "--backbone",
                           "timm:test_resnet.nosuchtag")
    assert "unknown pretrained tag 'nosuchtag'" in line and "test_resnet.r160_in1k" in line


def test_a_weights_file_that_does_not_fit_names_the_first_mismatched_key(files, data, tmp_path, monkeypatch,
                                                                          capsys):
    line = _one_line_error(monkeypatch, capsys, "embed", data, "--out", tmp_path / "s", "--backbone", CNN,
                           "--weights", files[VIT], "--runtime", "torch")
    assert "do not fit backbone 'timm:test_resnet'" in line and "first mismatched key: 'conv1.0.weight' missing from the file" in line


def test_a_hub_name_offline_is_one_line_naming_where_it_looked_and_the_fetch_command(data, tmp_path, monkeypatch,
                                                                                     capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    line = _one_line_error(monkeypatch, capsys, "embed", data, "--out", tmp_path / "s", "--backbone",
                           "timm:test_resnet.r160_in1k", "--runtime", "torch")
    assert "timm:test_resnet.r160_in1k" in line and str(tmp_path / "hf" / "models--timm--test_resnet.r160_in1k") in line
    assert "painterid backbones --pull timm:test_resnet.r160_in1k" in line
    line = _one_line_error(monkeypatch, capsys, "embed", data, "--out", tmp_path / "s", "--backbone",
                           "hf-hub:someone/tiny-vit", "--runtime", "torch")
    assert "hf-hub:someone/tiny-vit" in line and "models--someone--tiny-vit" in line


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """Online, an empty HF cache, and hf_hub_download replaced by a stub hub serving test_vit's weights and config
    (written as a real snapshot: blobs/ named by SHA-256, a symlink in snapshots/)."""
    import timm
    from safetensors.torch import save_file

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(weights_mod, "_check_host", lambda url: None)
    torch.manual_seed(4)
    served = timm.create_model("test_vit").state_dict()
    calls = []

    def download(repo_id, filename, *, revision=None, cache_dir=None, **kw):
        calls.append((repo_id, filename))
        src = tmp_path / f"upload-{filename}"
        if filename == "config.json":
            src.write_text(json.dumps({"architecture": "test_vit", "num_classes": 1000,
                                       "pretrained_cfg": {"input_size": [3, 160, 160], "mean": [0.5] * 3,
                                                          "std": [0.5] * 3, "crop_pct": 0.9}}))
        else:
            save_file({k: v.contiguous() for k, v in served.items()}, str(src))
        return put_in_hf_cache(cache_dir, repo_id, filename, src.read_bytes())

    monkeypatch.setattr("huggingface_hub.hf_hub_download", download)
    return calls, served


@pytest.mark.parametrize("name,repo", [("timm:test_vit.r160_in1k", "timm/test_vit.r160_in1k"),
                                       ("hf-hub:someone/tiny-vit", "someone/tiny-vit")])
def test_first_use_fetches_a_timm_or_hub_repo_encoder_into_the_standard_cache(fake_hub, name, repo):
    calls, served = fake_hub
    model, cfg = create_backbone(name)
    assert (repo, "model.safetensors") in calls
    for k, v in served.items():
        assert torch.equal(model.state_dict()[k], v), k
    assert model.painterid_weights_id.startswith(f"hub:{repo}/model.safetensors#sha256=")
    n = len(calls)
    create_backbone(name)  # second use: from the cache
    assert len(calls) == n
    if name.startswith("hf-hub:"):
        assert cfg["crop_pct"] == 0.9 and get_spec(name).hub_repo == repo


def test_fetch_failure_without_network_is_weights_unavailable(fake_hub, monkeypatch):
    def no_net(url):
        raise weights_mod._NoNetwork("no network: cannot resolve huggingface.co")

    monkeypatch.setattr(weights_mod, "_check_host", no_net)
    with pytest.raises(WeightsUnavailable, match="painterid backbones --pull timm:test_resnet.r160_in1k"):
        create_backbone("timm:test_resnet.r160_in1k")


def test_backbones_pull_fetches_a_timm_name_and_prints_its_hash(fake_hub):
    calls, _ = fake_hub
    res = CliRunner().invoke(app, ["backbones", "--pull", "timm:test_vit.r160_in1k"])
    assert res.exit_code == 0, res.output
    assert calls == [("timm/test_vit.r160_in1k", "model.safetensors")]
    blob = next((Path(weights_mod._hf_cache_dir()) / "models--timm--test_vit.r160_in1k" / "blobs").iterdir())
    assert hashlib.sha256(blob.read_bytes()).hexdigest() in res.output
