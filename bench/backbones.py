"""Which backbone serves the paintings best: `painterid benchmark` (painterid.training.benchmark), run from bench/.

    python bench/backbones.py --data ../shared/paintings --out docs/results/benchmark-real.json \
        --plot docs/results/benchmark-real.png --backbones efficientnet_lite0 efficientnet_lite1 ...

A thin caller of the library (one implementation): unseen-artist AUC over artist-disjoint folds and leaving one
source out, with the default scoring and a trained head, seconds per image, dimension and memory of each backbone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from painterid.core.io import atomic_write_text  # noqa: E402
from painterid.evaluation.benchmark_report import markdown, plot_png  # noqa: E402
from painterid.training.benchmark import BenchmarkOptions, run_benchmark  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "efficientnet_lite1",
                                                        "efficientnet_lite2", "mobilenetv2"])
    ap.add_argument("--view", default="patches")
    ap.add_argument("--pool", default=None, help="one pooling for all (default: each backbone's own)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()

    opts = BenchmarkOptions(view=args.view, pool=args.pool, seeds=tuple(range(args.seeds)), epochs=args.epochs)
    result = run_benchmark(args.data, args.backbones, opts, log=lambda m: print(m, file=sys.stderr, flush=True))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    if args.plot:
        plot_png(result, args.plot)
    print(markdown(result))
    print(json.dumps({"best": result["best"]}))


if __name__ == "__main__":
    main()
