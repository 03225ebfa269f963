"""`painterid table1`: the seed report's Table 1 for our models, with the published figures beside them.

Rows are models (method + backbone); columns are accuracy on seen / unseen / mixed test pairs (the report's
balanced protocol) plus ROC AUC on each. The reference rows were reported on Painter by Numbers, not measured here.
"""

from __future__ import annotations

from pathlib import Path

from painterid.core.io import FINGERPRINT_KEYS
from painterid.evaluation.metrics import METRICS

#: table1's columns per split: the metrics flagged `table1` in the registry (accuracy, ROC AUC).
TABLE1_METRICS = tuple(m for m in METRICS if m.table1)

GROUPS = ("seen", "unseen", "mixed")
REFERENCE_NOTE = "reported on Painter by Numbers, not measured here"

# The seed report (../shared/seed/painter-by-numbers-siamese-report.txt), Table 1: accuracy on its seen-artist,
# unseen-artist and mixed ("Mix") test sets of balanced pairs.
SEED_TABLE1 = (
    ("Baseline CNN (seed report)", 0.64, 0.56, 0.59),
    ("InceptionV3 (seed report)", 0.821, 0.608, 0.612),
    ("Xception (seed report)", 0.888, 0.647, 0.672),
    ("Fine-tuned Xception (seed report)", 0.73, 0.53, 0.56),
    ("Corner features (seed report)", 0.512, 0.501, 0.502),
)
# The Kaggle competition winner's ROC AUC on seen-artist pairs, unseen-artist pairs and overall.
KAGGLE_WINNER_AUC = {"name": "Kaggle winner (ROC AUC)", "seen": 0.942, "unseen": 0.825, "mixed": 0.929}


def reference_rows() -> list[dict]:
    """The published figures as rows shaped like ours (None where nothing was published)."""
    rows = [{"name": name, "reference": True, "note": REFERENCE_NOTE,
             "accuracy": {"seen": s, "unseen": u, "mixed": m}, "auc": {g: None for g in GROUPS}}
            for name, s, u, m in SEED_TABLE1]
    rows.append({"name": KAGGLE_WINNER_AUC["name"], "reference": True,
                 "note": REFERENCE_NOTE + "; 'mixed' is the overall figure",
                 "accuracy": {g: None for g in GROUPS}, "auc": {g: KAGGLE_WINNER_AUC[g] for g in GROUPS}})
    return rows


def _embedding_key(pm) -> str:
    """Models sharing this key share one embedding of DATA (a fused model or an own backbone: its directory)."""
    if getattr(pm, "members", None):
        return f"fused:{pm.root}"
    weights = pm.embedding.get("weights_file")
    own_backbone = bool(weights) and not Path(weights).is_absolute()  # trained into the model directory
    return repr([pm.embedding.get(k) for k in FINGERPRINT_KEYS] + ([str(pm.root)] if own_backbone else []))


def table1(data: str | Path, models: list[str | Path], store_dir: str | Path | None = None, seed: int = 0,
           n_boot: int = 0, device=None, progress=None) -> dict:
    """Evaluate every model on DATA (folder or STORE) and return {"rows": ours, "reference": published}.

    Each row: name, model, method, backbone, threshold, accuracy / auc / auc_ci per split, n_pairs per split,
    and the full evaluate result under "result". Models sharing an embedding share one embedding of DATA."""
    from painterid.core.errors import DataError
    from painterid.embedding.pipeline import model_labelled
    from painterid.evaluation.run import evaluate_model
    from painterid.scoring.fusion import members_of
    from painterid.scoring.loading import load_model

    if not models:
        raise DataError("table1 needs at least one model (--models M1 M2 ...)")
    cache: dict[str, object] = {}
    rows = []
    for path in models:
        pm = load_model(path)  # or a FusedModel: its members' embeddings side by side
        key = _embedding_key(pm)
        if key not in cache:
            cache[key] = model_labelled(data, pm, store_dir=store_dir, progress=progress, device=device)
        lab = cache[key]
        result = evaluate_model(pm, lab, split="all", seed=seed, n_boot=n_boot)
        result["model"], result["data"] = str(path), str(data)
        groups = result["groups"]
        backbone = "+".join(m.embedding.get("backbone", "?") for m in members_of(pm))
        rows.append({
            "name": f"{pm.method} · {backbone}", "model": str(path), "method": pm.method, "backbone": backbone,
            "threshold": pm.threshold,
            **{m.name: {g: m.value(groups.get(g)) for g in GROUPS} for m in TABLE1_METRICS},
            "auc_ci": {g: (groups.get(g) or {}).get("auc_ci") for g in GROUPS},
            "n_pairs": {g: (groups.get(g) or {}).get("n_pairs", 0) for g in GROUPS},
            "result": result,
        })
    return {"data": str(data), "protocol": "balanced", "rows": rows, "reference": reference_rows(),
            "reference_note": REFERENCE_NOTE}
