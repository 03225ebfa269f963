"""Procedural "artists" for tests and the demo.

Each synthetic artist has a style (:class:`ArtistStyle`) drawn from a seeded RNG: a palette built around a
few hues with the artist's own saturation/value tendencies, a ground tone, a brush-stroke texture (length,
width, curvature, dominant orientation and spread, density, opacity, impasto-like highlights, long strokes vs
dabs vs stippling), a canvas grain and a compositional tendency. Every painting is a new random composition
rendered in that style, so two paintings by one artist share palette and texture but not content. The
palette usage (a random subset with random weights) and the global brightness (±10%) vary per painting, so
that the mean colour alone is a weak cue.

Everything is numpy + PIL, deterministic for a given seed, and fast (a 192x192 painting in a few ms to a few
tens of ms).
"""

from __future__ import annotations

import colorsys
import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "STROKE_KINDS",
    "COMPOSITIONS",
    "ArtistStyle",
    "random_style",
    "paint",
    "artist_name",
    "make_synthetic_dataset",
]

STROKE_KINDS = ("long", "dab", "stipple", "mixed")
COMPOSITIONS = ("horizon", "blobs", "bands", "scatter")
LAYOUTS = ("kaggle", "folders")
KAGGLE_COLUMNS = ("filename", "artist", "title", "style", "genre", "date")
JPEG_QUALITY = 90
ASPECTS = ((1, 1), (3, 4), (4, 3))  # width : height
_SUPERSAMPLE = 2
_MAX_STROKES = 2500
_MAX_DOTS = 5000

_MOVEMENT = {"long": "Synthetic Expressionism", "dab": "Synthetic Impressionism",
             "stipple": "Synthetic Pointillism", "mixed": "Synthetic Post-Impressionism"}
_GENRE = {"horizon": "landscape", "blobs": "still life", "bands": "abstract", "scatter": "abstract"}

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class ArtistStyle:
    """One synthetic artist's style. Lengths and widths are fractions of the painting's shorter side."""

    palette: tuple[RGB, ...]          # 4-6 colours
    ground: RGB                       # ground / priming tone
    ground_show: float                # 0..1, how much the ground shows through the underpainting
    stroke_kind: str                  # one of STROKE_KINDS
    stroke_length: float              # fraction of the short side
    stroke_width: float               # fraction of the short side
    curvature: float                  # bend of a stroke, as a fraction of its length
    orientation: float                # dominant stroke orientation, radians
    orientation_spread: float         # std of the orientation around the dominant one, radians
    flow: float                       # 0..1, how much the orientation follows a per-painting swirl field
    density: float                    # coverage multiplier
    opacity: float                    # mean alpha of a stroke, 0..1
    highlight: float                  # probability of an impasto highlight ridge on a stroke
    color_jitter: float               # std of per-stroke colour noise, in 0..255 units
    value_jitter: float               # std of per-stroke multiplicative lightness noise (texture contrast)
    region_coherence: float           # probability a stroke takes its region's colour (vs any palette colour)
    grain: float                      # std of the canvas grain noise, in 0..255 units
    composition: str                  # one of COMPOSITIONS

    @property
    def movement(self) -> str:
        return _MOVEMENT[self.stroke_kind]

    @property
    def genre(self) -> str:
        return _GENRE[self.composition]


def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1)))
    return (round(r * 255), round(g * 255), round(b * 255))


