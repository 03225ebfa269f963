"""Safe image loading and the views a backbone sees.

``load_image`` turns any file a user points at into an RGB ``PIL.Image`` or raises
:class:`painterid.core.errors.ImageError` with one line, ``"<path>: <what is wrong>"``.

``ViewTransform`` turns that RGB image into a float32 tensor ``[V, 3, H, W]`` (normalised with the
backbone's ``data_config``); ``VIEW_COMBINE`` says how the embedder folds the V per-view vectors
into one vector per image.

torch and torchvision are imported lazily, so importing this module (e.g. for the CLI's ``--help``)
stays cheap.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageOps, UnidentifiedImageError

from painterid.core.errors import ImageError
from painterid.core.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["VIEWS", "VIEW_COMBINE", "VIEW_REGISTRY", "View", "ViewTransform", "load_image"]

@dataclass(frozen=True)
class View:
    """One way a backbone sees a painting: how many crops, and how their vectors fold into one."""

    name: str
    help: str
    combine: str  # single | concat | mean: how the embedder folds the per-view vectors of one image
    n_views: int | None  # None: n_patches


#: The views a painting can be seen through (see ``ViewTransform``); the CLI's --view choices.
VIEW_REGISTRY: Registry[View] = Registry("view")
for _v in (View("resize", "the whole painting squashed to the input size", "single", 1),
           View("center", "a centre crop, timm eval style", "single", 1),
           View("corners", "resize + the four corner crops at native resolution, concatenated", "concat", 5),
           View("patches", "n_patches crops at native resolution on a grid, averaged", "mean", None)):
    VIEW_REGISTRY.register(_v)

VIEWS: tuple[str, ...] = VIEW_REGISTRY.names()

#: How the embedder combines the per-view vectors of one image.
VIEW_COMBINE: dict[str, str] = {v.name: v.combine for v in VIEW_REGISTRY}

# Raster formats we are willing to decode. Pillow's vector/odd formats (EPS calls Ghostscript,
# WMF, MPEG, TGA without a magic number, ...) are deliberately excluded: a file named .jpg must
# never start an external program or be misread as some headerless format.
_ALLOWED_FORMATS: tuple[str, ...] = (
    "JPEG",  # also yields MPO (multi-picture JPEG from cameras)
    "PNG",
    "WEBP",
    "GIF",
    "TIFF",
    "BMP",
    "PPM",
    "JPEG2000",
    "AVIF",
    "PSD",
    "QOI",
)
_formats_cache: tuple[str, ...] | None = None

_WHITE = (255, 255, 255)


def _formats() -> tuple[str, ...]:
    """The allowed formats this Pillow build actually has a plugin for."""
    global _formats_cache
    if _formats_cache is None:
        Image.init()
        _formats_cache = tuple(f for f in _ALLOWED_FORMATS if f in Image.OPEN)
    return _formats_cache


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fail(path: str, what: str) -> ImageError:
    return ImageError(_one_line(f"{path}: {what}"))


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _check_file(p: str) -> None:
    """Cheap checks before decoding, with precise messages."""
    if not os.path.lexists(p):
        raise _fail(p, "no such file")
    if os.path.isdir(p):
        raise _fail(p, "is a directory, not an image file")
    if not os.path.exists(p):
        raise _fail(p, "broken symbolic link")
    try:
        if os.path.getsize(p) == 0:
            raise _fail(p, "empty file (0 bytes)")
    except OSError as e:
        raise _fail(p, f"cannot read file ({e.strerror or type(e).__name__})") from None


def _decode(p: str, max_side: int | None) -> Image.Image:
    """Open and fully decode the first frame, EXIF orientation applied, as RGB (a copy detached from the file)."""
    with Image.open(p, formats=_formats()) as im:
        # Image.open leaves animated files (GIF, WebP, APNG, multi-page TIFF) on frame 0.
        if max_side is not None and im.format in ("JPEG", "MPO"):
            im.draft("RGB", (int(max_side), int(max_side)))
        im.load()  # force the full decode here, inside the try
        img: Image.Image = im
        try:
            transposed = ImageOps.exif_transpose(img)
        except Exception:  # a malformed EXIF block must not make a good image unreadable
            transposed = None
        if transposed is not None:
            img = transposed
        rgb = _to_rgb(img)
        if rgb is im:  # detach from the file that the with-block closes
            rgb = im.copy()
    return rgb


def load_image(path: str | os.PathLike[str], max_side: int | None = 4096) -> Image.Image:
    """Decode ``path`` fully into an RGB image.

    * EXIF orientation is applied; animated files give their first frame.
    * CMYK, 16-bit and float greyscale, palette, greyscale and bilevel images become RGB;
      anything with transparency is composited over white.
    * When ``max_side`` is set, the image is downscaled (aspect kept, Lanczos) so its longest side
      is at most ``max_side``; JPEGs are decoded at a reduced DCT scale first (``draft``) so huge
      scans stay cheap.
    * Pillow's decompression-bomb protection (``Image.MAX_IMAGE_PIXELS``) stays on; its warning is
      treated as an error too. ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left at Pillow's default
      (False), so a truncated file raises instead of coming back grey-filled.
    * A malformed EXIF block is ignored (no rotation) rather than failing a decodable image.

    Raises :class:`ImageError` (one line, ``"<path>: <reason>"``) for a missing path, a directory,
    an empty or truncated file, a file that is not a supported image, or a decompression bomb.
    """
    if max_side is not None and int(max_side) < 1:
        raise ValueError(f"max_side must be a positive integer or None, got {max_side!r}")
    p = os.fsdecode(os.fspath(path))

    _check_file(p)
    try:
        with warnings.catch_warnings():
            # Pillow's metadata chatter (corrupt EXIF, odd TIFF tags) is not the user's problem here;
            # the decompression-bomb warning (a RuntimeWarning) becomes an error.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            rgb = _decode(p, max_side)
            if max_side is not None:
                rgb = _cap_longest_side(rgb, int(max_side))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise _fail(p, f"image too large to decode safely (decompression-bomb protection: {e})") from None
    except UnidentifiedImageError:
        raise _fail(p, "not a recognised image file (supported: " + ", ".join(_formats()) + ")") from None
    except PermissionError:
        raise _fail(p, "permission denied") from None
    except _UnsupportedMode as e:
        raise _fail(p, str(e)) from None
    except (OSError, EOFError) as e:
        msg = str(e) or type(e).__name__
        if "truncated" in msg.lower() or isinstance(e, EOFError):
            raise _fail(p, f"truncated or incomplete image data ({msg})") from None
        raise _fail(p, f"corrupt or unreadable image data ({msg})") from None
    except Exception as e:  # Pillow plugins raise many kinds (SyntaxError, ValueError, struct.error, ...)
        raise _fail(p, f"corrupt or unreadable image data ({type(e).__name__}: {e})") from None

    if rgb.mode != "RGB" or rgb.width < 1 or rgb.height < 1:  # pragma: no cover - defensive
        raise _fail(p, f"decoded to an unusable image ({rgb.mode} {rgb.size})")
    return rgb


class _UnsupportedMode(Exception):
    pass


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparency composited over white."""
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or (
        mode in ("P", "L", "RGB") and "transparency" in img.info
    ):
        return _over_white(img.convert("RGBA"))
    if mode in ("1", "L", "P", "CMYK", "YCbCr", "HSV"):
        return img.convert("RGB")
    if mode.startswith("I") or mode.startswith("F"):
        return _high_depth_to_rgb(img)
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as e:
        raise _UnsupportedMode(f"unsupported colour mode {mode!r} ({e})") from None


