"""explain: what drives the pair score of two paintings, as a PNG.

A model of the `patches` view (the shipped ones) is explained by the patches it actually compared
(:func:`explain_patches`, painterid.tasks.evidence): each native-resolution patch of the first painting with what it
adds to the score's margin over the threshold and its best-matching patch of the second. A Grad-CAM of a resized
stand-in put the heat on the dark background of a Rembrandt portrait whatever it was paired with, so it is no longer
used for them. Models of the other views (`resize`, `center`, `corners`), whose input is the image Grad-CAM maps,
keep the Grad-CAM path below:

For a pair (a, b) and a :class:`~painterid.scoring.PairModel`:

1. each image is loaded and turned into the model's views (the model's embedding fingerprint rebuilds the
   :class:`~painterid.embedding.embedder.Embedder`, exactly as ``compare`` does);
2. the views of both images go through the backbone with gradients on, and the embedding is computed through the
   same :meth:`FeatureExtractor.forward_with_map` pooling path and the same per-view normalise / combine /
   normalise steps as :meth:`Embedder.embed_views`, so the score is differentiable and equal to ``compare``'s;
3. the pair score is the model's head on the two embeddings (the raw score, before any CSLS normalisation);
4. that score is differentiated with respect to the feature map of a (b fixed) and of b (a fixed): the map is
   ``forward_features``' output for ``gap`` pooling and the last stage's map for ``stage`` / ``style`` / ``both``.  With
   ``style`` pooling the score also depends on the channel means / standard deviations of the earlier stages;
   the map here shows only what flows through the last stage;
5. Grad-CAM: weights ``w_c`` = spatially averaged gradients, map = ``ReLU(sum_c w_c A_c)``, upsampled onto the
   region of the image the view covers and scaled to [0, 1] (0 outside that region).  ``cam="hirescam"``
   uses ``ReLU(sum_c grad_c * A_c)`` per position instead.  For ``gap`` / ``stage`` pooling the two are identical (the
   gradient of an average is the same at every position).  For ``style`` / ``both`` they are not: Grad-CAM's
   averaged gradients keep only what flows through the channel *means* (the gradient through a channel's
   standard deviation, proportional to ``A - mean``, averages to zero), and on synthetic pairs with
   efficientnet_lite0 it gave an all-zero map for one painting in 2 of 4 pairs; so ``cam="auto"`` (the default)
   is Grad-CAM for ``gap`` / ``stage`` and HiResCAM otherwise.

The embeddings are L2-normalised, so the score does not change when a painting's feature vector is scaled: the
positive heat marks where a painting's features point more towards the other painting than its own average
does, and a map can be empty (all zero) when no region raises the score.

Views: ``resize`` and ``center`` are one view, so the map covers the whole image or the centre crop the model
sees (drawn as a dashed box).  ``corners`` (concatenated views) runs all five views, and the map is that of
view 0, the resized whole image.  ``patches`` (mean of patch vectors) is explained through the resized whole
image as a stand-in; the reported score is still the model's own, and ``explained_score`` the stand-in's.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from painterid.core.errors import PainterIDError

__all__ = ["CAMS", "explain_pair", "gradcam", "view_box", "render_explanation"]

CAMS = ("auto", "gradcam", "hirescam")
DISPLAY_MAX_SIDE = 1024  # the figure (and the returned maps) show images at most this long on the longest side


def view_box(view: str, width: int, height: int, data_config: dict) -> tuple[float, float, float, float]:
    """``(left, top, width, height)`` in image pixels of the region the view's input tensor shows.

    ``center`` mirrors :meth:`ViewTransform._center` (torchvision: shorter side to ``round(max(H, W) /
    crop_pct)``, longer side truncated, then a centred crop rounded half to even); every other view explained
    here is the whole image squashed to H x W."""
    if view != "center":
        return 0.0, 0.0, float(width), float(height)
    _, h_in, w_in = (int(v) for v in data_config["input_size"])
    crop_pct = float(data_config.get("crop_pct") or 0.875)
    short_to = round(max(h_in, w_in) / crop_pct)
    if width <= height:
        rw, rh = short_to, int(short_to * height / width)
    else:
        rw, rh = int(short_to * width / height), short_to
    top, left = int(round((rh - h_in) / 2.0)), int(round((rw - w_in) / 2.0))
    sx, sy = width / rw, height / rh
    return left * sx, top * sy, w_in * sx, h_in * sy


def _as_nchw(t, num_chs: int, model):
    """A feature map as NCHW: NCHW / NHWC maps as they are or permuted, ViT tokens (NLC) reshaped to their grid."""
    import math

    if t.ndim == 4:
        if t.shape[1] != num_chs and t.shape[-1] == num_chs:
            t = t.permute(0, 3, 1, 2)
        return t
    if t.ndim == 3:
        if t.shape[-1] != num_chs and t.shape[1] == num_chs:
            t = t.transpose(1, 2)
        prefix = int(getattr(model, "num_prefix_tokens", 0) or 0)
        grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
        n = t.shape[1]
        if grid is None or int(grid[0]) * int(grid[1]) != n - prefix:
            side = math.isqrt(n - prefix)
            if side * side != n - prefix:
                prefix = n - math.isqrt(n) ** 2
                side = math.isqrt(n)
            grid = (side, side)
        tokens = t[:, prefix:]
        return tokens.transpose(1, 2).reshape(t.shape[0], num_chs, int(grid[0]), int(grid[1]))
    raise PainterIDError(f"explain needs a spatial feature map; this backbone gives one of shape {tuple(t.shape)}")


def gradcam(fmap, grad, cam: str = "gradcam"):
    """``[N, h, w]`` class-activation maps from feature maps and the score's gradients (both ``[N, C, h, w]``)."""
    import torch

    if cam not in ("gradcam", "hirescam"):
        raise PainterIDError(f"unknown cam '{cam}'; choose gradcam or hirescam")
    if cam == "gradcam":
        raw = (grad.mean(dim=(2, 3), keepdim=True) * fmap).sum(1)
    else:
        raw = (grad * fmap).sum(1)
    return torch.relu(raw)


