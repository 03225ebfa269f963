"""Evaluation: metrics over scored pairs (:mod:`.metrics`, registry ``METRICS``) and the evaluate run (:mod:`.run`).

Pair protocols live in the data layer (:mod:`painterid.pairs`), artist splits in :mod:`painterid.splits`.
"""

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