def _over_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, _WHITE + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _high_depth_to_rgb(img: Image.Image) -> Image.Image:
    """16-bit / 32-bit integer and float greyscale to 8-bit RGB, scaled rather than clipped.

    * ``I;16*``: the full 16-bit range maps onto 0..255 (value / 257).
    * ``I`` (32-bit int, which is how some files carry 16-bit data): 0..255 data is kept as is,
      0..65535 data is treated as 16-bit, anything else is min-max stretched.
    * ``F``: 0..1 data is scaled by 255, 0..255 data is kept, anything else is min-max stretched.
    """
    import numpy as np

    mode = img.mode
    if mode.startswith("I;16"):
        arr = np.asarray(img).astype(np.float64) / 257.0
    else:
        if mode not in ("I", "F"):
            img = img.convert("F")
        arr = np.asarray(img).astype(np.float64)
        finite = arr[np.isfinite(arr)]
        if finite.size == 0:
            arr = np.zeros_like(arr)
        else:
            lo, hi = float(finite.min()), float(finite.max())
            arr = np.nan_to_num(arr, nan=lo, posinf=hi, neginf=lo)
            if mode == "F" and lo >= 0.0 and hi <= 1.0:
                arr = arr * 255.0
            elif lo >= 0.0 and hi <= 255.0:
                pass
            elif mode == "I" and lo >= 0.0 and hi <= 65535.0:
                arr = arr / 257.0
            elif hi > lo:
                arr = (arr - lo) * (255.0 / (hi - lo))
            else:
                arr = np.zeros_like(arr)
    grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def _cap_longest_side(img: Image.Image, max_side: int) -> Image.Image:
    """Downscale (never upscale) so that max(width, height) <= max_side, keeping the aspect."""
    w, h = img.size
    longest = max(w, h)
    if longest <= max_side:
        return img
    scale = max_side / longest
    new_w = min(max_side, max(1, round(w * scale)))
    new_h = min(max_side, max(1, round(h * scale)))
    return img.resize((new_w, new_h), Image.Resampling.LANCZOS, reducing_gap=3.0)


