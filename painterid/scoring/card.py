"""MODEL_CARD.md: what a model is, what it was trained on, how it was measured."""

from __future__ import annotations


def model_card(model, figures: str | None = None) -> str:
    """A Markdown card for a PairModel; `figures` is an optional Markdown block of measured results."""
    e = model.embedding
    a = model.artists or {}
    v = model.info.get("validation", {})
    lines = [
        f"# painterid model: `{model.method}`",
        "",
        f"- **Scorer**: {model.method}; normaliser chain: `{model.normaliser}`"
        + (f" (fitted on a reference cohort of {len(model.cohort)} paintings, shipped as cohort.safetensors)"
           if model.cohort is not None else ""),
        f"- **Embedding**: backbone `{e.get('backbone')}` ({e.get('weights_id')}), view `{e.get('view')}`, "
        f"pooling `{e.get('pool')}`, input {e.get('input_size')}, dimension {e.get('dim')}",
        f"- **Artists**: {len(a.get('train', []))} training, {len(a.get('val', []))} validation "
        f"(threshold and calibration), {len(a.get('test', []))} test (never used for any choice)",
        f"- **Decision threshold**: score ≥ {model.threshold:.4f} → same artist "
        f"(calibrated probability {float(model.calibrator([model.threshold])[0]):.3f}); probabilities are "
        "calibrated on balanced validation pairs (prior 0.5).",
    ]
    if v:
        lines.append(f"- **Validation**: {v.get('pairs')} pairs, ROC AUC {v.get('auc', float('nan')):.3f}; "
                     f"AUC by normaliser: {v.get('auc_by_normaliser')}")
    if model.info.get("source"):
        lines.append(f"- **Made by**: `{model.info['source']}`")
    lines += ["", "## Measured", "", figures or "See `painterid evaluate --model THIS --data DATA --split all`.", ""]
    return "\n".join(lines)


def fused_model_card(model) -> str:
    """A Markdown card for a FusedModel: its members, weights, validation AUC of each and of the fusion, cost."""
    v = model.info.get("validation", {})
    by_member = v.get("auc_by_member", {})
    cost = model.info.get("embedding_seconds_per_image", {})
    a = model.artists or {}
    lines = [f"# painterid fused model: {' + '.join(model.names)}", "",
             "Score = Σ wᵢ · (scoreᵢ − meanᵢ) / stdᵢ over the members (each an ordinary model in its own "
             "sub-directory); weights, standardisers, calibration and threshold chosen on the validation artists.",
             "", "| member | method / normaliser | weight | validation AUC | embedding s / image |",
             "|---|---|---|---|---|"]
    for name, m, w in zip(model.names, model.members, model.weights):
        c = cost.get(name)
        lines.append(f"| {name} | {m.method} / `{m.normaliser}` | {w:.2f} | {by_member.get(name, float('nan')):.3f} "
                     f"| {'–' if c is None else format(c, '.3f')} |")
    total = sum(c for c in cost.values() if c is not None)
    lines += [f"| **fused** | | | {v.get('auc', float('nan')):.3f} | {total:.3f} |", "",
              f"- **Artists**: {len(a.get('train', []))} training, {len(a.get('val', []))} validation, "
              f"{len(a.get('test', []))} test; {v.get('pairs')} validation pairs",
              f"- **Decision threshold**: fused score ≥ {model.threshold:.4f} → same artist", ""]
    return "\n".join(lines)
