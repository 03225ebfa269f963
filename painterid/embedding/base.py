"""What every embedder (torch's Embedder, ONNX Runtime's OnnxEmbedder) shares: embedding a list of files."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np


class EmbedsFiles:
    """What both embedders (torch's Embedder, OnnxEmbedder) build on their `iter_files`."""

    def embed_files(self, paths: Sequence[str | os.PathLike]) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """Embed files in order; rows of files that failed are NaN and listed in the failures."""
        out = np.full((len(paths), self.dim), np.nan, dtype=np.float32)
        failures: list[tuple[int, str]] = []
        for idx, vecs, bad in self.iter_files(paths):
            out[idx] = vecs
            failures.extend(bad)
        return out, failures
