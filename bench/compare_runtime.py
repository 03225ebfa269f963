"""The fast CPU path (ONNX Runtime, no torch) against the torch path: start-up, peak memory, throughput.

    python bench/compare_runtime.py [--rounds 5] [--n 48] [--out docs/results/compare-runtime-2cpu.jsonl]

1. `painterid compare a.jpg b.jpg` (tests/data/chelsea.jpg vs coffee.jpg, the shipped default model) as fresh
   processes, `--runtime onnx` and `--runtime torch`, each with a cold embedding cache (a new cache directory:
   both images are decoded and embedded; the ONNX export is already made and linked in) and a warm one (the same
   cache again: both vectors come from it), against the floor `python -c "import numpy, PIL.Image"`.  Rounds
   are interleaved and medians reported; every child's peak resident memory comes from `os.wait4`.  The
   one-time export (the first ONNX compare on a machine) is timed once, separately.
2. Embedding throughput over `--n` synthetic 512 px JPEG paintings, default embedding, batch 16, in this
   process: `OnnxEmbedder.embed_files` vs the eager torch `Embedder.embed_files` (0 workers, its default on 2
   cores) vs the bare ONNX forward pass on the same images already decoded into views (`embed_views`).

Targets (issue 15): warm ≤ 3x the floor; cold ≥ 3x faster than torch cold; ONNX files ≥ 1.3x eager torch and
≥ 0.9 of the bare ONNX forward; peak memory of compare ≤ half of torch's.
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

IMAGES = [ROOT / "tests" / "data" / "chelsea.jpg", ROOT / "tests" / "data" / "coffee.jpg"]


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one child process; exit 0 or 1 (compare's verdicts) required."""
    t = time.perf_counter()
    with tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=errf)
        _, status, usage = os.wait4(proc.pid, 0)
        dt = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in (0, 1):
            errf.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {errf.read().decode()[-2000:]}")
    return dt, usage.ru_maxrss / 1024.0


def startup(rounds: int, base_env: dict, tmp: Path) -> dict:
    py = sys.executable
    compare = [py, "-m", "painterid", "compare", *map(str, IMAGES)]
    export_cache = tmp / "export-cache"
    # first use on a machine: the ONNX export happens inside this compare (timed once)
    first, first_rss = timed([*compare, "--runtime", "onnx"], {**base_env, "PAINTERID_CACHE": str(export_cache)})
    cmds = {"floor_import_numpy_pil": [py, "-c", "import numpy, PIL.Image"],
            "onnx_cold": [*compare, "--runtime", "onnx"], "onnx_warm": [*compare, "--runtime", "onnx"],
            "torch_cold": [*compare, "--runtime", "torch"], "torch_warm": [*compare, "--runtime", "torch"]}
    wall: dict[str, list[float]] = {k: [] for k in cmds}
    rss: dict[str, list[float]] = {k: [] for k in cmds}
    for r in range(rounds):
        for rt in ("onnx", "torch"):
            cache = tmp / f"cache-{rt}-{r}"
            cache.mkdir()
            (cache / "onnx").symlink_to(export_cache / "onnx", target_is_directory=True)
        for name, cmd in cmds.items():
            rt = name.split("_")[0]
            env = {**base_env, "PAINTERID_CACHE": str(tmp / f"cache-{rt}-{r}")}
            dt, mb = timed(cmd, env)
            wall[name].append(dt)
            rss[name].append(mb)
    med = {k: statistics.median(v) for k, v in wall.items()}
    mem = {k: statistics.median(v) for k, v in rss.items()}
    floor = med["floor_import_numpy_pil"]
    return {
        "median_seconds": {k: round(v, 3) for k, v in med.items()},
        "all_seconds": {k: [round(x, 3) for x in v] for k, v in wall.items()},
        "median_peak_rss_mib": {k: round(v, 1) for k, v in mem.items()},
        "first_use_with_export_seconds": round(first, 2), "first_use_peak_rss_mib": round(first_rss, 1),
        "ratios": {
            "onnx_warm_over_floor": round(med["onnx_warm"] / floor, 2),
            "onnx_cold_over_floor": round(med["onnx_cold"] / floor, 2),
            "torch_warm_over_floor": round(med["torch_warm"] / floor, 2),
            "torch_cold_over_onnx_cold": round(med["torch_cold"] / med["onnx_cold"], 2),
            "torch_warm_over_onnx_warm": round(med["torch_warm"] / med["onnx_warm"], 2),
            "onnx_cold_rss_over_torch_cold": round(mem["onnx_cold"] / mem["torch_cold"], 3),
            "onnx_warm_rss_over_torch_warm": round(mem["onnx_warm"] / mem["torch_warm"], 3),
        },
    }


