"""`create_backbone`: the one factory. A backbone of the registry built with timm and loaded with its weights
(:mod:`painterid.embedding.weights`), with the data config timm derives from the model; `describe` without weights.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from painterid.core.errors import PainterIDError, WeightsUnavailable
from painterid.embedding.backbones import BackboneSpec, get_spec
from painterid.embedding.weights import (
    WeightsSource,
    _first_line,
    _map_state_dict,
    _missing,
    _read_state_dict,
    fetch_weights,
    find_weights,
    hub_model_config,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """HF_HUB_OFFLINE=1 for the duration (env and huggingface_hub's cached constant)."""
    old_env = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = None
    old_const = None
    try:
        import huggingface_hub.constants as constants  # type: ignore[no-redef]

        old_const = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = True
    except Exception:  # noqa: BLE001 - huggingface_hub is optional
        constants = None
    try:
        yield
    finally:
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env
        if constants is not None:
            constants.HF_HUB_OFFLINE = old_const


def _create(spec: BackboneSpec, overlay: dict[str, Any] | None = None, pretrained: bool = False):
    import timm

    cfg = {**dict(spec.cfg_overrides), **(overlay or {})}
    arch, kwargs = spec.timm_name, dict(spec.model_kwargs)
    if spec.hub_repo:  # hf-hub:ORG/REPO: the architecture and its preprocessing come from the repo's config.json
        hub = hub_model_config(spec.name)
        arch = hub["architecture"]
        cfg = {**(hub.get("pretrained_cfg") or {}), **cfg}
        kwargs = {**(hub.get("model_args") or {}), "num_classes": hub.get("num_classes", 0), **kwargs}
    with _offline():
        return timm.create_model(arch, pretrained=pretrained, pretrained_cfg_overlay=cfg or None, **kwargs)


def timm_record(model, spec: BackboneSpec) -> dict:
    """What a fingerprint records of a timm model: its architecture and pretrained tag."""
    pcfg = getattr(model, "pretrained_cfg", None) or {}
    arch = pcfg.get("architecture") or spec.architecture
    tag = pcfg.get("tag") or spec.pretrained_tag
    return {"timm_name": f"{arch}.{tag}" if tag else arch, "pretrained_tag": tag}


def _fixed_vit_size(model) -> tuple[int, int] | None:
    """A transformer's fixed input size (H, W), or None (a CNN, or a ViT built with ``dynamic_img_size``)."""
    pe = getattr(model, "patch_embed", None)
    if pe is None or getattr(model, "dynamic_img_size", False) or getattr(pe, "img_size", None) is None:
        return None
    size = pe.img_size
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def create_backbone_at(name: str, weights: str | Path | None, input_size: int | None) -> tuple[torch.nn.Module, dict]:
    """:func:`create_backbone` run at ``input_size`` px: a transformer with a fixed input size of another size is
    built again with timm's ``dynamic_img_size=True`` (position embeddings resampled to the input), or refused in
    one line where timm does not offer it; CNNs run at any size as they are."""
    model, cfg = create_backbone(name, weights=weights)
    fixed = _fixed_vit_size(model)
    if input_size and fixed is not None and fixed != (int(input_size), int(input_size)):
        spec = get_spec(name)
        try:
            model, cfg = create_backbone(replace(spec, model_kwargs=(*spec.model_kwargs, ("dynamic_img_size", True))),
                                         weights=weights)
        except TypeError:
            raise PainterIDError(f"backbone '{spec.name}' runs only at {fixed[0]}x{fixed[1]} px and timm offers no "
                                 f"dynamic size for it; drop --input-size {input_size}") from None
    return model, cfg


def create_backbone(
    name: str, weights: str | Path | None = None, pretrained: bool = True
) -> tuple[torch.nn.Module, dict]:
    """Build backbone ``name`` with its weights; returns ``(model, data_config)``.

    The model is timm's, in eval mode, with its classifier kept.  ``data_config`` is timm's plain dict
    (input_size, mean, std, interpolation, crop_pct, crop_mode) from ``resolve_model_data_config``.
    ``model.painterid_weights_id`` holds :func:`weights_id` of what was loaded.
    ``pretrained=False`` (explicitly) gives a random initialisation; otherwise missing weights raise
    :class:`WeightsUnavailable`.
    """
    import timm.data

    spec = get_spec(name)
    if not pretrained:
        if weights is not None:
            raise PainterIDError("a weights file was given with pretrained=False; drop one of them")
        model = _create(spec)
        wid = "random"
    else:
        src = find_weights(spec.name, weights)
        if src is None and spec.source == "hub":  # first use: into the standard cache, with a progress bar
            src = fetch_weights(spec.name)
        if src is None:
            raise _missing(spec)
        assert src.path is not None
        if src.kind == "hub":
            try:
                model = _create(spec, {"file": str(src.path)}, pretrained=True)
            except Exception as exc:  # noqa: BLE001
                raise WeightsUnavailable(
                    f"cached weights for '{spec.name}' at {src.path} do not load ({_first_line(exc)}); "
                    f"delete them and {spec.hint}"
                ) from None
        else:
            model = _load_file(spec, src)
        wid = src.id
    model.eval()
    model.painterid_weights_id = wid
    data_config = dict(timm.data.resolve_model_data_config(model))
    return model, data_config


def _load_file(spec: BackboneSpec, src: WeightsSource):
    assert src.path is not None
    state = _read_state_dict(src.path)
    model = _create(spec)
    mapped = _map_state_dict(state, model.state_dict())
    if isinstance(mapped, dict):
        model.load_state_dict(mapped, strict=True)
        return model
    if src.kind == "file":
        # Perhaps an original checkpoint that timm's own filter for this architecture converts (it reads
        # the file again with weights_only=True, and loads strictly).
        try:
            return _create(spec, {"file": str(src.path)}, pretrained=True)
        except Exception:  # noqa: BLE001
            pass
    raise WeightsUnavailable(f"weights in {src.path} do not fit backbone '{spec.name}' ({spec.timm_name}): {mapped}")


def describe(name: str) -> dict[str, Any]:
    """Embedding dimension (global pool) and input size of a backbone, without weights or memory (meta device)."""
    import timm.data
    import torch

    spec = get_spec(name)
    with torch.device("meta"):
        model = _create(spec)
    cfg = timm.data.resolve_model_data_config(model)
    return {"dim": int(model.num_features), "input_size": tuple(cfg["input_size"]),
            "interpolation": cfg.get("interpolation"), "mean": tuple(cfg["mean"]), "std": tuple(cfg["std"])}