def random_style(rng: np.random.Generator) -> ArtistStyle:
    """Draw a random artist style."""
    n_hues = int(rng.integers(1, 4))
    base_hues = rng.random(n_hues)
    sat_mean = rng.uniform(0.15, 0.85)
    val_mean = rng.uniform(0.35, 0.9)
    n_colours = int(rng.integers(4, 7))
    # A dark and a light of the artist's own (tinted) kind, then mid colours around the base hues.
    palette = [
        _hsv(base_hues[0] + rng.normal(0, 0.05), sat_mean * rng.uniform(0.3, 1.0), rng.uniform(0.08, 0.3)),
        _hsv(base_hues[-1] + rng.normal(0, 0.05), sat_mean * rng.uniform(0.1, 0.6), rng.uniform(0.85, 1.0)),
    ]
    for _ in range(n_colours - 2):
        h = base_hues[rng.integers(n_hues)] + rng.normal(0, 0.04)
        palette.append(_hsv(h, sat_mean + rng.normal(0, 0.12), val_mean + rng.normal(0, 0.18)))
    ground_hue = base_hues[0] + rng.normal(0, 0.1) if rng.random() < 0.6 else rng.random()
    ground = _hsv(ground_hue, rng.uniform(0.05, 0.5), rng.choice([rng.uniform(0.15, 0.35), rng.uniform(0.6, 0.95)]))

    kind = str(rng.choice(STROKE_KINDS))
    if kind == "long":
        length, width = rng.uniform(0.12, 0.35), rng.uniform(0.008, 0.025)
    elif kind == "dab":
        length, width = rng.uniform(0.03, 0.08), rng.uniform(0.02, 0.045)
    elif kind == "stipple":
        length, width = rng.uniform(0.01, 0.02), rng.uniform(0.01, 0.02)
    else:
        length, width = rng.uniform(0.06, 0.18), rng.uniform(0.01, 0.03)
    return ArtistStyle(
        palette=tuple(palette),
        ground=ground,
        ground_show=float(rng.uniform(0.0, 0.6)),
        stroke_kind=kind,
        stroke_length=float(length),
        stroke_width=float(width),
        curvature=float(rng.uniform(0.0, 0.45)),
        orientation=float(rng.uniform(0, math.pi)),
        orientation_spread=float(rng.choice([rng.uniform(0.05, 0.35), rng.uniform(0.5, 1.6)])),
        flow=float(rng.choice([0.0, rng.uniform(0.3, 1.0)])),
        density=float(rng.uniform(0.8, 2.5)),
        opacity=float(rng.uniform(0.45, 1.0)),
        highlight=float(rng.choice([0.0, rng.uniform(0.2, 0.7)])),
        color_jitter=float(rng.uniform(3, 22)),
        value_jitter=float(rng.uniform(0.04, 0.3)),
        region_coherence=float(rng.uniform(0.55, 0.95)),
        grain=float(rng.uniform(0, 10)),
        composition=str(rng.choice(COMPOSITIONS)),
    )


# ---------------------------------------------------------------------------------------------- composition


def _region_map(style: ArtistStyle, rng: np.random.Generator, n_regions: int):
    """Return f(x, y) -> region index for points in [0,1]^2 (vectorised), a new layout for each painting."""
    comp = style.composition
    if comp == "horizon":
        y0 = rng.uniform(0.25, 0.7)
        amp, freq, phase = rng.uniform(0.0, 0.08), rng.uniform(0.5, 3.0), rng.uniform(0, 2 * math.pi)
        blobs = rng.random((int(rng.integers(0, 3)), 3)) * [1, 1, 0.2] + [0, 0, 0.05]

        def f(x, y):
            r = (y > y0 + amp * np.sin(2 * math.pi * freq * x + phase)).astype(int)
            for i, (bx, by, br) in enumerate(blobs):
                r = np.where((x - bx) ** 2 + (y - by) ** 2 < br**2, 2 + i, r)
            return r % n_regions
    elif comp == "blobs":
        k = int(rng.integers(3, 7))
        centres = rng.random((k, 2))
        weights = rng.uniform(0.5, 1.5, k)

        def f(x, y):
            d = (x[..., None] - centres[:, 0]) ** 2 + (y[..., None] - centres[:, 1]) ** 2
            return np.argmin(d * weights, axis=-1) % n_regions
    elif comp == "bands":
        k = int(rng.integers(2, 6))
        angle = rng.uniform(0, math.pi)
        wob, phase = rng.uniform(0, 0.1), rng.uniform(0, 2 * math.pi)
        ca, sa = math.cos(angle), math.sin(angle)

        def f(x, y):
            t = x * ca + y * sa + wob * np.sin(6 * (x * sa - y * ca) + phase)
            return np.floor(t * k).astype(int) % n_regions
    else:  # scatter: many small patches on a field
        k = int(rng.integers(6, 14))
        centres = rng.random((k, 3)) * [1, 1, 0.12] + [0, 0, 0.04]
        labels = rng.integers(1, n_regions, k)

        def f(x, y):
            r = np.zeros(np.shape(x), dtype=int)
            for (bx, by, br), lab in zip(centres, labels):
                r = np.where((x - bx) ** 2 + (y - by) ** 2 < br**2, lab, r)
            return r
    return f


