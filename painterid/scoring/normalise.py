"""Score normalisation against a cohort of other paintings (CSLS), as in speaker verification."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

NORMALISERS = ("none", "csls")


def neighbourhood(score_to_cohort: Callable[[np.ndarray], np.ndarray], x: np.ndarray, k: int,
                  chunk: int = 4096) -> np.ndarray:
    """Mean of each row's k highest scores against the cohort (r(x) in CSLS)."""
    out = np.empty(len(x), dtype=np.float32)
    for s in range(0, len(x), chunk):
        sims = score_to_cohort(x[s:s + chunk])  # [n, C]
        kk = min(k, sims.shape[1])
        out[s:s + chunk] = np.partition(sims, -kk, axis=1)[:, -kk:].mean(1)
    return out


def csls(raw: np.ndarray, r_a: np.ndarray, r_b: np.ndarray) -> np.ndarray:
    """Cross-domain similarity local scaling: 2 s(a, b) - r(a) - r(b)."""
    return 2.0 * raw - r_a - r_b
