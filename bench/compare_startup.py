"""Wall time of `painterid compare a.jpg b.jpg` from a fresh process, against `python -c "import torch"` (the floor).

    python bench/compare_startup.py

cold cache: a new, empty embedding cache every run, so both images are decoded and embedded (the backbone is
created; timm, and with it torchvision, must be imported: `python -c "import torch, timm"` is timed as well). warm cache: the same cache again, so both vectors come from it. Each is a new Python process; the
OS file cache is warm in both (the bench cannot drop it). Rounds are interleaved and the median is reported.
Also lists the heavy modules a warm `compare` imports (none of sklearn, matplotlib, faiss,
pytorch_metric_learning, timm, torchvision should be).
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

HEAVY = ("sklearn", "matplotlib", "faiss", "pytorch_metric_learning", "timm", "torchvision", "scipy", "pandas")


def wall(cmd: list[str], env: dict, ok=(0, 1)) -> float:
    t = time.perf_counter()
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if run.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} failed ({run.returncode}): {run.stderr[-2000:]}")
    return dt


def imported_heavy(cmd: list[str], env: dict) -> list[str]:
    run = subprocess.run([sys.executable, "-X", "importtime", *cmd[1:]], env=env, capture_output=True, text=True)
    names = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in run.stderr.splitlines()
             if line.startswith("import time:")}
    return sorted(names & set(HEAVY))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="*", type=Path,
                    default=[ROOT / "tests" / "data" / "chelsea.jpg", ROOT / "tests" / "data" / "coffee.jpg"])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    compare = [sys.executable, "-m", "painterid", "compare", *map(str, args.images)]
    floor_cmd = [sys.executable, "-c", "import torch"]
    timm_cmd = [sys.executable, "-c", "import torch, timm"]  # what embedding a new image cannot do without
    times: dict[str, list[float]] = {"floor_import_torch": [], "import_torch_timm": [], "compare_cold_cache": [],
                                     "compare_warm_cache": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            env = dict(os.environ, PAINTERID_CACHE=str(Path(tmp) / f"cache-{r}"))
            times["floor_import_torch"].append(wall(floor_cmd, env))
            times["import_torch_timm"].append(wall(timm_cmd, env))
            times["compare_cold_cache"].append(wall(compare, env))
            times["compare_warm_cache"].append(wall(compare, env))
        heavy = imported_heavy(compare, env)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "bench": "compare_startup", "images": [str(p) for p in args.images], "rounds": args.rounds,
        "median_seconds": {k: round(v, 3) for k, v in med.items()},
        "all_seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "ratio_to_floor": {k: round(v / med["floor_import_torch"], 2) for k, v in med.items()
                           if k != "floor_import_torch"},
        "heavy_modules_imported_by_warm_compare": heavy,
        "machine": machine(),
    }
    print(json.dumps(result))
    f = med["floor_import_torch"]
    print(f"floor (import torch) {f:.2f}s, import torch + timm {med['import_torch_timm']:.2f}s; compare cold cache {med['compare_cold_cache']:.2f}s "
          f"({result['ratio_to_floor']['compare_cold_cache']:.2f}x), warm cache {med['compare_warm_cache']:.2f}s "
          f"({result['ratio_to_floor']['compare_warm_cache']:.2f}x); heavy imports when warm: {heavy or 'none'}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