# ---------------------------------------------------------------------------------------------- painting


def _size_tuple(size) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    w, h = size
    return int(w), int(h)


def paint(style: ArtistStyle, rng: np.random.Generator, size=(192, 192)) -> Image.Image:
    """Render one new painting (a fresh random composition) in ``style``; returns an RGB image of ``size`` (W, H)."""
    W, H = _size_tuple(size)
    if W < 8 or H < 8:
        raise ValueError(f"painting size must be at least 8x8, got {W}x{H}")
    S = _SUPERSAMPLE
    Ws, Hs = W * S, H * S
    canvas, colours, k, weights, region_colour, region_of = _underpainting(style, rng, Ws, Hs)
    draw = ImageDraw.Draw(canvas, "RGBA")
    plan = _stroke_plan(style, rng, Ws, Hs, colours, k, weights, region_colour, region_of)
    for i in range(plan.n):
        _draw_stroke(draw, plan, i, style.stroke_kind)
    img = canvas.resize((W, H), Image.BOX)
    arr = np.asarray(img, dtype=np.float32)
    if style.grain > 0:
        arr = arr + rng.normal(0, style.grain, (H, W, 1)).astype(np.float32)
    arr = arr * rng.uniform(0.9, 1.1)  # global brightness jitter
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")


def _underpainting(style: ArtistStyle, rng: np.random.Generator, Ws: int, Hs: int):
    """This painting's colours and regions, and the canvas with the region map coarsely blended with the ground."""
    # Per-painting palette usage: a random subset with random weights.
    pal = np.asarray(style.palette, dtype=np.float64)
    n = len(pal)
    k = int(rng.integers(min(3, n), n + 1))
    subset = rng.choice(n, size=k, replace=False)
    weights = rng.dirichlet(np.full(k, 0.6))
    colours = pal[subset]
    # Each region gets a colour drawn according to the painting's weights.
    n_regions = 6
    region_colour = rng.choice(k, size=n_regions, p=weights)
    region_of = _region_map(style, rng, n_regions)
    g = 16
    gy, gx = np.mgrid[0:g, 0:g]
    under = colours[region_colour[region_of((gx + 0.5) / g, (gy + 0.5) / g)]]
    under = (1 - style.ground_show) * under + style.ground_show * np.asarray(style.ground, dtype=np.float64)
    canvas = Image.fromarray(np.clip(under, 0, 255).astype(np.uint8), "RGB").resize((Ws, Hs), Image.BILINEAR)
    return canvas, colours, k, weights, region_colour, region_of


