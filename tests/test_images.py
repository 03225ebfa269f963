"""Tests for painterid.embedding.images: safe loading (bad and good files) and the views."""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from painterid.core.errors import ImageError, PainterIDError
from painterid.embedding.images import VIEW_COMBINE, VIEWS, ViewTransform, load_image, patch_grid

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _noise(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _assert_image_error(path, **kwargs) -> ImageError:
    with pytest.raises(ImageError) as info:
        load_image(path, **kwargs)
    err = info.value
    msg = str(err)
    assert isinstance(err, PainterIDError)
    assert os.path.basename(os.fspath(path)) in msg
    assert "\n" not in msg and "Traceback" not in msg
    assert msg.startswith(os.fspath(path) + ": ")
    assert len(msg) > len(os.fspath(path)) + 3  # says what is wrong
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    return err


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(path: Path, width: int, height: int) -> Path:
    """A genuine 1-bit all-black PNG of width x height that compresses to a few KB."""
    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))
    return path


def _close(px, expected, tol=3) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(px, expected))


# --------------------------------------------------------------------------------------------
# bad files -> ImageError, one line, with the file name
# --------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    err = _assert_image_error(tmp_path / "nope.jpg")
    assert "no such file" in str(err)


def test_directory(tmp_path):
    d = tmp_path / "folder.jpg"
    d.mkdir()
    assert "directory" in str(_assert_image_error(d))


