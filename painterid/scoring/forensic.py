"""Forensic measures of likelihood ratios: Cllr, min Cllr, and the Tippett plot.

Cllr (Brümmer & du Preez 2006) is the cost of a set of log likelihood ratios on same-source (label 1) and
different-source (label 0) trials: 0 is perfect, 1 is an uninformative system (LR = 1 always), above 1 is worse
than saying nothing (misleading). min Cllr is the Cllr after the best monotone recalibration of the same scores
(pool-adjacent-violators, sklearn's IsotonicRegression): what discrimination alone allows; Cllr - min Cllr is the
calibration loss. `lir` (PyPI) implements the same formulas; they are a few lines, written out here rather than
adding that dependency, and tests/test_sets.py checks them against hand-computed values.
"""

from __future__ import annotations

import numpy as np

LN10 = float(np.log(10.0))


def cllr(log10_lr, labels) -> float:
    """0.5 * (mean over same-source of log2(1 + 1/LR) + mean over different-source of log2(1 + LR))."""
    z = np.asarray(log10_lr, dtype=np.float64) * LN10  # natural log LR
    y = np.asarray(labels, dtype=int)
    if not ((y == 1).any() and (y == 0).any()):
        raise ValueError("Cllr needs same-source and different-source trials")
    same = np.logaddexp(0.0, -z[y == 1]) / np.log(2.0)
    diff = np.logaddexp(0.0, z[y == 0]) / np.log(2.0)
    return float(0.5 * (same.mean() + diff.mean()))


def min_cllr(scores, labels) -> float:
    """Cllr after the optimal monotone calibration of `scores` (PAV on the trials, prior odds of the trials
    removed so the result is an LR)."""
    from sklearn.isotonic import IsotonicRegression

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    p = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit_transform(s, y)
    eps = 1e-12
    p = np.clip(p, eps, 1 - eps)
    prior_log_odds = np.log((y == 1).sum() / (y == 0).sum())
    log10_lr = (np.log(p) - np.log1p(-p) - prior_log_odds) / LN10
    # a PAV bin of only same (p=1) or only different (p=0) trials costs nothing: clip to a large finite LR
    return cllr(np.clip(log10_lr, -12, 12), y)


def forensic_metrics(log10_lr, scores, labels) -> dict:
    """Cllr, min Cllr, EER and TAR at 1% FAR (scoring.metrics) of calibrated log10 LRs and their raw scores."""
    from painterid.scoring.metrics import eer, tar_at_far

    y = np.asarray(labels, dtype=int)
    e, _ = eer(log10_lr, y)
    n_neg = int((y == 0).sum())
    return {"cllr": cllr(log10_lr, y), "min_cllr": min_cllr(scores, y), "eer": float(e),
            "tar_at_1pct_far": float(tar_at_far(log10_lr, y, 0.01)), "trials": int(len(y)),
            "same": int((y == 1).sum()), "different": n_neg,
            **({"warning": f"TAR at 1% FAR from {n_neg} different-artist trials"} if n_neg < 100 else {})}


def tippett_plot(log10_lr, labels, out, title: str = "Tippett plot") -> str:
    """Write a Tippett plot (proportion of trials with log10 LR above x, same vs different artist) to `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z = np.asarray(log10_lr, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for lab, name, colour in ((1, "same artist", "tab:blue"), (0, "different artists", "tab:red")):
        v = np.sort(z[y == lab])
        ax.step(v, 1.0 - np.arange(len(v)) / max(len(v), 1), where="post", label=f"{name} ({len(v)})", color=colour)
    ax.axvline(0.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("log10 likelihood ratio")
    ax.set_ylabel("proportion of trials with log10 LR ≥ x")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return str(out)
