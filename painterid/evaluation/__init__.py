"""Evaluation: pair protocols and splits (:mod:`.pairs`) and metrics over scored pairs (:mod:`.metrics`)."""

from painterid.evaluation.metrics import (
    best_threshold,
    bootstrap_ci,
    eer,
    map_at_r,
    pair_metrics,
    pair_report,
    roc_auc,
    tar_at_far,
    threshold_metrics,
)
from painterid.evaluation.pairs import (
    balanced_pairs,
    balanced_test_sets,
    natural_pairs,
    read_pairs_csv,
    split_artists,
    split_pairs,
)

__all__ = [
    "balanced_pairs",
    "balanced_test_sets",
    "best_threshold",
    "bootstrap_ci",
    "eer",
    "map_at_r",
    "natural_pairs",
    "pair_metrics",
    "pair_report",
    "read_pairs_csv",
    "roc_auc",
    "split_artists",
    "split_pairs",
    "tar_at_far",
    "threshold_metrics",
]