def _to_frame(cam, box: tuple[float, float, float, float], size: tuple[int, int], scale: float) -> np.ndarray:
    """Upsample one ``[h, w]`` map onto ``box`` (image pixels) of a ``size`` (W, H) frame, scaled to [0, 1] there."""
    import torch
    import torch.nn.functional as F

    w_img, h_img = size
    left, top, bw, bh = (v * scale for v in box)
    x0, y0 = int(round(left)), int(round(top))
    x1, y1 = int(round(left + bw)), int(round(top + bh))
    cam = cam.detach().float().cpu()
    up = F.interpolate(cam[None, None], size=(max(1, y1 - y0), max(1, x1 - x0)), mode="bilinear",
                       align_corners=False)[0, 0]
    lo, hi = float(up.min()), float(up.max())
    up = ((up - lo) / (hi - lo) if hi - lo > 1e-12 * max(1.0, abs(hi)) else torch.zeros_like(up)).numpy()
    frame = np.zeros((h_img, w_img), dtype=np.float32)
    fy0, fx0, fy1, fx1 = max(0, y0), max(0, x0), min(h_img, y1), min(w_img, x1)
    frame[fy0:fy1, fx0:fx1] = up[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    return frame


def _display(img, max_side: int):
    """The image as the figure shows it (downscaled to ``max_side``) and the scale from image to display pixels."""
    from PIL import Image

    w, h = img.size
    if max(w, h) <= max_side:
        return img, 1.0
    s = max_side / max(w, h)
    return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS), s


def _cams(pm, embedder, transform, img_a, img_b, cam: str):
    """Differentiate the raw head score of the pair through the feature maps; (embeddings, raw score, maps)."""
    import torch
    import torch.nn.functional as F

    extractor = embedder.extractor
    with torch.inference_mode(False), torch.enable_grad():  # works when the caller is in inference mode
        views = torch.stack([transform(img_a), transform(img_b)])  # [2, V, 3, H, W]
        n_views = views.shape[1]
        x = views.flatten(0, 1).to(embedder.device).requires_grad_(True)
        feats, fmap = extractor.forward_with_map(x)
        feats = F.normalize(feats.float(), dim=-1).view(2, n_views, -1)
        if embedder.combine == "concat":
            emb = feats.flatten(1)
        else:  # single, or the one stand-in view of patches
            emb = feats.mean(1)
        emb = _chain_torch(pm.chain, F.normalize(emb, dim=-1).cpu())
        raw = pm.head(emb[:1], emb[1:]).reshape(())
        (grad,) = torch.autograd.grad(raw, fmap)
    num_chs = int(extractor.stage_channels[-1]) if extractor.pool != "gap" else int(
        getattr(extractor.model, "num_features", fmap.shape[1]))
    fmap = _as_nchw(fmap.detach(), num_chs, extractor.model)
    grad = _as_nchw(grad, num_chs, extractor.model)
    rows = [0, n_views]  # view 0 of a, view 0 of b
    return emb, raw, gradcam(fmap[rows].float(), grad[rows].float(), cam)


