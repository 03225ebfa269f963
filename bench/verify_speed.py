"""Wall time of `painterid verify q.jpg --references refs/` (20 cached references) against a warm
`painterid compare q.jpg r.jpg`, both on the ONNX path (PAINTERID_RUNTIME=onnx), each a new process.

    python bench/verify_speed.py [--data ../shared/paintings] [--rounds 7] --out docs/results/verify-speed.json

Both commands run once first so every vector is in the embedding cache (a fresh cache under a temporary
directory, the ONNX export linked in from the user's cache); then rounds are interleaved and the median is
reported, with the heavy modules each imports (torch must not be among them). Target: verify <= 1.2x compare.
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

HEAVY = ("torch", "sklearn", "matplotlib", "faiss", "timm", "torchvision", "scipy", "pandas")
PROBE = ("import sys, runpy, json\nsys.argv = ['painterid'] + sys.argv[1:]\ntry:\n"
         "    runpy.run_module('painterid', run_name='__main__')\nfinally:\n"
         "    print('MODULES=' + json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(%r))), "
         "file=sys.stderr)\n" % (HEAVY,))


def wall(args: list[str], env: dict) -> tuple[float, list[str]]:
    t = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, cwd=ROOT)
    dt = time.perf_counter() - t
    if run.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(args)} failed ({run.returncode}): {run.stderr[-2000:]}")
    line = [x for x in run.stderr.splitlines() if x.startswith("MODULES=")][-1]
    return dt, json.loads(line[len("MODULES="):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "paintings")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "verify-speed.json")
    args = ap.parse_args()
    from painterid.core.locations import cache_dir

    images = sorted((args.data / "train").glob("*.jpg"))
    q, refs = images[0], images[1:21]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "refs").mkdir()
        for r in refs:
            (tmp / "refs" / r.name).symlink_to(r)
        (tmp / "cache").mkdir()
        if (cache_dir() / "onnx").is_dir():
            (tmp / "cache" / "onnx").symlink_to(cache_dir() / "onnx", target_is_directory=True)
        env = {**os.environ, "PAINTERID_CACHE": str(tmp / "cache"), "PAINTERID_RUNTIME": "onnx",
               "PYTHONPATH": str(ROOT)}
        cmds = {"compare": ["compare", str(q), str(refs[0])],
                "verify": ["verify", str(q), "--references", str(tmp / "refs")]}
        for c in cmds.values():  # fill the embedding cache (and the ONNX export)
            wall(c, env)
        times: dict[str, list[float]] = {k: [] for k in cmds}
        heavy: dict[str, list[str]] = {}
        for _ in range(args.rounds):
            for k, c in cmds.items():
                dt, heavy[k] = wall(c, env)
                times[k].append(dt)
    med = {k: statistics.median(v) for k, v in times.items()}
    res = {"machine": machine(), "rounds": args.rounds, "references": len(refs), "median_s": med,
           "all_s": times, "ratio_verify_over_compare": med["verify"] / med["compare"], "target_ratio": 1.2,
           "heavy_imports": heavy, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: res[k] for k in ("median_s", "ratio_verify_over_compare", "heavy_imports")}))


if __name__ == "__main__":
    main()