# --------------------------------------------------------------------------------------------
# Views
# --------------------------------------------------------------------------------------------


def view_crops(views, img: Image.Image) -> list[Image.Image]:
    """The crops of ``views.view`` cut from ``img`` (RGB): the geometry ViewTransform (torch) and ArrayViews (numpy)
    share; ``views`` supplies ``_resize``, ``_center``, ``_corners`` and ``_patches``."""
    if img.mode != "RGB":
        img = _to_rgb(img)
    if views.view == "resize":
        return [views._resize(img)]
    if views.view == "center":
        return [views._center(img)]
    if views.view == "corners":
        return [views._resize(img), *views._corners(img)]
    return views._patches(img)


class ViewTransform:
    """PIL RGB image -> float32 tensor ``[V, 3, H, W]`` normalised with ``data_config``.

    Views (``VIEWS``):

    * ``resize``: the whole image squashed to H x W (aspect not kept). V = 1.
    * ``center``: shortest side to ``round(max(H, W) / crop_pct)``, then a centre H x W crop (timm
      eval style). V = 1.
    * ``corners``: view 0 is ``resize``; views 1-4 are the H x W corner crops at native resolution
      (upscaled first only if the image is smaller than H x W), clockwise from the upper right:
      upper-right, lower-right, lower-left, upper-left. V = 5.
    * ``patches``: the longest side is capped at ``patch_max_side`` (downscale only; upscaled if
      smaller than H x W), then ``n_patches`` H x W crops are taken on a deterministic grid that
      spans the image. V = ``n_patches``.
    """

    def __init__(
        self,
        view: str,
        data_config: dict[str, Any],
        n_patches: int = 8,
        patch_max_side: int = 1024,
    ) -> None:
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; valid views: {', '.join(VIEWS)}")
        try:
            c, h, w = (int(v) for v in data_config["input_size"])
            mean = tuple(float(v) for v in data_config["mean"])
            std = tuple(float(v) for v in data_config["std"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(
                f"data_config needs input_size (3, H, W), mean and std: {e}"
            ) from None
        if c != 3 or h < 1 or w < 1:
            raise ValueError(f"data_config input_size must be (3, H, W), got {data_config['input_size']!r}")
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ValueError(f"data_config mean/std must be 3 values (std > 0), got {mean!r}, {std!r}")
        crop_pct = float(data_config.get("crop_pct") or 0.875)
        if not 0.0 < crop_pct <= 1.0:
            raise ValueError(f"data_config crop_pct must be in (0, 1], got {crop_pct!r}")
        if int(n_patches) < 1:
            raise ValueError(f"n_patches must be >= 1, got {n_patches!r}")
        if int(patch_max_side) < max(h, w):
            raise ValueError(f"patch_max_side ({patch_max_side}) must be >= the input size {max(h, w)}")

        self.view = view
        self.height = h
        self.width = w
        self.mean = mean
        self.std = std
        self.crop_pct = crop_pct
        self.interpolation_name = str(data_config.get("interpolation") or "bicubic").lower()
        self.interpolation = interpolation_mode(self.interpolation_name)
        self.n_patches = int(n_patches)
        self.patch_max_side = int(patch_max_side)

    # -- public -------------------------------------------------------------------------------
    @property
    def n_views(self) -> int:
        return VIEW_REGISTRY.get(self.view).n_views or self.n_patches

    def __repr__(self) -> str:
        extra = f", n_patches={self.n_patches}, patch_max_side={self.patch_max_side}" if self.view == "patches" else ""
        return (
            f"ViewTransform(view={self.view!r}, size=({self.height}, {self.width}), "
            f"interpolation={self.interpolation_name!r}{extra})"
        )

    def __call__(self, img: Image.Image) -> torch.Tensor:
        if not isinstance(img, Image.Image):
            raise TypeError(f"ViewTransform expects a PIL.Image, got {type(img).__name__}")
        return self._to_tensor(view_crops(self, img))

    # -- the views ----------------------------------------------------------------------------
    def _resize(self, img: Image.Image) -> Image.Image:
        from torchvision.transforms.v2 import functional as F

        return F.resize(img, [self.height, self.width], interpolation=self.interpolation, antialias=True)

    def _center(self, img: Image.Image) -> Image.Image:
        from torchvision.transforms.v2 import functional as F

        scale_size = round(max(self.height, self.width) / self.crop_pct)
        img = F.resize(img, scale_size, interpolation=self.interpolation, antialias=True)
        return F.center_crop(img, [self.height, self.width])

    def _corners(self, img: Image.Image) -> list[Image.Image]:
        from torchvision.transforms.v2 import functional as F

        img = self._at_least_input_size(img)
        tl, tr, bl, br, _center = F.five_crop(img, [self.height, self.width])
        return [tr, br, bl, tl]  # clockwise from the upper right

    def _patches(self, img: Image.Image) -> list[Image.Image]:
        from torchvision.transforms.v2 import functional as F

        if max(img.size) > self.patch_max_side:
            img = F.resize(img, None, interpolation=self.interpolation, max_size=self.patch_max_side, antialias=True)
        img = self._at_least_input_size(img)
        return [
            F.crop(img, top, left, self.height, self.width)
            for top, left in patch_grid(img.width, img.height, self.width, self.height, self.n_patches)
        ]

    # -- helpers ------------------------------------------------------------------------------
    def _at_least_input_size(self, img: Image.Image) -> Image.Image:
        """Upscale (aspect kept) only if the image is smaller than H x W in either direction."""
        from torchvision.transforms.v2 import functional as F

        w, h = img.size
        if w >= self.width and h >= self.height:
            return img
        s = max(self.height / h, self.width / w)
        new_w = max(self.width, math.ceil(w * s - 1e-9))
        new_h = max(self.height, math.ceil(h * s - 1e-9))
        return F.resize(img, [new_h, new_w], interpolation=self.interpolation, antialias=True)

    def _to_tensor(self, crops: list[Image.Image]) -> torch.Tensor:
        import torch
        from torchvision.transforms.v2 import functional as F

        batch = torch.stack([F.pil_to_tensor(c) for c in crops]).to(torch.float32).div_(255.0)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return batch.sub_(mean).div_(std).contiguous()


def patch_grid(width: int, height: int, patch_w: int, patch_h: int, n: int) -> list[tuple[int, int]]:
    """``n`` deterministic ``(top, left)`` positions of ``patch_h x patch_w`` crops spanning an image.

    Rows x cols is chosen so that cols / rows follows how many patches fit across vs. down
    (fewest wasted grid cells breaking ties); positions are evenly spaced from edge to edge. When
    rows x cols > n, n cells are picked evenly spread over the grid in row-major order.
    """
    if width < patch_w or height < patch_h:
        raise ValueError(f"image {width}x{height} is smaller than the patch {patch_w}x{patch_h}")
    if n < 1:
        raise ValueError("n must be >= 1")
    aspect = (width / patch_w) / (height / patch_h)
    best: tuple[float, int, int] | None = None
    for rows in range(1, n + 1):
        cols = math.ceil(n / rows)
        waste = rows * cols - n
        score = abs(math.log((cols / rows) / aspect)) + 0.5 * waste / n
        if best is None or score < best[0] - 1e-12:
            best = (score, rows, cols)
    assert best is not None
    _, rows, cols = best

    def spaced(span: int, k: int) -> list[int]:
        if k == 1:
            return [span // 2]
        return [round(i * span / (k - 1)) for i in range(k)]

    tops = spaced(height - patch_h, rows)
    lefts = spaced(width - patch_w, cols)
    cells = [(t, l) for t in tops for l in lefts]
    total = len(cells)
    if total == n:
        return cells
    picks = [round(i * (total - 1) / (n - 1)) for i in range(n)] if n > 1 else [total // 2]
    return [cells[i] for i in picks]


def interpolation_mode(name: str) -> Any:
    from torchvision.transforms import InterpolationMode

    aliases = {"lanczos": "lanczos", "bicubic": "bicubic", "bilinear": "bilinear", "nearest": "nearest",
               "box": "box", "hamming": "hamming", "nearest_exact": "nearest-exact", "nearest-exact": "nearest-exact"}
    key = aliases.get(name)
    if key is None:
        raise ValueError(f"unknown interpolation {name!r}; expected one of {', '.join(sorted(set(aliases)))}")
    return InterpolationMode(key)
