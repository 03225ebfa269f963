"""Metrics over scored painting pairs, and retrieval MAP@R over embeddings.

Every function takes ``scores`` (higher = more likely the same artist) and ``labels``
(1 = same artist, 0 = different artists), one entry per pair.  The decision rule everywhere
is ``score >= threshold`` → "same artist".

ROC-based numbers come from :func:`sklearn.metrics.roc_curve` / :func:`roc_auc_score`; nothing
here re-implements a ROC curve.  When a number is undefined (for instance AUC on pairs that are all
positives) it is ``nan`` and a :class:`UserWarning` says why; :func:`pair_report` instead records
the reason under ``"notes"`` and writes ``None`` so that the report is valid JSON.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from painterid.core.registry import Registry
from painterid.scoring.metrics import (  # noqa: F401 (re-exported)
    THRESHOLD_CRITERIA,
    _as_arrays,
    _auc,
    _eer,
    _one_class_reason,
    _roc,
    _tar_at_far,
    best_threshold,
    bootstrap_ci,
    eer,
    probability_metrics,
    roc_auc,
    tar_at_far,
    threshold_metrics,
)

__all__ = [
    "threshold_metrics",
    "METRICS",
    "Metric",
    "format_metric",
    "roc_auc",
    "eer",
    "tar_at_far",
    "best_threshold",
    "bootstrap_ci",
    "pair_report",
    "map_at_r",
    "THRESHOLD_CRITERIA",
]



# --------------------------------------------------------------------------- the report


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return None if not math.isfinite(x) else x
    return x


def pair_report(scores, labels, threshold: float, n_boot: int = 200, seed: int = 0) -> dict:
    """Everything ``evaluate`` prints for one set of scored pairs, as a JSON-serialisable dict.

    Keys: ``n_pairs, n_pos, n_neg, threshold, accuracy, precision, recall, f1, tp, fp, tn, fn,
    auc, eer, eer_threshold, "tar@far=1%", "tar@far=0.1%", auc_ci, accuracy_ci, precision_ci, recall_ci,
    f1_ci, eer_ci, notes``.
    The ``*_ci`` values are ``[low, high]`` 95% percentile-bootstrap intervals (``n_boot``
    resamples, ``seed``).  Values are Python ints/floats; undefined values (NaN) are ``None``
    and ``notes`` lists why.
    """
    s, y = _as_arrays(scores, labels)
    notes: list[str] = []
    n_pos = int(y.sum())
    rep: dict = {"n_pairs": int(y.size), "n_pos": n_pos, "n_neg": int(y.size) - n_pos}
    rep.update(threshold_metrics(s, y, threshold))
    auc, reason = _auc(s, y)
    rep["auc"] = auc
    if reason:
        notes.append(reason)
    rate, eer_thr, _ = _eer(s, y)
    rep["eer"], rep["eer_threshold"] = rate, eer_thr
    rep["tar@far=1%"] = _tar_at_far(s, y, 0.01)[0]
    rep["tar@far=0.1%"] = _tar_at_far(s, y, 0.001)[0]
    for far, need in (("1%", 100), ("0.1%", 1000)):
        if not reason and rep["n_neg"] < need:
            notes.append(f"* only {rep['n_neg']} different-artist pairs: TAR@{far}FAR needs {need} or more to "
                         "be resolved (the figure is the TAR with no different-artist pair accepted)")
    t = float(threshold)
    rep["auc_ci"] = list(bootstrap_ci(lambda a, b: _auc(a, b)[0], s, y, n_boot=n_boot, seed=seed))
    rep["accuracy_ci"] = list(bootstrap_ci(
        lambda a, b: float(np.mean((a >= t) == (b == 1))), s, y, n_boot=n_boot, seed=seed))

    def at_threshold(name):  # precision / recall / F1 of a resample, vectorised (no sklearn call per resample)
        def fn(a, b):
            pred, pos = a >= t, b == 1
            tp = float(np.sum(pred & pos))
            p = tp / max(1.0, float(pred.sum()))
            r = tp / max(1.0, float(pos.sum()))
            return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}[name]
        return fn

    for name in ("precision", "recall", "f1"):
        rep[f"{name}_ci"] = list(bootstrap_ci(at_threshold(name), s, y, n_boot=n_boot, seed=seed))
    rep["eer_ci"] = list(bootstrap_ci(lambda a, b: _eer(a, b)[0], s, y, n_boot=n_boot, seed=seed))
    rep["notes"] = notes
    return _jsonable(rep)


# --------------------------------------------------------------------------- retrieval


def _self_excluding_knn(metric: str, chunk: int = 2048):
    """A ``knn_func`` for AccuracyCalculator that never returns a query as its own neighbour.

    pytorch-metric-learning's own KNN functions assume that, when ``ref_includes_query`` is
    True, the query itself is its nearest neighbour and drop the first column; with duplicate
    embeddings that can drop another painting instead.  Here the diagonal is masked instead.
    """
    import torch

    def knn(query, k, reference, ref_includes_query=False):
        if metric == "cosine":
            q = torch.nn.functional.normalize(query, dim=1)
            r = torch.nn.functional.normalize(reference, dim=1)
        else:
            q, r = query, reference
        dists, idxs = [], []
        for start in range(0, len(q), chunk):
            qc = q[start:start + chunk]
            if metric == "cosine":
                sim = qc @ r.T
            else:
                sim = -torch.cdist(qc, r)
            if ref_includes_query:
                rows = torch.arange(len(qc))
                sim[rows, rows + start] = -float("inf")
            d, i = torch.topk(sim, k, dim=1, largest=True)
            dists.append(d)
            idxs.append(i)
        return torch.cat(dists), torch.cat(idxs)

    return knn


def map_at_r(embeddings, artists: Sequence[str], metric: str = "cosine") -> float:
    """Retrieval MAP@R with artist labels, every painting querying all the others.

    Computed by :class:`pytorch_metric_learning.utils.accuracy_calculator.AccuracyCalculator`
    (``mean_average_precision_at_r``, ``k="max_bin_count"``) on CPU, with the embeddings as both
    query and reference (``ref_includes_query=True``: a painting is never its own neighbour).
    ``metric`` is ``"cosine"`` (default) or ``"euclidean"``.  Paintings of artists with a single
    painting cannot be queries (no relevant item) but still act as distractors in the reference
    set.  Returns ``nan`` with a warning when no artist has two paintings.
    """
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    x = np.asarray(embeddings, dtype=np.float32)
    names = np.asarray([str(a) for a in artists])
    if x.ndim != 2 or x.shape[0] != names.shape[0]:
        raise ValueError(
            f"embeddings must be (N, D) with N = len(artists); got {x.shape} and {names.shape[0]}")
    _, codes, counts = np.unique(names, return_inverse=True, return_counts=True)
    if names.size < 2 or counts.max() < 2:
        warnings.warn("MAP@R is undefined: no artist has two paintings", stacklevel=2)
        return math.nan
    calc = AccuracyCalculator(
        include=("mean_average_precision_at_r",),
        k="max_bin_count",
        device=torch.device("cpu"),
        knn_func=_self_excluding_knn(metric),
        kmeans_func=lambda *a, **k: None,  # never used (no clustering metric)
    )
    res = calc.get_accuracy(
        torch.from_numpy(x), torch.from_numpy(codes.astype(np.int64)), ref_includes_query=True)
    return float(res["mean_average_precision_at_r"])


# --------------------------------------------------------------------------- the registry of reported metrics


@dataclass(frozen=True)
class Metric:
    """One column of `evaluate`'s table, the HTML report and `table1`: where its value is in a group's result
    (:func:`pair_report` plus ``map@r``), its label and how many digits to print (None: an integer count)."""

    name: str  # the key in a group's result dict
    label: str
    digits: int | None
    help: str
    interval: bool = False  # a [low, high] pair
    table1: bool = False  # one of table1's columns (per seen / unseen / mixed split)
    min_neg: int | None = None  # fewer different-artist pairs than this: the value is marked `*` (not resolvable)

    def value(self, result: dict | None):
        return None if result is None else result.get(self.name)

    def format(self, result: dict | None) -> str:
        text = format_metric(self, self.value(result))
        if self.min_neg and result and text != "–" and int(result.get("n_neg", self.min_neg)) < self.min_neg:
            text += "*"
        return text


def format_metric(metric: Metric, value) -> str:
    """`value` as printed in tables: fixed digits, `lo–hi` for intervals, `–` when undefined."""
    if value is None:
        return "–"
    if metric.interval:
        lo, hi = (list(value) + [None, None])[:2]
        return f"{format_metric(_scalar(metric), lo)}–{format_metric(_scalar(metric), hi)}"
    return str(int(value)) if metric.digits is None else f"{value:.{metric.digits}f}"


def _scalar(metric: Metric) -> Metric:
    return Metric(metric.name, metric.label, metric.digits, metric.help)


#: What evaluate reports for each group of pairs, in column order.
METRICS: Registry[Metric] = Registry("metric")
for _m in (
    Metric("n_pairs", "pairs", None, "number of scored pairs"),
    Metric("n_pos", "same", None, "same-artist pairs among them"),
    Metric("accuracy", "accuracy", 3, "share of correct verdicts at the model's threshold", table1=True),
    Metric("precision", "precision", 3, "share of 'same artist' verdicts that are right"),
    Metric("recall", "recall", 3, "share of same-artist pairs found"),
    Metric("f1", "F1", 3, "harmonic mean of precision and recall"),
    Metric("auc", "ROC AUC", 3, "area under the ROC curve (threshold-free)", table1=True),
    Metric("auc_ci", "AUC 95% CI", 3, "bootstrap 95% interval of the ROC AUC", interval=True),
    Metric("eer", "EER", 3, "equal error rate"),
    Metric("tar@far=1%", "TAR@1%FAR", 3, "true-accept rate where 1% of different-artist pairs are accepted",
           min_neg=100),
    Metric("tar@far=0.1%", "TAR@0.1%FAR", 3, "true-accept rate at 0.1% false accepts", min_neg=1000),
    Metric("map@r", "MAP@R", 3, "retrieval mean average precision at R (artists as labels)"),
):
    METRICS.register(_m)
