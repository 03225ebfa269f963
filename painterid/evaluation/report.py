"""`evaluate --report DIR`: one self-contained HTML page (inline CSS, images as PNG data URIs, no external assets).

The page holds the metrics table, ROC curves of seen / unseen / mixed pairs, histograms of same- and
different-artist scores, and the hardest mistakes as image pairs: the highest-scoring different-artist pairs and
the lowest-scoring same-artist pairs.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
from pathlib import Path

import numpy as np

from painterid.core.io import atomic_dir
from painterid.core.version import __version__
from painterid.evaluation.metrics import METRICS

GROUP_COLOURS = {"seen": "#1f77b4", "unseen": "#d62728", "mixed": "#2ca02c"}
_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;
padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.meta{color:#555;font-size:.9em}.note{color:#8a5a00;font-size:.9em}
.pairs{display:flex;flex-wrap:wrap;gap:1em}.pair{border:1px solid #ddd;padding:.5em;width:340px;font-size:.85em}
.pair img{width:160px;height:160px;object-fit:contain;background:#eee}.pair .imgs{display:flex;gap:.5em}
.wrong{color:#b00020;font-weight:bold}.ok{color:#1b6e1b}.missing{width:160px;height:160px;background:#eee;
display:flex;align-items:center;justify-content:center;color:#888}
"""


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def roc_png(scored: dict[str, tuple[np.ndarray, np.ndarray]]) -> bytes:
    """ROC curves of each split (scikit-learn's roc_curve) in one figure, as PNG bytes."""
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_auc_score, roc_curve

    fig = Figure(figsize=(5.2, 4.6))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="#999", lw=1, ls="--", label="chance")
    for name, (pairs, scores) in scored.items():
        labels = pairs[:, 2]
        if len(labels) == 0 or labels.min() == labels.max():
            continue
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, color=GROUP_COLOURS.get(name), lw=2,
                label=f"{name} (AUC {roc_auc_score(labels, scores):.3f}, {len(labels)} pairs)")
    ax.set_xlabel("false-accept rate (different artists called same)")
    ax.set_ylabel("true-accept rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("ROC: seen / unseen / mixed")
    fig.tight_layout()
    return _figure_png(fig)


def histogram_png(name: str, pairs: np.ndarray, scores: np.ndarray, threshold: float) -> bytes:
    """Histograms of same- and different-artist scores of one split, with the threshold, as PNG bytes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.4, 3.2))
    ax = fig.add_subplot()
    labels = pairs[:, 2]
    if len(scores):
        lo, hi = float(min(scores.min(), threshold)), float(max(scores.max(), threshold))
        bins = np.linspace(lo, hi + 1e-9, 31)
        for value, label, colour in ((0, "different artists", "#d62728"), (1, "same artist", "#1f77b4")):
            s = scores[labels == value]
            if len(s):
                ax.hist(s, bins=bins, alpha=0.55, color=colour, label=f"{label} ({len(s)})")
    ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.3f}")
    ax.set_xlabel("score")
    ax.set_ylabel("pairs")
    ax.set_title(f"{name}: scores of same- vs different-artist pairs", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _figure_png(fig)


def thumbnail_png(path: str | Path | None, size: int = 160) -> bytes | None:
    """A PNG thumbnail of an image file; None when it cannot be read."""
    if not path:
        return None
    from painterid.core.errors import ImageError
    from painterid.embedding.images import load_image

    try:
        im = load_image(path)
    except (ImageError, OSError):
        return None
    im.thumbnail((size, size))
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def hardest_mistakes(scored: dict[str, tuple[np.ndarray, np.ndarray]], k: int = 8) -> dict[str, list[tuple]]:
    """The k highest-scoring different-artist pairs and the k lowest-scoring same-artist pairs over all splits.

    Returns {"different": [(i, j, score), ...], "same": [...]}, hardest first; a pair in several splits counts once.
    """
    seen: dict[tuple[int, int], tuple[int, float]] = {}
    for pairs, scores in scored.values():
        for (i, j, y), s in zip(pairs.tolist(), np.asarray(scores, dtype=float).tolist()):
            seen.setdefault((min(i, j), max(i, j)), (y, s))
    diff = sorted(((i, j, s) for (i, j), (y, s) in seen.items() if y == 0), key=lambda t: -t[2])
    same = sorted(((i, j, s) for (i, j), (y, s) in seen.items() if y == 1), key=lambda t: t[2])
    return {"different": diff[:k], "same": same[:k]}


def _metrics_table(title: str, groups: dict) -> str:
    head = "".join(f"<th>{html.escape(m.label)}</th>" for m in METRICS)
    rows = []
    for name, rep in groups.items():
        cells = [html.escape(m.format(rep)) for m in METRICS]
        rows.append(f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    notes = sorted({n for rep in groups.values() if rep for n in rep.get("notes", [])})
    note_html = "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)
    return (f"<h3>{html.escape(title)}</h3><table><tr><th>split</th>{head}</tr>{''.join(rows)}</table>"
            f"{note_html}")


def _pair_html(i: int, j: int, score: float, data, model, kind: str) -> str:
    paths = getattr(data, "paths", None)
    imgs = []
    for k in (i, j):
        png = thumbnail_png(paths[k] if paths else None)
        label = html.escape(f"{data.names[k]} — {data.artists[k]}")
        if png is None:
            imgs.append(f'<div><div class="missing">image not available</div><div>{label}</div></div>')
        else:
            imgs.append(f'<div><img src="{_png_uri(png)}" alt="{label}"><div>{label}</div></div>')
    p = float(model.probability(np.array([score]))[0])
    called_same = score >= model.threshold
    wrong = called_same if kind == "different" else not called_same
    verdict = ('<span class="wrong">wrong at the threshold</span>' if wrong
               else '<span class="ok">right at the threshold</span>')
    return (f'<div class="pair"><div class="imgs">{"".join(imgs)}</div>'
            f"<div>score {score:.3f}, p(same artist) {p:.3f} — {verdict}</div></div>")


def _pairs_text(result: dict) -> str | None:
    """'20 distinct (unseen 20, mixed 20)': the pairs of the tables, a pair in several splits counted once."""
    if result.get("n_pairs") is None:
        return None
    by = result.get("n_pairs_by_split") or {}
    return f"{result['n_pairs']} distinct" + (" (" + ", ".join(f"{k} {v}" for k, v in by.items()) + ")" if by else "")


def report_html(result: dict, scored: dict[str, tuple[np.ndarray, np.ndarray]], data, model,
                title: str = "painterid evaluation", n_mistakes: int = 8, llr: dict | None = None) -> str:
    """The report page as one HTML string (everything inline)."""
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    meta = {"model": result.get("model"), "data": result.get("data"), "method": getattr(model, "method", None),
            "backbone": (getattr(model, "embedding", None) or {}).get("backbone"),
            "protocol": result.get("protocol"), "threshold": f"{model.threshold:.4f}",
            "pairs": _pairs_text(result), "paintings": result.get("n_paintings"),
            "painterid": __version__, "written": _dt.datetime.now().isoformat(timespec="seconds")}
    parts.append('<p class="meta">' + " · ".join(f"{html.escape(k)}: {html.escape(str(v))}"
                                                   for k, v in meta.items() if v is not None) + "</p>")
    if result.get("paintings"):
        from painterid.evaluation.run import coverage_line

        parts.append(f'<p class="meta">{html.escape(coverage_line(result["paintings"]))}</p>')
    if result.get("sources") == 1:
        parts.append('<p class="meta">All test pairs come from one source: no separate within-source table.</p>')
    parts.append("<h2>Metrics</h2><p>Seen: both paintings by artists the model was trained on; unseen: neither; "
                 "mixed: the whole test set (as in the seed report's Table 1). Accuracy, precision, recall and F1 at "
                 "the model's threshold; AUC interval: 95% bootstrap; MAP@R: retrieval of each test painting's "
                 "artist among the other test paintings.</p>")
    parts.append(_metrics_table("all pairs", result.get("groups", {})))
    if result.get("within_source"):
        parts.append(_metrics_table("pairs whose two images come from one source", result["within_source"]))
    if result.get("sets"):
        parts.append(_sets_html(result["sets"], llr or {}))

    drawable = {k: v for k, v in scored.items() if len(v[0])}
    parts.append("<h2>ROC curves</h2>")
    parts.append(f'<img src="{_png_uri(roc_png(drawable))}" alt="ROC curves of seen, unseen and mixed pairs">')
    parts.append("<h2>Score histograms</h2><div class=\"pairs\">")
    for name, (pairs, scores) in drawable.items():
        png = histogram_png(name, pairs, np.asarray(scores), model.threshold)
        parts.append(f'<img src="{_png_uri(png)}" alt="score histogram of {html.escape(name)} pairs">')
    parts.append("</div>")

    hard = hardest_mistakes(drawable, k=n_mistakes)
    parts.append("<h2>Hardest mistakes</h2>")
    for kind, heading in (("different", "Different artists, highest scores first (above the threshold = false accept)"),
                          ("same", "Same artist, lowest scores first (below the threshold = false reject)")):
        parts.append(f"<h3>{heading}</h3>")
        if not hard[kind]:
            parts.append("<p>none</p>")
            continue
        parts.append('<div class="pairs">' + "".join(_pair_html(i, j, s, data, model, kind)
                                                    for i, j, s in hard[kind]) + "</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _sets_html(sets: dict, llr: dict) -> str:
    """The set protocol (`evaluate --references`): a row per K, and the Tippett plot of each K's log10 LRs."""
    import tempfile

    from painterid.scoring.forensic import tippett_plot

    cols = ("auc", "auc_max", "auc_one_reference", "cllr", "min_cllr", "eer", "tar_at_1pct_far", "ece")
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{r['trials']}</td>"
                   + ("".join(f"<td>{r[c]:.3f}</td>" for c in cols) if "skipped" not in r
                      else f"<td colspan=\"{len(cols)}\">{html.escape(r['skipped'])}</td>") + "</tr>"
                   for k, r in sets["per_k"].items())
    parts = [f"<h2>A painting against K references of one artist</h2><p>Set score "
             f"{html.escape(sets['aggregate'])}; log10 likelihood ratio from the model's sets.json; unseen-artist "
             "paintings only (what <code>painterid verify</code> answers).</p><table><tr><th>K</th><th>trials</th>"
             + "".join(f"<th>{c}</th>" for c in ("AUC", "AUC max", "AUC one ref", "Cllr", "min Cllr", "EER",
                                                 "TAR@1%FAR", "ECE")) + f"</tr>{rows}</table>"]
    with tempfile.TemporaryDirectory() as d:
        for k, (z, y) in llr.items():
            png = tippett_plot(z, y, Path(d) / f"tippett-{k}.png", title=f"Tippett plot, K = {k}")
            parts.append(f'<img src="{_png_uri(Path(png).read_bytes())}" alt="Tippett plot at K = {k}">')
    return "\n".join(parts)


def write_report(out_dir: str | Path, result: dict, scored: dict[str, tuple[np.ndarray, np.ndarray]], data,
                 model, title: str = "painterid evaluation", n_mistakes: int = 8, llr: dict | None = None) -> Path:
    """Write DIR/index.html (self-contained) and DIR/metrics.json atomically; returns DIR/index.html."""
    page = report_html(result, scored, data, model, title=title, n_mistakes=n_mistakes, llr=llr)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        (tmp / "index.html").write_text(page, encoding="utf-8")
        (tmp / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return out_dir / "index.html"