def _stroke_plan(style: ArtistStyle, rng: np.random.Generator, Ws: int, Hs: int, colours, k, weights,
                 region_colour, region_of) -> SimpleNamespace:
    """Position, orientation, size, bend, colour, opacity, highlight and kind of every stroke."""
    short = min(Ws, Hs)
    L = max(2.0, style.stroke_length * short)
    wid = max(1.0, style.stroke_width * short)
    kind = style.stroke_kind
    if kind == "stipple":
        unit_area = math.pi * (wid / 2) ** 2
    elif kind == "dab":
        unit_area = math.pi * L * wid / 4
    else:
        unit_area = L * wid
    n_strokes = int(np.clip(style.density * Ws * Hs / unit_area, 60, _MAX_DOTS if kind == "stipple" else _MAX_STROKES))
    pos = rng.random((n_strokes, 2))
    # Orientation: the artist's dominant angle, optionally bent by a per-painting swirl field.
    theta = style.orientation + rng.normal(0, style.orientation_spread, n_strokes)
    if style.flow > 0:
        fx, fy, ph = rng.uniform(1, 4), rng.uniform(1, 4), rng.uniform(0, 2 * math.pi, 2)
        swirl = np.sin(2 * math.pi * fx * pos[:, 0] + ph[0]) + np.cos(2 * math.pi * fy * pos[:, 1] + ph[1])
        theta = theta + style.flow * 1.2 * swirl
    lengths = L * rng.uniform(0.6, 1.4, n_strokes)
    widths = wid * rng.uniform(0.7, 1.3, n_strokes)
    bends = style.curvature * rng.uniform(-1, 1, n_strokes)
    # Colours: the region's colour mostly, else any palette colour of this painting, plus jitter.
    reg = region_colour[region_of(pos[:, 0], pos[:, 1])]
    other = rng.choice(k, size=n_strokes, p=weights)
    idx = np.where(rng.random(n_strokes) < style.region_coherence, reg, other)
    cols = colours[idx] * np.clip(1 + rng.normal(0, style.value_jitter, (n_strokes, 1)), 0.3, 2.0)
    cols = cols + rng.normal(0, style.color_jitter, (n_strokes, 3))
    cols = np.clip(cols, 0, 255).astype(int)
    alphas = np.clip(style.opacity * rng.uniform(0.75, 1.0, n_strokes) * 255, 20, 255).astype(int)
    highlights = rng.random(n_strokes) < style.highlight
    if kind == "mixed":
        kinds = np.where(rng.random(n_strokes) < 0.5, 0, 1)  # 0 = long, 1 = dab
    else:
        kinds = np.full(n_strokes, {"long": 0, "dab": 1, "stipple": 2}[kind])
    return SimpleNamespace(n=n_strokes, xs=pos[:, 0] * Ws, ys=pos[:, 1] * Hs, theta=theta, lengths=lengths,
                           widths=widths, bends=bends, cols=cols, alphas=alphas, highlights=highlights, kinds=kinds)


_TS = np.linspace(0, 1, 5)
_CIRCLE = np.linspace(0, 2 * math.pi, 10, endpoint=False)


def _draw_stroke(draw, plan: SimpleNamespace, i: int, kind: str) -> None:
    """Stroke i of the plan: a stipple dot, a dab (rotated ellipse) or a long stroke (quadratic Bezier)."""
    col = tuple(int(c) for c in plan.cols[i]) + (int(plan.alphas[i]),)
    c, s = math.cos(plan.theta[i]), math.sin(plan.theta[i])
    x, y, ln, w = plan.xs[i], plan.ys[i], plan.lengths[i], plan.widths[i]
    if plan.kinds[i] == 2:  # stipple dot
        r = w / 2
        draw.ellipse((x - r, y - r, x + r, y + r), fill=col)
        return
    if plan.kinds[i] == 1:  # dab: a rotated ellipse
        a, b = ln / 2 if kind == "dab" else ln / 4, w / 2
        px = x + a * np.cos(_CIRCLE) * c - b * np.sin(_CIRCLE) * s
        py = y + a * np.cos(_CIRCLE) * s + b * np.sin(_CIRCLE) * c
        draw.polygon(list(zip(px.tolist(), py.tolist())), fill=col)
        if plan.highlights[i]:
            hc = tuple(int(v + (255 - v) * 0.45) for v in col[:3]) + (int(col[3] * 0.8),)
            ox, oy = -s * b * 0.35, c * b * 0.35
            draw.line([(x - a * 0.5 * c + ox, y - a * 0.5 * s + oy), (x + a * 0.5 * c + ox, y + a * 0.5 * s + oy)],
                      fill=hc, width=max(1, int(b * 0.4)))
        return
    bend = plan.bends[i] * ln
    p0 = np.array([x - c * ln / 2, y - s * ln / 2])
    p2 = np.array([x + c * ln / 2, y + s * ln / 2])
    p1 = np.array([x - s * bend, y + c * bend])
    ts = _TS
    pts = ((1 - ts)[:, None] ** 2) * p0 + (2 * (1 - ts) * ts)[:, None] * p1 + (ts**2)[:, None] * p2
    draw.line([tuple(p) for p in pts.tolist()], fill=col, width=max(1, int(round(w))), joint="curve")
    if plan.highlights[i]:
        hc = tuple(int(v + (255 - v) * 0.45) for v in col[:3]) + (int(col[3] * 0.8),)
        off = np.array([-s, c]) * w * 0.25
        draw.line([tuple(p) for p in (pts + off).tolist()], fill=hc, width=max(1, int(round(w * 0.3))))