def _framed(img_a, img_b, cams, box_view: str, data_config: dict, max_side: int):
    """Each image as displayed, its map placed in the frame of the view, and the view's box (None: whole image)."""
    shown, maps, boxes = [], [], []
    for img, c in zip((img_a, img_b), cams):
        disp, s = _display(img, max_side)
        box = view_box(box_view, img.width, img.height, data_config)
        shown.append(disp)
        maps.append(_to_frame(c, box, disp.size, s))
        boxes.append(None if box_view == "resize" else tuple(v * s for v in box))
    return shown, maps, boxes


def explain_pair(image_a: str | os.PathLike, image_b: str | os.PathLike, model, out: str | os.PathLike | None = None,
                 device: str | None = None, cam: str = "auto", embedder=None,
                 max_side: int = DISPLAY_MAX_SIDE) -> dict:
    """What drives the pair score under ``model`` (a PairModel or its directory): a `patches` model's patches
    (:func:`explain_patches`), else Grad-CAM maps. Returns ``score`` / ``probability`` / ``same_artist`` /
    ``threshold`` (as ``compare``), ``explained_view``, ``out`` (the PNG, written atomically) when asked; Grad-CAM:
    ``explained_score`` (the raw head score differentiated), ``map_a`` / ``map_b`` (each image as displayed)."""
    from painterid.core.io import check_config_match
    from painterid.embedding.embedder import embedder_for
    from painterid.embedding.images import ViewTransform, load_image
    from painterid.scoring.loading import single_model

    if cam not in CAMS:
        raise PainterIDError(f"unknown cam '{cam}'; choose one of: {', '.join(CAMS)}")
    if out is not None and Path(out).suffix.lower() != ".png":
        raise PainterIDError(f"{out}: the heatmap figure is a PNG; give a file name ending in .png")
    img_a, img_b = load_image(image_a), load_image(image_b)
    pm = single_model(model, "explain")  # a fused model: refused in one line
    if pm.embedding.get("view") == "patches":  # the patches it compared, not a resized stand-in
        return explain_patches(image_a, image_b, pm, out, device, embedder)
    if embedder is None:  # the model's own backbone file (finetune, cnn) resolved against its directory
        embedder = embedder_for(pm, device=device, num_workers=0, batch_size=2)
    else:
        check_config_match(embedder.fingerprint, pm.embedding, what="this machine's backbone",
                           fix="install the weights the model was made with")

    view = embedder.config.view
    if embedder.combine == "mean":  # patches: the resized whole image stands in for the patches
        transform = ViewTransform("resize", embedder.data_config)
        explained_view = "resize (the whole image standing in for the model's patches)"
    else:
        transform = embedder.transform
        explained_view = view if view in ("resize", "center") else "resize (view 0 of the model's corners)"
    box_view = "center" if view == "center" else "resize"

    extractor = embedder.extractor
    if cam == "auto":
        cam = "gradcam" if extractor.pool in ("gap", "stage") else "hirescam"
    emb, raw, cams = _cams(pm, embedder, transform, img_a, img_b, cam)

    if embedder.combine == "mean":  # the model's own score comes from its patches
        vecs = embedder.embed_images([img_a, img_b])
    else:
        vecs = emb.detach().numpy().astype(np.float32)
    score = float(pm.scores(vecs[:1], vecs[1:])[0])
    probability = float(pm.probability(np.array([score]))[0])

    shown, maps, boxes = _framed(img_a, img_b, cams, box_view, embedder.data_config, max_side)
    result = {
        "image_a": str(image_a), "image_b": str(image_b), "score": round(score, 6),
        "probability": round(probability, 6), "threshold": pm.threshold, "same_artist": bool(score >= pm.threshold),
        "method": pm.method, "explained_score": float(raw.detach()), "explained_view": explained_view,
        "cam": cam, "map_a": maps[0], "map_b": maps[1],
    }
    if out is not None:
        png = render_explanation(shown, maps, [Path(image_a).name, Path(image_b).name], _title(result), boxes,
                                 note=f"{cam} on the {'last stage' if extractor.pool != 'gap' else 'final'} "
                                      f"feature map · view: {explained_view}")
        result["out"] = str(_write_atomic(Path(out), png))
    return result


