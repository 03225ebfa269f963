"""Pooling of backbone features into one vector per image: ``gap``, ``style``, ``both``, ``stage``, ``cls`` or
``tokens``.

* ``gap``: timm's pooled final features, ``model.forward_head(model.forward_features(x), pre_logits=True)``
  (global average pooling for CNNs, the class token / pooled tokens for ViTs).  Not normalised.
* ``style``: for every stage in ``model.feature_info``, the channel means and channel standard deviations of
  that stage's feature map (the "style statistics" of Gatys / Huang & Belongie: what textures and brush
  marks look like, not where things are).  Each stage's ``[mean, std]`` vector goes through a signed square
  root, ``sign(v) * sqrt(|v|)``, and is L2-normalised so that every stage weighs the same, then the stages are
  concatenated.  The vector is therefore invariant to any permutation of spatial positions, e.g. a mirror
  image gives nearly the same vector (nearly: the convolutions themselves are not mirror-symmetric).
* ``both``: ``[l2normalise(gap), style]`` computed in one forward pass.
* ``stage``: the channel means of the last ``feature_info`` stage's map (for EfficientNet / MobileNetV2 the
  320-channel output of the last block, before the head's 1x1 convolution to 1280 channels and its activation;
  the forward pass stops there).  Not normalised.
* ``cls``: a transformer's class token from ``forward_features`` (after the final norm, before any head).
* ``tokens``: the mean of a transformer's patch tokens from ``forward_features`` (prefix tokens, i.e. class and
  register tokens, left out); for a CNN the mean of ``forward_features``' map (``gap`` without timm's head).

Intermediate maps come from timm's ``forward_intermediates`` (CNNs give NCHW; ViTs give NCHW patch-token maps
without prefix tokens); a model without it is read through forward hooks on the modules named in
``feature_info``.  NCHW, NHWC and NLC maps are all understood.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from painterid.core.errors import PainterIDError
from painterid.embedding.pools import POOL_REGISTRY, POOLS, Pool

__all__ = ["POOLS", "POOL_REGISTRY", "Pool", "FeatureExtractor", "channel_stats", "signed_sqrt"]


_EPS = 1e-12


def signed_sqrt(v: torch.Tensor) -> torch.Tensor:
    """``sign(v) * sqrt(|v|)`` with a finite gradient at 0."""
    return torch.sign(v) * torch.sqrt(v.abs() + _EPS)


def channel_stats(t: torch.Tensor, num_chs: int | None = None) -> torch.Tensor:
    """``[B, 2C]``: per-channel mean and standard deviation over all positions of a feature map.

    ``t`` is NCHW, NHWC (recognised when ``num_chs`` says so) or NLC (tokens)."""
    if t.ndim == 4:
        if num_chs is not None and t.shape[1] != num_chs and t.shape[-1] == num_chs:
            t = t.permute(0, 3, 1, 2)
        flat = t.flatten(2)  # B, C, N
    elif t.ndim == 3:
        if num_chs is None or t.shape[-1] == num_chs:
            flat = t.transpose(1, 2)  # NLC -> B, C, L
        else:
            flat = t
    elif t.ndim == 2:
        flat = t.unsqueeze(-1)
    else:
        raise ValueError(f"cannot take channel statistics of a tensor of shape {tuple(t.shape)}")
    flat = flat.float()
    mean = flat.mean(dim=-1)
    std = flat.var(dim=-1, unbiased=False).clamp_min(_EPS).sqrt()
    return torch.cat([mean, std], dim=1)


def _feature_info(model: nn.Module) -> list[dict]:
    info = getattr(model, "feature_info", None)
    if info is None:
        return []
    if hasattr(info, "get_dicts"):  # timm FeatureInfo object (features_only models)
        return list(info.get_dicts())
    return [dict(d) for d in info]


class FeatureExtractor(nn.Module):
    """One vector per image from a timm backbone: ``forward(x[B,3,H,W]) -> [B, dim]`` float32.

    ``pool`` is one of :data:`POOLS`.  ``stages`` picks which ``feature_info`` entries feed ``style``
    (indices, negative allowed; default all of them).  ``dim`` is found by one dry run (eval mode, no grad,
    zeros at the model's input size) the first time it is read.
    """

    def __init__(self, model: nn.Module, pool: str = "gap", stages: Sequence[int] | None = None):
        super().__init__()
        POOL_REGISTRY.get(pool)  # an unknown pool: one line naming the valid ones
        self.model = model
        self.pool = pool
        info = _feature_info(model)
        if POOL_REGISTRY.get(pool).needs_stages and not info:
            raise PainterIDError(f"pool '{pool}' needs a timm model with feature_info; use pool 'gap'")
        self.prefix_tokens = int(getattr(model, "num_prefix_tokens", 0) or 0)
        if pool == "cls" and getattr(model, "cls_token", None) is None:
            raise PainterIDError(f"pool 'cls' needs a transformer with a class token; {type(model).__name__} has "
                                 "none: use pool 'tokens' or 'gap'")
        n = len(info)
        if stages is not None and (not stages or any(not -n <= int(i) < n for i in stages)):
            raise PainterIDError(f"stages {list(stages)} out of range for a model with {n} feature stages")
        if stages is None:
            chosen = [n - 1] if pool == "stage" else list(range(n))
        else:
            chosen = sorted({int(i) % n for i in stages})
        self.stage_indices: list[int] = chosen
        self.stage_modules: list[str] = [str(info[i].get("module", "")) for i in chosen]
        self.stage_channels: list[int] = [int(info[i]["num_chs"]) for i in chosen]
        self.use_intermediates = hasattr(model, "forward_intermediates")
        self._dim: int | None = None

    # ------------------------------------------------------------------------------------------ parts

    def _intermediates(self, x: torch.Tensor, need_final: bool) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        if self.use_intermediates:
            if need_final:
                final, inter = self.model.forward_intermediates(
                    x, indices=self.stage_indices, intermediates_only=False
                )
            else:
                final = None
                inter = self.model.forward_intermediates(x, indices=self.stage_indices, intermediates_only=True)
            inter = list(inter)
        else:
            final, inter = self._hooked(x)
        if len(inter) != len(self.stage_indices):
            raise RuntimeError(f"expected {len(self.stage_indices)} intermediate maps, got {len(inter)}")
        return final, inter

    def _hooked(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        captured: dict[int, torch.Tensor] = {}
        handles = []

        def hook(k: int):
            def fn(_module, _inputs, output):
                captured[k] = output[0] if isinstance(output, (tuple, list)) else output

            return fn

        try:
            for k, name in enumerate(self.stage_modules):
                handles.append(self.model.get_submodule(name).register_forward_hook(hook(k)))
            final = self.model.forward_features(x)
        finally:
            for h in handles:
                h.remove()
        maps = [captured[k] for k in range(len(self.stage_modules))]
        prefix = int(getattr(self.model, "num_prefix_tokens", 0) or 0)
        if prefix:  # ViT blocks: drop class / register tokens, as forward_intermediates does
            maps = [t[:, prefix:] if t.ndim == 3 else t for t in maps]
        return final, maps

    def _style(self, inter: list[torch.Tensor]) -> torch.Tensor:
        parts = [
            F.normalize(signed_sqrt(channel_stats(t, c)), dim=1)
            for t, c in zip(inter, self.stage_channels)
        ]
        return torch.cat(parts, dim=1)

    def _tokens(self, final: torch.Tensor) -> torch.Tensor:
        """``cls`` or ``tokens`` of ``forward_features``' output (NLC tokens, or a CNN's NCHW map)."""
        if final.ndim == 4:  # a CNN: channels first, as timm's forward_features gives
            return final.float().mean(dim=(2, 3))
        if self.pool == "cls":
            return final[:, 0].float()
        return final[:, self.prefix_tokens:].float().mean(dim=1)

    def _gap(self, final: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(final, pre_logits=True).flatten(1).float()

    # ------------------------------------------------------------------------------------------ public

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_map(x)[0]

    def forward_with_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(vectors [B, dim], feature map)``: forward's vectors and the last feature map they are pooled from
        (``gap``: ``forward_features``' output; ``style`` / ``both``: the last chosen stage's map), for Grad-CAM."""
        if self.pool == "gap":
            fmap = self.model.forward_features(x)
            out = self._gap(fmap)
        elif self.pool in ("cls", "tokens"):
            fmap = self.model.forward_features(x)
            out = self._tokens(fmap)
        elif self.pool == "style":
            _, inter = self._intermediates(x, need_final=False)
            out, fmap = self._style(inter), inter[-1]
        elif self.pool == "stage":
            _, inter = self._intermediates(x, need_final=False)
            fmap = inter[-1]
            out = channel_stats(fmap, self.stage_channels[-1])[:, : self.stage_channels[-1]]
        else:
            final, inter = self._intermediates(x, need_final=True)
            assert final is not None
            out, fmap = torch.cat([F.normalize(self._gap(final), dim=1), self._style(inter)], dim=1), inter[-1]
        return out.float(), fmap

    @property
    def style_dim(self) -> int:
        return 2 * sum(self.stage_channels)

    @property
    def dim(self) -> int:
        if self._dim is None:
            # style: known from feature_info, which spares `compare` a forward pass at start-up
            if self.pool == "style":
                self._dim = self.style_dim
            elif self.pool == "stage":
                self._dim = self.stage_channels[-1]
            else:
                self._dim = self._dry_run_dim()
        return self._dim

    def _dry_run_dim(self) -> int:
        size = model_input_size(self.model)
        try:
            param = next(self.model.parameters())
            device, dtype = param.device, param.dtype
        except StopIteration:
            device, dtype = torch.device("cpu"), torch.float32
        modes = {m: m.training for m in self.modules()}
        self.eval()
        try:
            with torch.no_grad():
                out = self.forward(torch.zeros((1, *size), device=device, dtype=dtype))
        finally:
            for m, training in modes.items():
                m.training = training
        return int(out.shape[1])

    def extra_repr(self) -> str:
        return f"pool={self.pool!r}, stages={self.stage_indices}"


def model_input_size(model: nn.Module) -> tuple[int, int, int]:
    """(C, H, W) the model runs at: a ViT's fixed patch-embed size, else its pretrained config's."""
    img_size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if img_size is not None:
        h, w = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        return (3, int(h), int(w))
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = cfg.get("input_size") or (3, 224, 224)
    return tuple(int(s) for s in size)  # type: ignore[return-value]