# ---------------------------------------------------------------------------------------------- data sets


def artist_name(i: int) -> str:
    """The name of synthetic artist ``i``: ``synth-artist-00``, ``synth-artist-01``, ..."""
    return f"synth-artist-{i:02d}"


def _painting_size(size, rng: np.random.Generator) -> tuple[int, int]:
    """An int is the longer side and the aspect ratio varies (1:1, 3:4, 4:3); a tuple (W, H) is used as is."""
    if not isinstance(size, (int, np.integer)):
        return _size_tuple(size)
    aw, ah = ASPECTS[int(rng.integers(len(ASPECTS)))]
    long_side = int(size)
    m = max(aw, ah)
    return max(8, round(long_side * aw / m)), max(8, round(long_side * ah / m))


def _jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False, subsampling=0)
    return buf.getvalue()


def make_synthetic_dataset(
    root: Path,
    n_artists: int = 8,
    per_artist: int = 6,
    size: int | tuple[int, int] = 192,
    seed: int = 0,
    layout: str = "kaggle",
) -> Path:
    """Write a synthetic data set of ``n_artists`` x ``per_artist`` JPEG paintings under ``root``; returns ``root``.

    ``layout="kaggle"`` mirrors Kaggle's "Painter by Numbers": ``root/train/00000.jpg ...`` (artists
    interleaved in a seeded order) and ``root/train_info.csv`` with ``filename,artist,title,style,genre,date``.
    ``layout="folders"``: ``root/<artist>/000.jpg ...``, one sub-folder per artist.

    ``size``: an int is the longer side, with the aspect ratio varying per painting (1:1, 3:4, 4:3); a tuple
    ``(W, H)`` fixes every painting's size. The same arguments give byte-identical files.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if n_artists < 1 or per_artist < 1:
        raise ValueError("n_artists and per_artist must be at least 1")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)

    # Every artist and every painting gets its own stream, so adding artists never changes existing ones.
    styles = [random_style(np.random.default_rng([seed, 0, a])) for a in range(n_artists)]
    items = []  # (artist index, painting index, image)
    for a, style in enumerate(styles):
        for p in range(per_artist):
            prng = np.random.default_rng([seed, 1, a, p])
            items.append((a, p, paint(style, prng, _painting_size(size, prng))))

    if layout == "folders":
        for a, p, img in items:
            d = root / artist_name(a)
            d.mkdir(exist_ok=True)
            (d / f"{p:03d}.jpg").write_bytes(_jpeg_bytes(img))
        return root

    train = root / "train"
    train.mkdir(exist_ok=True)
    order = np.random.default_rng([seed, 2]).permutation(len(items))
    rows = []
    for file_no, j in enumerate(order):
        a, p, img = items[int(j)]
        name = f"{file_no:05d}.jpg"
        (train / name).write_bytes(_jpeg_bytes(img))
        style = styles[a]
        rows.append((name, artist_name(a), f"Untitled {p + 1}", style.movement, style.genre, ""))
    with open(root / "train_info.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(KAGGLE_COLUMNS)
        w.writerows(rows)
    return root
