"""The numbers of a set of scored pairs: ROC AUC, EER, TAR at a FAR, thresholds, accuracy-type metrics at a
threshold, probability calibration error and bootstrap intervals.

Every function takes ``scores`` (higher = more likely the same artist) and ``labels`` (1 = same artist, 0 =
different artists), one entry per pair; the decision rule everywhere is ``score >= threshold`` -> "same artist".
ROC-based numbers come from :func:`sklearn.metrics.roc_curve` / :func:`roc_auc_score`; nothing here re-implements a
ROC curve.  When a number is undefined (AUC on pairs that are all positives) it is ``nan`` and a
:class:`UserWarning` says why.  The evaluation reports (:mod:`painterid.evaluation.metrics`) build on these.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from painterid.core.errors import DataError

THRESHOLD_CRITERIA = ("accuracy", "eer", "f1")


# --------------------------------------------------------------------------- input checks


def _as_arrays(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert to (float64 scores, int64 labels in {0, 1})."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape[0]} vs {y.shape[0]}")
    if np.isnan(s).any():
        raise ValueError(f"{int(np.isnan(s).sum())} score(s) are NaN")
    if y.dtype == bool:
        y = y.astype(np.int64)
    else:
        y = y.astype(np.float64)
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            if (y[bad] == -1).all():
                raise DataError(
                    f"{int(bad.sum())} pair(s) have no same/different label (-1); "
                    "metrics need a labelled pairs file (column 'same')"
                )
            raise DataError(
                f"labels must be 0 (different artists) or 1 (same artist); "
                f"found {sorted(set(y[bad].tolist()))[:5]}"
            )
        y = y.astype(np.int64)
    return s, y


def _one_class_reason(y: np.ndarray, what: str) -> str | None:
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if y.size == 0:
        return f"{what} is undefined: there are no pairs"
    if n_neg == 0:
        return f"{what} is undefined: all {n_pos} pairs are same-artist pairs (no negatives)"
    if n_pos == 0:
        return f"{what} is undefined: all {n_neg} pairs are different-artist pairs (no positives)"
    return None


def _roc(s: np.ndarray, y: np.ndarray):
    # drop_intermediate=False keeps every distinct threshold: exact operating points for
    # TAR@FAR and threshold selection.
    return roc_curve(y, s, drop_intermediate=False)


# --------------------------------------------------------------------------- threshold metrics


def threshold_metrics(scores, labels, threshold: float) -> dict:
    """Accuracy, precision, recall and F1 of the rule ``score >= threshold`` → same artist.

    Computed with scikit-learn (``zero_division=0``).  Also returns the confusion counts
    ``tp, fp, tn, fn`` and the ``threshold``.  With no pairs the four rates are ``nan``.
    """
    s, y = _as_arrays(scores, labels)
    pred = (s >= float(threshold)).astype(np.int64)
    out: dict = {"threshold": float(threshold)}
    if y.size == 0:
        out.update(accuracy=math.nan, precision=math.nan, recall=math.nan, f1=math.nan,
                   tp=0, fp=0, tn=0, fn=0)
        return out
    out["accuracy"] = float(accuracy_score(y, pred))
    out["precision"] = float(precision_score(y, pred, labels=[0, 1], zero_division=0))
    out["recall"] = float(recall_score(y, pred, labels=[0, 1], zero_division=0))
    out["f1"] = float(f1_score(y, pred, labels=[0, 1], zero_division=0))
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    out.update(tp=int(tp), fp=int(fp), tn=int(tn), fn=int(fn))
    return out


# --------------------------------------------------------------------------- ROC metrics


def _auc(s: np.ndarray, y: np.ndarray) -> tuple[float, str | None]:
    reason = _one_class_reason(y, "ROC AUC")
    if reason:
        return math.nan, reason
    return float(roc_auc_score(y, s)), None


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve; ``nan`` (with a warning saying why) when only one class is present."""
    s, y = _as_arrays(scores, labels)
    value, reason = _auc(s, y)
    if reason:
        warnings.warn(reason, stacklevel=2)
    return value


def _eer(s: np.ndarray, y: np.ndarray) -> tuple[float, float, str | None]:
    reason = _one_class_reason(y, "EER")
    if reason:
        return math.nan, math.nan, reason
    fpr, tpr, thr = _roc(s, y)
    fnr = 1.0 - tpr
    d = fpr - fnr  # rises from -1 (at threshold +inf) to +1 (at the lowest threshold)
    i = int(np.argmax(d >= 0))  # first operating point where FPR >= FNR; i >= 1 since d[0] = -1
    if d[i] == 0:
        return float(fpr[i]), float(thr[i]), None
    # Linear interpolation between the operating points i-1 and i, where FPR crosses FNR.
    t = d[i - 1] / (d[i - 1] - d[i])
    rate = fpr[i - 1] + t * (fpr[i] - fpr[i - 1])
    if np.isfinite(thr[i - 1]):
        threshold = thr[i - 1] + t * (thr[i] - thr[i - 1])
    else:
        threshold = thr[i]
    return float(rate), float(threshold), None


