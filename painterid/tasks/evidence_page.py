"""The evidence of painterid.tasks.evidence, shown: one self-contained HTML page per questioned painting
(`verify --report DIR`, Pillow only) and the patch-pair PNG of `explain` (matplotlib, Agg). Plotting and image
libraries are imported inside these functions only."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import re
from pathlib import Path

import numpy as np

from painterid.core.errors import PainterIDError

FOR, AGAINST = "#1a7f37", "#b42318"


def _b64(img, fmt: str = "JPEG", max_side: int | None = None) -> str:
    if max_side and max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format=fmt, quality=88)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def boxed(side, margins=None, numbers: bool = True):
    """The image the patches were cut from, each patch outlined (green: counts for, red: against), numbered."""
    from PIL import ImageDraw

    img = side.image.convert("RGB").copy()
    draw = ImageDraw.Draw(img)
    for i in range(len(side.grid)):
        colour = "#ffd400" if margins is None else (FOR if margins[i] >= 0 else AGAINST)
        draw.rectangle(side.box(i), outline=colour, width=max(3, img.width // 250))
        if numbers:
            x, y = side.box(i)[:2]
            draw.rectangle((x, y, x + 26, y + 22), fill=colour)
            draw.text((x + 6, y + 5), str(i + 1), fill="white")
    return img


def _file_name(out_dir: Path, questioned: str) -> Path:
    """<stem>.html, or <stem>-<hash>.html when that page already holds another questioned painting."""
    stem = re.sub(r"[^\w.-]+", "_", Path(questioned).stem) or "questioned"
    first = out_dir / f"{stem}.html"
    if not first.exists() or _page_of(first) == str(questioned):
        return first
    return out_dir / f"{stem}-{hashlib.sha1(str(questioned).encode()).hexdigest()[:8]}.html"


def _page_of(path: Path) -> str | None:
    m = re.search(r'<meta name="questioned" content="([^"]*)"', path.read_text(errors="replace")[:4096])
    return html.unescape(m.group(1)) if m else None


def _verdict_block(r: dict) -> str:
    ok = r.get("verdict") == "consistent"
    colour = FOR if ok else AGAINST
    lr = float(r["log10_lr"])
    rows = [("set score", f"{float(r['set_score']):.3f} ({html.escape(str(r['aggregate']))} over "
                          f"{int(r['references'])} references)"),
            ("likelihood ratio", f"10^{lr:.2f} = {10 ** lr:.3g} (same artist as the references vs another "
                                 "artist of the model's population)"),
            (f"p(same artist) at prior {float(r['prior']):g}", f"{float(r['p_same']):.3f}"),
            ("model", html.escape(str(r.get("model", ""))))]
    if r.get("excluded_self"):
        rows.append(("left out", f"{html.escape(str(r['excluded_self']))} (the questioned file itself, same "
                                 "content)"))
    cells = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return (f'<div class="verdict" style="border-color:{colour}"><span style="color:{colour}">'
            f"{html.escape(str(r['verdict']))}</span> with the references</div><table class=facts>{cells}</table>")


def _closest_block(closest: list[dict]) -> str:
    from painterid.embedding.images import load_image

    cards = []
    for c in closest:
        try:
            src = f'<img src="{_b64(load_image(c["reference"]), max_side=220)}" alt="">'
        except PainterIDError as exc:
            src = f"<div class=missing>{html.escape(str(exc))}</div>"
        cards.append(f'<figure>{src}<figcaption>{html.escape(Path(c["reference"]).name)}<br>pair score '
                     f'{float(c["score"]):.3f}</figcaption></figure>')
    return "<h2>Closest references</h2><div class=cards>" + "".join(cards) + "</div>"


def _patch_rows(ev) -> str:
    rows, margins = [], ev.margins
    for i in ev.order():
        r, j, cos = ev.best[i]
        ref = ev.references[r]
        colour = FOR if margins[i] >= 0 else AGAINST
        word = "for the match" if margins[i] >= 0 else "against the match"
        rows.append(f'<tr><td class=num>{i + 1}</td><td><img src="{_b64(ev.questioned.crop(i))}" alt=""></td>'
                    f'<td><img src="{_b64(ref.crop(j))}" alt=""></td><td><b style="color:{colour}">'
                    f"{margins[i]:+.3f}</b><br>{word}<br><small>share {ev.shares[i]:+.3f}<br>best match: patch "
                    f"{j + 1} of {html.escape(Path(ref.path).name)}, cosine {cos:.2f}</small></td></tr>")
    return "".join(rows)


def evidence_block(ev) -> str:
    """The patch pairs of one Evidence as HTML (images inlined)."""
    n = len(ev.shares)
    w, h = ev.questioned.patch_size
    names = ", ".join(html.escape(Path(r.path).name) for r in ev.references)
    how = ("exact: the cosine of the mean of the patch vectors after the model's affine normaliser steps, minus "
           "CSLS, splits over the patches" if ev.attribution == "linear" else
           "Shapley values of the patches (the score's normaliser chain is not linear in them)")
    return (f"<h2>The patches the model compared</h2><p>The model cuts {n} patches of {w}&times;{h} px at native "
            f"resolution (the image capped at 1024 px) and averages their vectors. Each row: a patch of the "
            f"questioned painting, then the patch most like it among the references compared here ({names}). "
            f"The number is what the patch adds to the mean pair score against them ({ev.score:.3f}) minus the "
            f"model's pair threshold ({ev.threshold:.3f}); the {n} numbers add up to "
            f"{ev.score - ev.threshold:+.3f}. Green counts for the match, red against. Attribution: {how}.</p>"
            f'<div class=whole><img src="{_b64(boxed(ev.questioned, ev.margins), max_side=900)}" alt=""></div>'
            f"<table class=pairs><tr><th>#</th><th>questioned patch</th><th>best reference patch</th>"
            f"<th>counts</th></tr>{_patch_rows(ev)}</table>")


STYLE = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:1.5em auto;color:#222}"
         ".verdict{font-size:1.8em;font-weight:600;border-left:8px solid;padding:.2em .6em;margin:.5em 0}"
         "table.facts th{text-align:left;padding-right:1em}.cards{display:flex;flex-wrap:wrap;gap:12px}"
         "figure{margin:0;width:220px}figcaption{font-size:.85em}.pairs td{vertical-align:middle;padding:4px}"
         ".pairs img{width:240px}.num{font-weight:600}.whole img{max-width:100%}.missing{color:#b42318}")


def write_page(out_dir: Path, result: dict, ev) -> Path:
    """The page of one questioned painting (see painterid.tasks.evidence.write_verify_report), atomically;
    `ev` its Evidence against its closest references (None: no patch evidence for this model)."""
    from painterid.core.io import atomic_write_bytes

    out_dir = Path(out_dir)
    questioned = str(result["questioned"])
    patches = evidence_block(ev) if ev is not None else (
        "<p>No patch evidence: the model is not a single model of native-resolution patches.</p>")
    name = html.escape(Path(questioned).name)
    page = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="questioned" '
            f'content="{html.escape(questioned)}"><title>painterid verify: {name}</title><style>{STYLE}</style>'
            f"</head><body><h1>{name}</h1>{_verdict_block(result)}"
            f"{_closest_block(list(result.get('closest') or []))}{patches}</body></html>")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = _file_name(out_dir, questioned)
        atomic_write_bytes(path, page.encode("utf-8"))
    except OSError as exc:
        raise PainterIDError(f"{out_dir}: cannot write the report ({exc.strerror or exc})") from None
    return path


def render_patch_figure(ev, title: str, note: str = "") -> bytes:
    """PNG bytes: both paintings with their patches outlined, then each questioned patch beside its best match in
    the other painting, ordered from most for to most against the match (matplotlib Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n, cols = len(ev.shares), 4
    rows = int(np.ceil(n / cols))
    fig = Figure(figsize=(16, 5.2 + 2.3 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subfigures(2, 1, height_ratios=[5.2, 2.3 * rows])
    ref = ev.references[0]
    used = {j for r, j, _ in ev.best if r == 0}
    for ax, img, name in zip(top.subplots(1, 2), (boxed(ev.questioned, ev.margins), _outline(ref, used)),
                             (ev.questioned.path, ref.path)):
        ax.imshow(np.asarray(img))
        ax.set_title(Path(name).name, fontsize=10)
        ax.set_axis_off()
    axes = bottom.subplots(rows, 2 * cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    margins = ev.margins
    for k, i in enumerate(ev.order()):
        r, j, cos = ev.best[i]
        a, b = axes[k // cols, 2 * (k % cols)], axes[k // cols, 2 * (k % cols) + 1]
        a.imshow(np.asarray(ev.questioned.crop(i)))
        b.imshow(np.asarray(ev.references[r].crop(j)))
        colour = FOR if margins[i] >= 0 else AGAINST
        a.set_title(f"#{i + 1}  {margins[i]:+.3f} {'for' if margins[i] >= 0 else 'against'}", fontsize=9,
                    color=colour, fontweight="bold")
        b.set_title(f"best match: #{j + 1}, cos {cos:.2f}", fontsize=8, color="0.3")
        for spine_ax in (a, b):
            spine_ax.set_axis_on()
            spine_ax.set_xticks([])
            spine_ax.set_yticks([])
            for s in spine_ax.spines.values():
                s.set_edgecolor(colour)
                s.set_linewidth(3 if spine_ax is a else 1)
    fig.suptitle(title, fontsize=11)
    if note:
        fig.supxlabel(note, fontsize=8, color="0.35")  # constrained layout keeps room for it
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _outline(side, used: set[int]):
    """The other painting with the patches that are some questioned patch's best match outlined."""
    from PIL import ImageDraw

    img = side.image.convert("RGB").copy()
    draw = ImageDraw.Draw(img)
    for j in range(len(side.grid)):
        draw.rectangle(side.box(j), outline="#ffd400" if j in used else "#888888", width=max(2, img.width // 300))
        x, y = side.box(j)[:2]
        draw.text((x + 6, y + 5), f"#{j + 1}", fill="#ffd400" if j in used else "#dddddd")
    return img
