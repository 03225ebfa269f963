"""Opening a store of many small chunks (a long `compare` loop before compaction) against one compacted chunk.

Usage: python bench/store_compaction.py [ROWS]   (prints seconds to open, and chunks after ROWS one-row commits)
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import painterid.store.feature_store as st
from painterid.store.feature_store import FeatureStore, Row


def time_open(root: Path, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        FeatureStore.open(root)
        best = min(best, time.perf_counter() - t)
    return best


def main(rows: int = 1000) -> None:
    emb = {"backbone": "bench", "dim": 1280}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        st.COMPACT_AT = 10**9  # the old behaviour: one chunk per call, never merged
        many = FeatureStore.create_or_open(Path(d) / "many", emb, unique="sha256")
        for i in range(rows):
            many.append([Row(f"{i}.jpg", f"{i:064x}")], rng.normal(size=(1, 1280)).astype(np.float32))
        t_many = time_open(many.root)
        res = FeatureStore.open(many.root).compact()
        t_one = time_open(many.root)
        st.COMPACT_AT = 64  # the shipped setting
        auto = FeatureStore.create_or_open(Path(d) / "auto", emb, unique="sha256")
        most = 0
        for i in range(rows):
            auto.append([Row(f"{i}.jpg", f"{i:064x}")], rng.normal(size=(1, 1280)).astype(np.float32))
            most = max(most, len(list(auto.root.glob("shard-*.safetensors"))))
    print(f"{rows} one-row commits: open {t_many * 1e3:.1f} ms with {res['chunks_before']} chunks, "
          f"{t_one * 1e3:.1f} ms after compaction ({t_many / t_one:.1f}x); with automatic compaction at 64 the "
          f"store never held more than {most} chunks")
    print(json.dumps({"rows": rows, "open_ms_chunks": t_many * 1e3, "chunks_before": res["chunks_before"],
                      "open_ms_compacted": t_one * 1e3, "speedup": t_many / t_one, "max_chunks_auto": most}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