def eer(scores, labels) -> tuple[float, float]:
    """Equal error rate and the threshold at which it occurs: ``(eer, threshold)``.

    From :func:`sklearn.metrics.roc_curve`; the EER is interpolated linearly between the two
    operating points where the false-accept rate crosses the false-reject rate (1 - TPR), and
    the threshold is interpolated the same way.  ``(nan, nan)`` with a warning for one class.
    """
    s, y = _as_arrays(scores, labels)
    rate, threshold, reason = _eer(s, y)
    if reason:
        warnings.warn(reason, stacklevel=2)
    return rate, threshold


def _tar_at_far(s: np.ndarray, y: np.ndarray, far: float) -> tuple[float, str | None]:
    if not 0.0 <= far <= 1.0:
        raise ValueError(f"far must lie in [0, 1], got {far}")
    reason = _one_class_reason(y, f"TAR@FAR={far:g}")
    if reason:
        return math.nan, reason
    fpr, tpr, _ = _roc(s, y)
    ok = fpr <= far + 1e-12
    return float(tpr[ok].max()), None  # fpr[0] == 0, so ok is never all False


def tar_at_far(scores, labels, far: float) -> float:
    """True-accept rate (recall of same-artist pairs) at the best threshold whose false-accept rate is <= ``far``.

    No interpolation: only thresholds actually reachable on these scores count, so with few
    negatives a small ``far`` (< 1 / n_negatives) can only be met by accepting nothing.
    """
    s, y = _as_arrays(scores, labels)
    value, reason = _tar_at_far(s, y, float(far))
    if reason:
        warnings.warn(reason, stacklevel=2)
    return value


# --------------------------------------------------------------------------- threshold choice


def best_threshold(scores, labels, criterion: str = "accuracy") -> float:
    """Choose a decision threshold on validation pairs.

    ``criterion``:
      * ``"accuracy"`` (default; the right choice for balanced pairs): maximises accuracy;
      * ``"f1"``: maximises F1 of the same-artist class;
      * ``"eer"``: the equal-error-rate threshold (see :func:`eer`).

    For accuracy/F1 every distinct score is a candidate; among equally good candidates the middle
    one is taken, and the returned value lies halfway between the chosen score and the next lower
    one, so that it makes the same decisions on these pairs with the widest margin.  Raises
    :class:`DataError` unless both classes are present.
    """
    if criterion not in THRESHOLD_CRITERIA:
        raise ValueError(f"criterion must be one of {THRESHOLD_CRITERIA}, got {criterion!r}")
    s, y = _as_arrays(scores, labels)
    reason = _one_class_reason(y, "a threshold")
    if reason:
        raise DataError(reason.replace("is undefined", "cannot be chosen") +
                        "; validation pairs need both same- and different-artist pairs")
    if criterion == "eer":
        return _eer(s, y)[1]
    fpr, tpr, thr = _roc(s, y)
    n_pos = float(y.sum())
    n_neg = float(y.size) - n_pos
    tp = tpr * n_pos
    fp = fpr * n_neg
    if criterion == "accuracy":
        value = (tp + (n_neg - fp)) / (n_pos + n_neg)
    else:  # f1
        denom = 2 * tp + fp + (n_pos - tp)
        value = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    best = np.flatnonzero(np.isclose(value, value.max(), rtol=0, atol=1e-12))
    k = int(best[len(best) // 2])
    if k == 0:  # reject everything: just above the highest score
        return float(np.nextafter(thr[1], np.inf))
    if k == len(thr) - 1:  # accept everything: the lowest score itself
        return float(thr[k])
    return float((thr[k] + thr[k + 1]) / 2.0)


# --------------------------------------------------------------------------- bootstrap


def probability_metrics(p, labels, bins: int = 10, eps: float = 1e-6) -> dict:
    """How well probabilities p(same artist) match labelled pairs: Brier score, log loss (sklearn), expected
    calibration error (|mean p - rate of same| over `bins` equal-width bins, weighted by pairs), the mean p and
    the rate of same-artist pairs. p is clipped to [eps, 1 - eps] first."""
    from sklearn.metrics import brier_score_loss, log_loss

    y = np.asarray(labels, dtype=int)
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    which = np.minimum((p * bins).astype(int), bins - 1)
    ece = sum(abs(p[which == b].mean() - y[which == b].mean()) * (which == b).mean()
              for b in range(bins) if (which == b).any())
    return {"brier": float(brier_score_loss(y, p)), "log_loss": float(log_loss(y, p, labels=[0, 1])),
            "ece": float(ece), "mean_p": float(p.mean()), "rate": float(y.mean())}


def bootstrap_ci(
    fn: Callable[[np.ndarray, np.ndarray], float],
    scores,
    labels,
    n_boot: int = 200,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap ``(low, high)`` interval of ``fn(scores, labels)`` over pairs.

    Pairs are resampled with replacement ``n_boot`` times; resamples containing only one class,
    and resamples where ``fn`` returns ``nan``, are skipped.  ``(nan, nan)`` when none remain.
    Note: pairs sharing a painting are not independent, so this interval is somewhat optimistic.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    s, y = _as_arrays(scores, labels)
    n = y.size
    if n == 0 or n_boot <= 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(int(n_boot)):
        idx = rng.integers(0, n, size=n)
        yb = y[idx]
        n_pos = int(yb.sum())
        if n_pos == 0 or n_pos == n:
            continue
        v = float(fn(s[idx], yb))
        if not math.isnan(v):
            values.append(v)
    if not values:
        return math.nan, math.nan
    low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)
