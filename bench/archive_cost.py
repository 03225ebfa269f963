"""What fitting a model to an archive costs (issue 20, item 8): wall time of `painterid cohort set archive
COLLECTION --out M` over that of `painterid embed COLLECTION`, each from a cold cache (the ONNX export copied in
beforehand, so neither pays for it), as subprocesses, the way a user runs them.

    .venv/bin/python bench/archive_cost.py --data ../shared/paintings --n 100 --out docs/results/archive-cost.json

COLLECTION is the first `--n` images of DATA's train/ (or every image with --n 0), linked into a flat folder.
`--before PYTHONPATH` also times `cohort set` with another checkout's code (the path before this change).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine  # noqa: E402

from painterid.core.locations import cache_dir  # noqa: E402


def collection(data: Path, n: int, where: Path) -> Path:
    files = sorted(p for p in (data / "train").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    files = files[:n] if n else files
    where.mkdir(parents=True)
    for f in files:
        (where / f.name).symlink_to(f.resolve())
    return where


def timed(cmd: list[str], cache: Path, pythonpath: str) -> tuple[float, list[tuple[float, str]]]:
    """Seconds of one command from a cold cache holding only the ONNX exports; its stderr lines, each with the
    second it came at."""
    if cache.exists():
        shutil.rmtree(cache)
    if (cache_dir() / "onnx").is_dir():  # the export is not what is timed (absent: the command makes it)
        shutil.copytree(cache_dir() / "onnx", cache / "onnx")
    else:
        cache.mkdir(parents=True)
    env = {**os.environ, "PAINTERID_CACHE": str(cache), "PYTHONPATH": pythonpath}
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines = [(round(time.perf_counter() - t, 1), ln.rstrip()) for ln in proc.stderr]
    if proc.wait() != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n" + "\n".join(ln for _, ln in lines[-30:]))
    return time.perf_counter() - t, lines


def phases(lines: list[tuple[float, str]], total: float) -> dict:
    """Seconds before the embedding, embedding, fitting + saving, from the stage lines of `cohort set`."""
    start = next((t for t, ln in lines if ln.startswith("embedding ")), None)
    fit = next((t for t, ln in lines if ln.startswith("fitting ")), None)
    if start is None or fit is None:
        return {}
    return {"startup_s": start, "embedding_s": round(fit - start, 1), "fit_and_save_s": round(total - fit, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/paintings"))
    ap.add_argument("--n", type=int, default=100, help="paintings in the collection (0: all)")
    ap.add_argument("--model", default="archive")
    ap.add_argument("--before", default=None, help="PYTHONPATH of the code before, to time its cohort set too")
    ap.add_argument("--repeat", type=int, default=2, help="embed / cohort set pairs, alternated")
    ap.add_argument("--out", type=Path, default=Path("docs/results/archive-cost.json"))
    args = ap.parse_args()
    here = str(Path(__file__).resolve().parents[1])
    py = [sys.executable, "-m", "painterid"]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        coll = collection(args.data, args.n, tmp / "collection")
        n = len(list(coll.iterdir()))
        for r in range(args.repeat):  # alternated, so that a change of load on the machine hits both alike
            embed_s, _ = timed([*py, "embed", str(coll), "--out", str(tmp / f"store{r}")], tmp / "cache", here)
            cohort_s, log = timed([*py, "cohort", "set", args.model, str(coll), "--out", str(tmp / f"m{r}")],
                                  tmp / "cache", here)
            runs.append({"embed_s": round(embed_s, 1), "cohort_set_s": round(cohort_s, 1),
                         "ratio": round(cohort_s / embed_s, 2), **phases(log, cohort_s),
                         "progress_lines": sum(ln.startswith("painterid: embedding ") for _, ln in log)})
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
        before_s = None
        if args.before:
            before_s, _ = timed([*py, "cohort", "set", args.model, str(coll), "--out", str(tmp / "m-before")],
                                tmp / "cache", args.before)
        cfg = json.loads((tmp / "m0" / "config.json").read_text())
    embed_s = float(np.median([r["embed_s"] for r in runs]))
    cohort_s = float(np.median([r["cohort_set_s"] for r in runs]))
    result = {"paintings": n, "model": args.model, "embed_s": embed_s, "cohort_set_s": cohort_s,
              "ratio_of_medians": round(cohort_s / embed_s, 2), "runs": runs,
              "cohort_set_before_s": None if before_s is None else round(before_s, 1),
              "selfsup": cfg["cohort"].get("selfsup"), "chain": cfg["normaliser"], "machine": machine(),
              "command": " ".join(sys.argv)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
