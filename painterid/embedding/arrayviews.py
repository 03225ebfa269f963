"""The views of :class:`painterid.embedding.images.ViewTransform` with Pillow and numpy only (no torch, no torchvision).

``ArrayViews(view, data_config, n_patches)(image)`` gives the float32 array ``[V, 3, H, W]`` that
``ViewTransform`` gives as a tensor.  torchvision's functional ops on a PIL image are Pillow calls
(``Image.resize`` with the same filter, ``Image.crop``), so the geometry here is the same Pillow calls with the
same output sizes (torchvision's size rules copied below), and the normalisation is the same float32 arithmetic:
the arrays are equal to the tensors (tests/test_onnx_runtime.py checks it on every view).  The ONNX Runtime
embedder (:mod:`painterid.embedding.runtime`) uses it so that `compare` never imports torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image

from painterid.embedding.images import VIEW_COMBINE, VIEWS, patch_grid, view_crops

__all__ = ["ArrayViews", "PIL_FILTERS"]

#: torchvision's interpolation names → Pillow filters (torchvision.transforms.functional.pil_modes_mapping).
PIL_FILTERS: dict[str, int] = {
    "nearest": Image.Resampling.NEAREST, "nearest-exact": Image.Resampling.NEAREST,
    "nearest_exact": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC, "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}


def _short_side_size(w: int, h: int, size: int | None, max_size: int | None) -> tuple[int, int]:
    """(new_w, new_h) of torchvision's resize to ``size`` on the short side (``None``: long side = max_size)."""
    short, long = (w, h) if w <= h else (h, w)
    if size is None:
        new_short, new_long = int(max_size * short / long), max_size
    else:
        new_short, new_long = size, int(size * long / short)
        if max_size is not None and new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_short, new_long) if w <= h else (new_long, new_short)


class ArrayViews:
    """PIL RGB image → float32 ``[V, 3, H, W]``, equal to ``ViewTransform(view, data_config, n_patches)``."""

    def __init__(self, view: str, data_config: dict[str, Any], n_patches: int = 8, patch_max_side: int = 1024):
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; valid views: {', '.join(VIEWS)}")
        c, h, w = (int(v) for v in data_config["input_size"])
        if c != 3 or h < 1 or w < 1:
            raise ValueError(f"data_config input_size must be (3, H, W), got {data_config['input_size']!r}")
        if int(patch_max_side) < max(h, w):
            raise ValueError(f"patch_max_side ({patch_max_side}) must be >= the input size {max(h, w)}")
        name = str(data_config.get("interpolation") or "bicubic").lower()
        if name not in PIL_FILTERS:
            raise ValueError(f"unknown interpolation {name!r}")
        self.view, self.height, self.width = view, h, w
        self.filter = PIL_FILTERS[name]
        self.crop_pct = float(data_config.get("crop_pct") or 0.875)
        self.n_patches = int(n_patches)
        self.patch_max_side = int(patch_max_side)
        self.mean = np.asarray(data_config["mean"], dtype=np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(data_config["std"], dtype=np.float32).reshape(1, 3, 1, 1)

    @property
    def n_views(self) -> int:
        return {"resize": 1, "center": 1, "corners": 5, "patches": self.n_patches}[self.view]

    @property
    def combine(self) -> str:
        return VIEW_COMBINE[self.view]

    def __call__(self, img: Image.Image) -> np.ndarray:
        return self._to_array(view_crops(self, img))

    # -- geometry: the Pillow calls torchvision makes on a PIL image ------------------------------
    def _resize_to(self, img: Image.Image, new_w: int, new_h: int) -> Image.Image:
        if (new_w, new_h) == img.size:
            return img
        return img.resize((new_w, new_h), resample=self.filter)

    def _resize(self, img: Image.Image) -> Image.Image:
        return self._resize_to(img, self.width, self.height)

    def _center(self, img: Image.Image) -> Image.Image:
        scale = round(max(self.height, self.width) / self.crop_pct)
        img = self._resize_to(img, *_short_side_size(img.width, img.height, scale, None))
        top = int(round((img.height - self.height) / 2.0))
        left = int(round((img.width - self.width) / 2.0))
        return img.crop((left, top, left + self.width, top + self.height))

    def _corners(self, img: Image.Image) -> list[Image.Image]:
        img = self._at_least_input_size(img)
        w, h, cw, ch = img.width, img.height, self.width, self.height
        tl = img.crop((0, 0, cw, ch))
        tr = img.crop((w - cw, 0, w, ch))
        bl = img.crop((0, h - ch, cw, h))
        br = img.crop((w - cw, h - ch, w, h))
        return [tr, br, bl, tl]

    def patch_layout(self, img: Image.Image) -> tuple[Image.Image, list[tuple[int, int]]]:
        """The image the `patches` view crops from (longest side capped at patch_max_side, upscaled only if smaller
        than the input size) and the (top, left) of each of its grid patches: the pixels the model sees."""
        if max(img.size) > self.patch_max_side:
            img = self._resize_to(img, *_short_side_size(img.width, img.height, None, self.patch_max_side))
        img = self._at_least_input_size(img)
        return img, patch_grid(img.width, img.height, self.width, self.height, self.n_patches)

    def _patches(self, img: Image.Image) -> list[Image.Image]:
        img, grid = self.patch_layout(img)
        return [img.crop((left, top, left + self.width, top + self.height)) for top, left in grid]

    def _at_least_input_size(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        if w >= self.width and h >= self.height:
            return img
        s = max(self.height / h, self.width / w)
        return self._resize_to(img, max(self.width, math.ceil(w * s - 1e-9)),
                               max(self.height, math.ceil(h * s - 1e-9)))

    # -- pixels: torch's uint8 → float32, div_(255), sub_(mean), div_(std), in float32 ------------------------
    def _to_array(self, crops: list[Image.Image]) -> np.ndarray:
        # NHWC → NCHW while the pixels are still bytes (a quarter of the memory traffic of moving floats)
        batch = np.ascontiguousarray(np.stack([np.asarray(c, dtype=np.uint8) for c in crops]).transpose(0, 3, 1, 2))
        x = batch.astype(np.float32)
        x /= np.float32(255.0)
        x -= self.mean
        x /= self.std
        return x
