"""evaluation: how good a model is. Metrics over scored pairs and MAP@R over embeddings, the evaluate run over
a data set's protocols, the unseen-artist protocols (random artist folds, leave one source out: protocols), what
`painterid benchmark` shows (benchmark_report), the HTML report and the seed report's Table 1.

May import: painterid.scoring, painterid.embedding, painterid.store, painterid.data, painterid.core; never
painterid.training."""

from painterid.evaluation.metrics import (
    METRICS,
    best_threshold,
    bootstrap_ci,
    eer,
    map_at_r,
    pair_report,
    roc_auc,
    tar_at_far,
    threshold_metrics,
)

__all__ = [
    "METRICS",
    "best_threshold",
    "bootstrap_ci",
    "eer",
    "map_at_r",
    "pair_report",
    "roc_auc",
    "tar_at_far",
    "threshold_metrics",
]
