"""Speed of `painterid compare` with one model against another (e.g. the previous default vs the new one).

    python bench/compare_models.py OLD_MODEL NEW_MODEL [--rounds 7] [--out docs/results/compare-models.json]

Per round and model, interleaved: a fresh `python -m painterid compare a.jpg b.jpg --model M` with a warm
embedding cache (what the model adds shows: load, normaliser chain, CSLS, calibration) and with a cold one (a new
cache directory holding only the ONNX exports, made beforehand: both images are decoded and embedded, which is
where two models over different embeddings differ), and in-process the time of `PairModel.load` + `scores` for
one pair. Medians; ratio new / old.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine  # noqa: E402
from painterid.scoring.loading import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs=2, type=Path)
    ap.add_argument("--images", nargs=2, type=Path, default=[ROOT / "examples/paintings/train/cezanne-1.jpg",
                                                             ROOT / "examples/paintings/train/cezanne-2.jpg"])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    import numpy as np

    from painterid.tasks.compare import embed_paths

    cache = tempfile.mkdtemp(prefix="painterid-cmp-")
    env = dict(os.environ, PAINTERID_CACHE=cache, PYTHONPATH=str(ROOT))
    os.environ["PAINTERID_CACHE"] = cache
    models = {str(m): load_model(m) for m in args.models}
    vecs = {m: embed_paths(list(args.images), pm.embedding) for m, pm in models.items()}  # warms cache + exports
    times: dict[str, dict[str, list[float]]] = {m: {"cli": [], "cli_cold": [], "load_score": []} for m in models}
    compare = [sys.executable, "-m", "painterid", "compare", *map(str, args.images)]
    for r in range(args.rounds):
        for m in models:
            t = time.perf_counter()
            subprocess.run([*compare, "--model", m], env=env, capture_output=True, check=False)
            times[m]["cli"].append(time.perf_counter() - t)
            cold = Path(tempfile.mkdtemp(prefix=f"painterid-cold-{r}-"))
            (cold / "onnx").symlink_to(Path(cache) / "onnx", target_is_directory=True)
            t = time.perf_counter()
            subprocess.run([*compare, "--model", m], env={**env, "PAINTERID_CACHE": str(cold)}, capture_output=True,
                           check=False)
            times[m]["cli_cold"].append(time.perf_counter() - t)
            t = time.perf_counter()
            pm = load_model(m)
            pm.probability(pm.scores(vecs[m][:1], vecs[m][1:2]))
            times[m]["load_score"].append(time.perf_counter() - t)
    med = {m: {k: statistics.median(v) for k, v in d.items()} for m, d in times.items()}
    old, new = (med[str(m)] for m in args.models)
    res = {"machine": machine(), "median_s": med, "ratio_new_over_old": {k: new[k] / old[k] for k in old},
           "scores": {m: float(pm.scores(vecs[m][:1], vecs[m][1:2])[0]) for m, pm in models.items()},
           "embeddings": {m: {k: pm.embedding.get(k) for k in ("backbone", "view", "pool", "dim")}
                          for m, pm in models.items()},
           "rounds": args.rounds, "vector_norms": {m: np.linalg.norm(v, axis=1).round(3).tolist()
                                                   for m, v in vecs.items()}}
    print(json.dumps(res, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