def throughput(n: int, size: int, rounds: int, tmp: Path) -> dict:
    import numpy as np

    from painterid.data.synthetic import make_synthetic_dataset
    from painterid.embedding.images import load_image
    from painterid.embedding.runtime import default_request, make_embedder

    root = tmp / "paintings"
    make_synthetic_dataset(root, n_artists=-(-n // 8), per_artist=8, size=size, seed=1)
    files = sorted((root / "train").glob("*.jpg"))[:n]
    request = default_request()
    onnx = make_embedder(request, device="cpu", runtime="onnx", batch_size=16)
    eager = make_embedder(request, device="cpu", runtime="torch", batch_size=16, num_workers=0)
    views = np.stack([onnx.views(load_image(f)) for f in files])
    onnx.embed_views(views[:2])  # warm-up of both (first-call allocations)
    eager.embed_files(files[:2])

    def rate(fn) -> float:
        t = time.perf_counter()
        fn()
        return len(files) / (time.perf_counter() - t)

    def bare():
        for s in range(0, len(views), onnx.batch_size):
            onnx.embed_views(views[s:s + onnx.batch_size])

    runs: dict[str, list[float]] = {"onnx_files": [], "torch_files": [], "onnx_bare_forward": []}
    for _ in range(rounds):
        runs["onnx_bare_forward"].append(rate(bare))
        runs["onnx_files"].append(rate(lambda: onnx.embed_files(files)))
        runs["torch_files"].append(rate(lambda: eager.embed_files(files)))
    med = {k: statistics.median(v) for k, v in runs.items()}
    a, _ = onnx.embed_files(files[:8])
    b, _ = eager.embed_files(files[:8])
    return {
        "n_images": len(files), "size": size, "batch_size": 16, "embedding": request,
        "images_per_s": {k: round(v, 2) for k, v in med.items()},
        "all_rounds": {k: [round(x, 2) for x in v] for k, v in runs.items()},
        "ratios": {"onnx_files_over_torch_files": round(med["onnx_files"] / med["torch_files"], 3),
                   "onnx_files_over_bare_forward": round(med["onnx_files"] / med["onnx_bare_forward"], 3)},
        "vectors_onnx_vs_torch": {"max_abs_diff": float(np.abs(a - b).max()),
                                  "min_cosine": float(np.einsum("nd,nd->n", a, b).min())},
        "runtime": onnx.runtime,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=48, help="synthetic paintings for the throughput part")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--skip-startup", action="store_true")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="append the JSON line to this file")
    args = ap.parse_args()

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PAINTERID_RUNTIME", None)
    env.pop("PAINTERID_NO_CACHE", None)
    # An installed wheel has its bytecode compiled by pip; measure that state, not a checkout run with
    # PYTHONDONTWRITEBYTECODE (which recompiles every painterid module on each start).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "painterid")], check=False,
                   stdout=subprocess.DEVNULL)
    result: dict = {"bench": "compare_runtime", "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_startup:
            result["compare"] = startup(args.rounds, env, Path(tmp))
        if not args.skip_throughput:
            os.environ["PAINTERID_CACHE"] = str(Path(tmp) / "export-cache")  # the export made above (or now)
            result["embed"] = throughput(args.n, args.size, args.rounds, Path(tmp))
    result["machine"] = machine()
    line = json.dumps(result)
    print(line)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(line + "\n")
    if "compare" in result:
        c = result["compare"]
        print(f"compare median s: {c['median_seconds']}; ratios {c['ratios']}; peak RSS MiB "
              f"{c['median_peak_rss_mib']}; first use (export) {c['first_use_with_export_seconds']} s",
              file=sys.stderr)
    if "embed" in result:
        e = result["embed"]
        print(f"embed img/s {e['images_per_s']}; ratios {e['ratios']}; vectors {e['vectors_onnx_vs_torch']}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
