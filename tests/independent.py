"""Reference computations written independently of painterid (plain numpy loops), for tests to check against."""

from __future__ import annotations

import numpy as np


def map_at_r(embeddings, artists, metric: str = "cosine") -> float:
    """MAP@R by its definition (Musgrave et al. 2020): each painting of an artist with R >= 1 other paintings
    queries all the others (never itself: excluded by index, not by distance); its AP@R is
    (1/R) * sum over the first R neighbours of precision@i at each relevant one.  Ties break by lower index."""
    x = np.asarray(embeddings, dtype=np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        dist = 1.0 - x @ x.T
    else:
        dist = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    artists = list(artists)
    aps = []
    for q in range(len(x)):
        r = sum(1 for j, a in enumerate(artists) if j != q and a == artists[q])
        if r == 0:
            continue
        others = [j for j in np.argsort(dist[q], kind="stable") if j != q][:r]
        hits, total = 0, 0.0
        for i, j in enumerate(others, start=1):
            if artists[j] == artists[q]:
                hits += 1
                total += hits / i
        aps.append(total / r)
    return float(np.mean(aps))