def explain_patches(image_a, image_b, pm, out=None, device=None, embedder=None) -> dict:
    """The patch evidence of a `patches` model (painterid.tasks.evidence): a's native-resolution patches, each
    with what it adds to (score - threshold) and its best-matching patch of b, drawn side by side in `out`."""
    from painterid.tasks.evidence import patch_evidence

    ev = patch_evidence(pm, image_a, [image_b], embedder=embedder, device=device)
    score = ev.pair_scores[0]
    probability = float(pm.probability(np.array([score]))[0])
    margins = ev.margins
    result = {
        "image_a": str(image_a), "image_b": str(image_b), "score": round(score, 6),
        "probability": round(probability, 6), "threshold": pm.threshold, "same_artist": bool(score >= pm.threshold),
        "method": pm.method, "explained_view": "patches (the native-resolution patches the model compared)",
        "attribution": ev.attribution,
        "patches": [{"patch": i + 1, "box": list(ev.questioned.box(i)), "share": round(float(ev.shares[i]), 6),
                     "margin": round(float(margins[i]), 6), "best_match": ev.best[i][1] + 1,
                     "cosine": round(ev.best[i][2], 4)} for i in range(len(margins))],
    }
    if out is not None:
        from painterid.tasks.evidence_page import render_patch_figure

        n_for = int((margins >= 0).sum())
        note = (f"{n_for} of {len(margins)} patches of {Path(image_a).name} count for the match, "
                f"{len(margins) - n_for} against; each number is what the patch adds to score - threshold "
                f"({score - pm.threshold:+.3f} in all; attribution: {ev.attribution})")
        png = render_patch_figure(ev, _title(result), note)
        result["out"] = str(_write_atomic(Path(out), png))
    return result


def _title(r: dict) -> str:
    verdict = "same artist" if r["same_artist"] else "different artists"
    return (f"p(same artist) = {r['probability']:.3f} · score {r['score']:.3f} (threshold {r['threshold']:.3f}) "
            f"→ {verdict} · {r['method']}")


def render_explanation(images, maps, names, title: str, boxes=None, note: str = "") -> bytes:
    """Two paintings side by side with their heatmaps overlaid (jet, alpha 0.45); PNG bytes (Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    aspect = max(im.height / im.width for im in images)
    panel_w = 5.0
    fig = Figure(figsize=(2 * panel_w + 0.9, panel_w * aspect + 1.1), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    heat = None
    for k, (ax, im, m, name) in enumerate(zip(axes, images, maps, names)):
        ax.imshow(np.asarray(im))
        box = boxes[k] if boxes else None
        shown = m
        if box is not None:  # heat only where the model looked; outside it the painting shows plainly
            shown = np.ma.masked_array(m, mask=np.ones_like(m, dtype=bool))
            x0, y0 = int(round(box[0])), int(round(box[1]))
            shown.mask[max(0, y0):int(round(box[1] + box[3])), max(0, x0):int(round(box[0] + box[2]))] = False
            ax.add_patch(Rectangle((box[0] - 0.5, box[1] - 0.5), box[2], box[3], fill=False, ec="white", lw=1.2,
                                   ls="--"))
        heat = ax.imshow(shown, cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0, interpolation="bilinear")
        ax.set_title(name if float(np.max(m)) > 0 else f"{name}\n(no region raises the score)", fontsize=10)
        ax.set_axis_off()
    fig.colorbar(heat, ax=list(axes), fraction=0.03, pad=0.01, label="contribution to the pair score")
    fig.suptitle(title, fontsize=11)
    if note:
        fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=8, color="0.35")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> Path:
    from painterid.core.io import atomic_write_bytes

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except OSError as exc:
        raise PainterIDError(f"{path}: cannot write the figure ({exc.strerror or exc})") from None
    return path


def _chain_torch(chain, x):
    """The model's normaliser chain (its vector steps), differentiable: what its head sees in `compare`."""
    import torch
    from torch.nn import functional as F

    for step in chain.vector_steps:
        st = {k: torch.from_numpy(v) for k, v in step.state.items()}
        if step.name == "power":
            x = torch.sign(x) * torch.sqrt(torch.abs(x) + 1e-12)
        elif step.name == "l2":
            x = F.normalize(x, dim=-1)
        elif step.name == "center":
            x = x - st["mean"]
        elif "mean" in st:  # whiten, lda: (x - mean) @ proj
            x = (x - st["mean"]) @ st["proj"]
        else:  # wccn: x @ proj
            x = x @ st["proj"]
    return x

