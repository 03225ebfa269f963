"""What `painterid benchmark` shows of its result (:mod:`painterid.training.benchmark`): the table's rows, the
best choice with the commands that make a model of it, and a PNG bar chart (matplotlib)."""

from __future__ import annotations

from pathlib import Path

#: (key in an encoder's "auc", column title), in the order shown.
AUC_COLUMNS = (("random.default", "random: default"), ("random.head", "random: head"),
               ("loso.default", "LOSO: default"), ("loso.head", "LOSO: head"))


def _mean(entry: dict | None) -> float | None:
    return None if not entry else entry["mean"]


def encoder_score(row: dict, scoring: str) -> float | None:
    """Mean unseen-artist AUC of one encoder and scoring over the protocols it ran (what the choice ranks)."""
    vals = [_mean(v) for k, v in row.get("auc", {}).items() if k.endswith("." + scoring)]
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def best_choice(result: dict) -> dict | None:
    """The encoder and scoring with the best mean unseen AUC over the protocols, and the commands that make it."""
    cands = [(s, row, scoring) for row in result["encoders"] for scoring in ("default", "head")
             if (s := encoder_score(row, scoring)) is not None]
    if not cands:
        return None
    auc, row, scoring = max(cands, key=lambda c: c[0])
    method = result.get("head", "siamese") if scoring == "head" else "cosine"
    data, name = result["data"], row["backbone"]
    model = "model-" + "".join(c if c.isalnum() else "-" for c in name).strip("-")
    weights = f" --weights {row['weights_file']}" if row.get("weights_file") else ""
    return {"backbone": name, "scoring": scoring, "method": method, "mean_auc": round(auc, 4),
            "commands": [f"painterid train --data {data} --backbone {name}{weights} --view {row['view']} "
                         f"--pool {row['pool']} --method {method} --out {model}",
                         f"painterid cohort set {model} ARCHIVE   # optional: your unlabelled archive as the cohort"]}


def _fmt(entry: dict | None) -> str:
    return "–" if not entry else f"{entry['mean']:.3f} ± {entry['std']:.3f}"


def table(result: dict) -> tuple[list[str], list[list[str]]]:
    """(column titles, rows of strings) of the benchmark's table; the set column only when it was measured."""
    cols = [c for c in AUC_COLUMNS if any(c[0] in r.get("auc", {}) for r in result["encoders"])]
    sets = any("set_auc_k3" in r for r in result["encoders"])
    head = ["encoder", "pool", *[t for _, t in cols]] + (["set AUC K=3"] if sets else []) + [
        "s / image", "dim", "weights MiB", "RSS MiB"]
    rows = []
    for r in result["encoders"]:
        cells = [r["backbone"], r["pool"], *[_fmt(r["auc"].get(k)) for k, _ in cols]]
        if sets:
            cells.append(_fmt((r.get("set_auc_k3") or {}).get("random.default")))
        cells += ["–" if r.get("s_per_image") is None else f"{r['s_per_image']:.3f}", str(r["dim"]),
                  "–" if r.get("weights_mb") is None else f"{r['weights_mb']:.1f}",
                  "–" if r.get("rss_mb") is None else f"{r['rss_mb']:.0f}"]
        rows.append(cells)
    return head, rows


def markdown(result: dict) -> str:
    head, rows = table(result)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def plot_png(result: dict, path: str | Path) -> Path:
    """Grouped bars: mean unseen-artist AUC (± std over folds) of each encoder under each protocol and scoring."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    encs = result["encoders"]
    cols = [c for c in AUC_COLUMNS if any(c[0] in r.get("auc", {}) for r in encs)]
    x = np.arange(len(encs))
    width = 0.8 / max(1, len(cols))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(encs) + 2), 4.2))
    for k, (key, title) in enumerate(cols):
        means = [_mean(r["auc"].get(key)) or np.nan for r in encs]
        stds = [(r["auc"].get(key) or {}).get("std", 0.0) for r in encs]
        ax.bar(x + (k - (len(cols) - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=title)
    ax.set_xticks(x, [f"{r['backbone']}\n({r['pool']})" for r in encs], fontsize=8)
    ax.set_ylabel("unseen-artist ROC AUC")
    ax.set_ylim(0.5, 1.0)
    ax.axhline(0.5, color="grey", lw=0.5)
    ax.set_title(f"painterid benchmark: {result['data']} ({encs[0]['images'] if encs else 0} paintings, view "
                 f"{result.get('view')}); bars: mean ± std over folds", fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