def test_zero_byte(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    assert "empty" in str(_assert_image_error(p))


def test_text_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not an image\nsecond line\n")
    assert "not a recognised image" in str(_assert_image_error(p))


@pytest.mark.parametrize("fmt,ext", [("JPEG", ".jpg"), ("PNG", ".png")])
def test_truncated(tmp_path, fmt, ext):
    buf = io.BytesIO()
    _noise(256, 256).save(buf, fmt)
    data = buf.getvalue()
    p = tmp_path / f"cut{ext}"
    p.write_bytes(data[: len(data) // 2])
    err = _assert_image_error(p)
    if fmt == "JPEG":
        assert "truncated" in str(err)


def test_decompression_bomb_error(tmp_path):
    p = _bomb_png(tmp_path / "bomb.png", 20000, 20000)  # 400 Mpx > 2 x MAX_IMAGE_PIXELS
    assert p.stat().st_size < 200_000
    assert "too large" in str(_assert_image_error(p))


def test_decompression_bomb_warning_is_an_error(tmp_path):
    p = _bomb_png(tmp_path / "big.png", 10000, 10000)  # 100 Mpx: only a warning in Pillow
    assert 100_000_000 > Image.MAX_IMAGE_PIXELS and 100_000_000 < 2 * Image.MAX_IMAGE_PIXELS
    assert "too large" in str(_assert_image_error(p))


@pytest.mark.parametrize("limit", [6000, 1000])  # warning zone and error zone for a 100x100 image
def test_bomb_protection_follows_max_image_pixels(tmp_path, monkeypatch, limit):
    p = tmp_path / "small.png"
    _noise(100, 100).save(p)
    assert load_image(p).size == (100, 100)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    _assert_image_error(p)


def test_bad_max_side(tmp_path):
    with pytest.raises(ValueError):
        load_image(tmp_path / "x.png", max_side=0)


# --------------------------------------------------------------------------------------------
# good files -> RGB with the right size and colours
# --------------------------------------------------------------------------------------------


def test_cmyk_jpeg(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (64, 48), (0, 255, 255, 0)).save(p, quality=95)  # pure red in CMYK
    img = load_image(p)
    assert img.mode == "RGB" and img.size == (64, 48)
    assert _close(img.getpixel((10, 10)), (255, 0, 0), tol=6)


def test_16bit_png_scaled_not_clipped(tmp_path):
    arr = np.zeros((8, 24), np.uint16)
    arr[:, :8] = 0
    arr[:, 8:16] = 32896  # 128 * 257
    arr[:, 16:] = 65535
    p = tmp_path / "deep.png"
    im16 = Image.fromarray(arr)
    assert im16.mode.startswith("I;16")
    im16.save(p)
    img = load_image(p)
    assert img.mode == "RGB" and img.size == (24, 8)
    assert img.getpixel((2, 2)) == (0, 0, 0)
    assert img.getpixel((10, 2)) == (128, 128, 128)
    assert img.getpixel((20, 2)) == (255, 255, 255)


def test_16bit_mid_grey_is_mid_grey(tmp_path):
    p = tmp_path / "grey16.png"
    Image.fromarray(np.full((10, 10), 32768, np.uint16)).save(p)
    assert _close(load_image(p).getpixel((5, 5)), (128, 128, 128), tol=1)


def test_32bit_int_and_float_modes(tmp_path):
    p = tmp_path / "int32.tif"
    Image.fromarray(np.full((6, 6), 32768, np.int32), mode="I").save(p)
    assert _close(load_image(p).getpixel((1, 1)), (128, 128, 128), tol=1)
    q = tmp_path / "float.tif"
    Image.fromarray(np.full((6, 6), 0.5, np.float32), mode="F").save(q)
    assert _close(load_image(q).getpixel((1, 1)), (128, 128, 128), tol=1)


@pytest.mark.parametrize("ext", [".png", ".gif"])
def test_palette_with_transparency(tmp_path, ext):
    im = Image.new("P", (20, 10), 0)
    im.putpalette([0, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)
    im.paste(1, (10, 0, 20, 10))  # right half blue, left half index 0 (transparent)
    p = tmp_path / f"pal{ext}"
    im.save(p, transparency=0)
    img = load_image(p)
    assert img.mode == "RGB" and img.size == (20, 10)
    assert img.getpixel((2, 5)) == (255, 255, 255)
    assert img.getpixel((15, 5)) == (0, 0, 255)


def test_rgba_over_white(tmp_path):
    arr = np.zeros((10, 30, 4), np.uint8)
    arr[:, :10] = (255, 0, 0, 0)  # fully transparent red -> white
    arr[:, 10:20] = (0, 255, 0, 255)  # opaque green
    arr[:, 20:] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    p = tmp_path / "alpha.png"
    Image.fromarray(arr, "RGBA").save(p)
    img = load_image(p)
    assert img.mode == "RGB" and img.size == (30, 10)
    assert img.getpixel((5, 5)) == (255, 255, 255)
    assert img.getpixel((15, 5)) == (0, 255, 0)
    assert _close(img.getpixel((25, 5)), (127, 127, 127), tol=2)


def test_la_over_white(tmp_path):
    la = Image.new("LA", (8, 8), (0, 0))
    la.paste((50, 255), (4, 0, 8, 8))
    p = tmp_path / "la.png"
    la.save(p)
    img = load_image(p)
    assert img.getpixel((1, 3)) == (255, 255, 255)
    assert img.getpixel((6, 3)) == (50, 50, 50)


def test_pa_image_in_memory_goes_over_white():
    pa = Image.new("PA", (40, 40), (0, 0))  # fully transparent
    x = ViewTransform("resize", DC)(pa)
    assert torch.allclose(x, torch.ones_like(x), atol=1e-5)  # white: (1 - 0.5) / 0.5


@pytest.mark.parametrize("mode,value,expected", [("L", 77, (77, 77, 77)), ("1", 1, (255, 255, 255))])
def test_grayscale_and_bilevel(tmp_path, mode, value, expected):
    p = tmp_path / f"g_{mode}.png"
    Image.new(mode, (12, 7), value).save(p)
    img = load_image(p)
    assert img.mode == "RGB" and img.size == (12, 7)
    assert img.getpixel((3, 3)) == expected


@pytest.mark.parametrize("ext", [".gif", ".webp"])
def test_animated_first_frame(tmp_path, ext):
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    p = tmp_path / f"anim{ext}"
    kwargs = {"lossless": True} if ext == ".webp" else {}
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0, **kwargs)
    with Image.open(p) as check:
        assert getattr(check, "n_frames", 1) == 3
    img = load_image(p)
    assert img.mode == "RGB" and img.size == (16, 16)
    assert _close(img.getpixel((8, 8)), (255, 0, 0), tol=4)


def test_exif_orientation_applied(tmp_path):
    stored = Image.new("RGB", (60, 40), (255, 0, 0))
    stored.paste((0, 0, 255), (30, 0, 60, 40))  # stored: left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    p = tmp_path / "rotated.jpg"
    stored.save(p, exif=exif.tobytes(), quality=95)
    img = load_image(p)
    assert img.size == (40, 60)  # width/height swapped
    assert _close(img.getpixel((20, 5)), (255, 0, 0), tol=8)  # stored left is now on top
    assert _close(img.getpixel((20, 55)), (0, 0, 255), tol=8)


@pytest.mark.parametrize("name", ["ümlaut façade 絵画 (1).png", "with  spaces .jpg", "ëñ—dash.webp"])
def test_unicode_and_space_paths(tmp_path, name):
    p = tmp_path / "dîr with space" / name
    p.parent.mkdir()
    Image.new("RGB", (20, 10), (10, 200, 30)).save(p, quality=95)
    for arg in (p, str(p)):
        img = load_image(arg)
        assert img.mode == "RGB" and img.size == (20, 10)
        assert _close(img.getpixel((10, 5)), (10, 200, 30), tol=6)


def test_file_can_be_deleted_after_load(tmp_path):
    p = tmp_path / "x.png"
    Image.new("RGB", (5, 5), (1, 2, 3)).save(p)
    img = load_image(p)
    p.unlink()
    assert img.getpixel((0, 0)) == (1, 2, 3)


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_max_side_downscales_keeping_aspect(tmp_path, ext):
    p = tmp_path / f"scan{ext}"
    Image.new("RGB", (1600, 800), (90, 60, 30)).save(p)
    img = load_image(p, max_side=200)
    assert img.size == (200, 100)
    assert _close(img.getpixel((100, 50)), (90, 60, 30), tol=6)
    assert load_image(p, max_side=None).size == (1600, 800)
    assert load_image(p, max_side=5000).size == (1600, 800)  # never upscales


def test_max_side_with_exif_rotation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "tall.jpg"
    Image.new("RGB", (1200, 400), (200, 0, 0)).save(p, exif=exif.tobytes())
    assert load_image(p, max_side=300).size == (100, 300)


def test_jpeg_decoded_at_reduced_scale(tmp_path, monkeypatch):
    from PIL import JpegImagePlugin

    calls = []
    real = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        out = real(self, mode, size)
        calls.append((size, self.size))
        return out

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    p = tmp_path / "huge.jpg"
    Image.new("RGB", (2048, 1024), (40, 80, 120)).save(p)
    img = load_image(p, max_side=256)
    assert img.size == (256, 128)
    assert calls == [((256, 256), (512, 256))]  # DCT-scaled by 4 before the final Lanczos


def test_corrupt_exif_is_ignored_quietly(tmp_path):
    import warnings

    p = tmp_path / "badexif.jpg"
    exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00" + b"\xff" * 7
    Image.new("RGB", (20, 10), (0, 0, 255)).save(p, exif=exif)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        img = load_image(p)
    assert img.mode == "RGB" and sorted(img.size) == [10, 20]


# --------------------------------------------------------------------------------------------
# fuzz: arbitrary bytes -> RGB image or ImageError, nothing else
# --------------------------------------------------------------------------------------------


def _valid_bytes(fmt: str) -> bytes:
    buf = io.BytesIO()
    _noise(12, 9, seed=1).save(buf, fmt)
    return buf.getvalue()


_SEEDS = [_valid_bytes("JPEG"), _valid_bytes("PNG"), _valid_bytes("GIF")]
_FUZZ_DIR = tempfile.mkdtemp(prefix="painterid-fuzz-")


@st.composite
def _mutated(draw):
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(data)))
    return bytes(data[:cut])


_fuzz_bytes = st.one_of(
    st.binary(max_size=512),
    st.builds(lambda head, tail: head + tail, st.sampled_from([s[:40] for s in _SEEDS]), st.binary(max_size=256)),
    _mutated(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_fuzz_bytes, ext=st.sampled_from([".jpg", ".png"]))
def test_fuzz_load_image(data, ext):
    p = os.path.join(_FUZZ_DIR, "fuzz" + ext)
    with open(p, "wb") as f:
        f.write(data)
    try:
        img = load_image(p, max_side=64)
    except ImageError as e:
        assert "\n" not in str(e) and str(e).startswith(p + ": ")
    else:
        assert img.mode == "RGB" and img.width >= 1 and img.height >= 1
        assert max(img.size) <= 64


# --------------------------------------------------------------------------------------------
# views
# --------------------------------------------------------------------------------------------

H = W = 32
DC = {"input_size": (3, H, W), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bicubic", "crop_pct": 0.875}


def _unnorm(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5 + 0.5  # back to 0..1


def test_every_registered_view_embeds_to_one_vector_of_the_advertised_width():
    """The Embedder itself (efficientnet_lite0) embeds one image per registered view: one unit vector as wide as
    it advertises (the backbone's width, 5x for `corners`); each view's vector is the registry's combine rule
    applied to the per-view vectors, computed here one view at a time (single: view 0; concat: the views side by
    side; mean: their mean), then L2-normalised.  An Embedder that averages `corners` or keeps only its first
    view, or a registry whose combine disagrees with the Embedder, fails."""
    from painterid.embedding.embedder import Embedder, EmbeddingConfig
    from painterid.embedding.images import VIEW_REGISTRY

    assert VIEWS == VIEW_REGISTRY.names() and set(VIEW_COMBINE) == set(VIEWS)
    img = _noise(150, 110)
    width = None
    for entry in VIEW_REGISTRY:
        emb = Embedder(EmbeddingConfig(backbone="efficientnet_lite0", view=entry.name, pool="gap", n_patches=3),
                       device="cpu", num_workers=0)
        width = width or emb.extractor.dim
        vec = emb.embed_images([img])
        n = entry.n_views or 3
        assert vec.shape == (1, emb.dim) and emb.dim == width * (n if entry.combine == "concat" else 1)
        assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)
        views = emb.transform(img)  # [V, 3, H, W], the views the Embedder makes
        per_view = emb.embed_views(views.unsqueeze(1))  # each view alone: [V, width], unit vectors
        assert per_view.shape == (n, width)
        rule = {"single": per_view[0], "concat": per_view.reshape(-1), "mean": per_view.mean(0)}[entry.combine]
        np.testing.assert_allclose(vec[0], rule / np.linalg.norm(rule), atol=1e-5)
    with pytest.raises(ValueError, match="valid views: resize, center, corners, patches"):
        ViewTransform("bogus", DC)


def test_corners_starts_with_the_resize_view():
    """`corners`' first block is the `resize` view: renormalised, it is the `resize` embedding of the same image,
    and the four corner blocks differ from it (a corners view that repeats one crop fails)."""
    from painterid.embedding.embedder import Embedder, EmbeddingConfig

    img = _noise(300, 200, seed=3)
    vecs = {v: Embedder(EmbeddingConfig(backbone="efficientnet_lite0", view=v, pool="gap"), device="cpu",
                        num_workers=0).embed_images([img])[0] for v in ("resize", "corners")}
    blocks = vecs["corners"].reshape(5, -1)
    np.testing.assert_allclose(blocks[0] / np.linalg.norm(blocks[0]), vecs["resize"], atol=1e-5)
    for k in range(1, 5):
        assert np.abs(blocks[k] - blocks[0]).max() > 1e-3


@pytest.mark.parametrize("size", [(300, 100), (100, 300), (32, 32), (10, 7), (40, 33)])
@pytest.mark.parametrize("view,n", [("resize", 1), ("center", 1), ("corners", 5), ("patches", 8), ("patches", 3)])
def test_view_shapes(size, view, n):
    t = ViewTransform(view, DC, n_patches=n if view == "patches" else 8)
    assert t.n_views == n
    x = t(_noise(*size))
    assert x.shape == (n, 3, H, W) and x.dtype == torch.float32


def test_non_square_input_size():
    dc = dict(DC, input_size=(3, 24, 40))
    for view in VIEWS:
        t = ViewTransform(view, dc, n_patches=4)
        for size in [(200, 50), (30, 90), (10, 10)]:
            assert t(_noise(*size)).shape == (t.n_views, 3, 24, 40)


@pytest.mark.parametrize("view", VIEWS)
def test_normalisation_mid_grey_is_zero(view):
    x = ViewTransform(view, DC)(Image.new("RGB", (90, 70), (128, 128, 128)))
    assert torch.allclose(x, torch.zeros_like(x), atol=0.01)


def test_normalisation_uses_mean_and_std():
    dc = dict(DC, mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.125))
    x = ViewTransform("resize", dc)(Image.new("RGB", (40, 40), (255, 255, 255)))
    assert torch.allclose(x[0, :, 0, 0], torch.tensor([1.8, 3.2, 5.6]), atol=1e-4)


def test_non_rgb_input_is_converted():
    x = ViewTransform("resize", DC)(Image.new("L", (40, 40), 128))
    assert x.shape == (1, 3, H, W)


@pytest.mark.parametrize("size", [(64, 64), (100, 80)])
def test_corners_are_the_corners(size):
    w, h = size
    img = Image.new("RGB", size)
    ul, ur, lr, ll = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
    img.paste(ul, (0, 0, w // 2, h // 2))
    img.paste(ur, (w // 2, 0, w, h // 2))
    img.paste(lr, (w // 2, h // 2, w, h))
    img.paste(ll, (0, h // 2, w // 2, h))
    x = _unnorm(ViewTransform("corners", DC)(img))
    means = (x.mean(dim=(2, 3)) * 255).round()
    # view 0: whole image resized -> the average of the four quadrants
    assert torch.allclose(x[0], _unnorm(ViewTransform("resize", DC)(img))[0])
    # views 1..4 clockwise from upper-right: UR, LR, LL, UL, each uniform at native resolution
    for k, colour in enumerate((ur, lr, ll, ul), start=1):
        assert means[k].tolist() == list(map(float, colour)), (k, means[k])


def test_corners_upscale_small_images():
    img = Image.new("RGB", (16, 8), (0, 0, 0))
    img.paste((255, 255, 255), (8, 0, 16, 8))  # right half white
    x = _unnorm(ViewTransform("corners", DC)(img))  # upscaled to 64x32: corners are halves
    assert x.shape == (5, 3, H, W)
    assert x[1].mean() > 0.95 and x[2].mean() > 0.95  # UR, LR in the white half
    assert x[3].mean() < 0.05 and x[4].mean() < 0.05  # LL, UL in the black half


def test_center_crops_the_middle():
    img = Image.new("RGB", (32, 128), (255, 0, 0))
    img.paste((0, 0, 255), (0, 32, 32, 96))  # top and bottom quarters red, middle blue
    c = _unnorm(ViewTransform("center", DC)(img))[0]
    assert c[2].min() > 0.95 and c[0].max() < 0.05  # all blue
    r = _unnorm(ViewTransform("resize", DC)(img))[0]
    assert r[0, 0].mean() > 0.9  # the squashed whole image still shows red at the top


def _checkerboard(size: int) -> Image.Image:
    yy, xx = np.indices((size, size))
    return Image.fromarray(((xx + yy) % 2 * 255).astype(np.uint8), "L").convert("RGB")


def test_patches_keep_native_resolution():
    img = _checkerboard(256)
    patches = _unnorm(ViewTransform("patches", DC, n_patches=6)(img))
    resized = _unnorm(ViewTransform("resize", DC)(img))
    assert patches.std() > 0.45  # the 1-pixel checkerboard survives
    assert resized.std() < 0.1  # ... but is blurred to grey by resizing 256 -> 32


def test_patches_respect_patch_max_side():
    img = _checkerboard(512)
    capped = _unnorm(ViewTransform("patches", DC, n_patches=4, patch_max_side=128)(img))
    assert capped.std() < 0.1  # 512 -> 128 first, so the fine texture is gone


def test_patches_deterministic_and_distinct():
    img = _noise(200, 120, seed=3)
    t = ViewTransform("patches", DC, n_patches=8)
    a, b = t(img), t(img)
    assert torch.equal(a, b)
    flat = a.flatten(1)
    assert len({tuple(v[:50].tolist()) for v in flat}) == 8  # eight different places


def test_patches_are_crops_of_the_image():
    img = _noise(100, 64, seed=4)
    x = ViewTransform("patches", DC, n_patches=5)(img)
    arr = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255
    for k, (top, left) in enumerate(patch_grid(100, 64, W, H, 5)):
        assert torch.allclose(_unnorm(x[k]), arr[:, top : top + H, left : left + W], atol=1e-6)


@pytest.mark.parametrize("n", [1, 2, 5, 8, 12])
@pytest.mark.parametrize("size", [(1024, 341), (64, 64), (32, 300), (32, 32)])
def test_patch_grid_covers_image(n, size):
    w, h = size
    pos = patch_grid(w, h, 32, 32, n)
    assert len(pos) == n
    assert pos == patch_grid(w, h, 32, 32, n)
    assert all(0 <= t <= h - 32 and 0 <= left <= w - 32 for t, left in pos)
    tops, lefts = {t for t, _ in pos}, {left for _, left in pos}
    for values, span in ((tops, h - 32), (lefts, w - 32)):
        if len(values) > 1:  # several rows (columns): they reach both edges
            assert min(values) == 0 and max(values) == span
    if n >= 2 and max(w, h) > 32:  # the long direction is always spanned edge to edge
        assert len(tops if h > w else lefts) > 1
    if n >= 4 and w == h > 32:  # a square image gets a 2-D grid
        assert len(tops) > 1 and len(lefts) > 1
    if n > 1 and (w > 32 or h > 32):
        assert len(set(pos)) == n


def test_unknown_view_lists_valid_ones():
    with pytest.raises(ValueError) as info:
        ViewTransform("tiles", DC)
    for v in VIEWS:
        assert v in str(info.value)


def test_bad_data_config():
    with pytest.raises(ValueError):
        ViewTransform("resize", {"mean": (0.5,) * 3, "std": (0.5,) * 3})
    with pytest.raises(ValueError):
        ViewTransform("resize", dict(DC, interpolation="random-ish"))


@pytest.mark.parametrize("interp", ["bilinear", "bicubic", "nearest", "lanczos"])
def test_interpolations(interp):
    assert ViewTransform("center", dict(DC, interpolation=interp))(_noise(50, 40)).shape == (1, 3, H, W)
