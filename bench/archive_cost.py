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


def timed(cmd: list[str], cache: Path, pythonpath: str) -> tuple[float, str]:
    """Seconds of one command from a cold cache holding only the ONNX exports; its stderr."""
    if cache.exists():
        shutil.rmtree(cache)
    shutil.copytree(cache_dir() / "onnx", cache / "onnx")
    env = {**os.environ, "PAINTERID_CACHE": str(cache), "PYTHONPATH": pythonpath}
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return dt, proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/paintings"))
    ap.add_argument("--n", type=int, default=100, help="paintings in the collection (0: all)")
    ap.add_argument("--model", default="archive")
    ap.add_argument("--before", default=None, help="PYTHONPATH of the code before, to time its cohort set too")
    ap.add_argument("--out", type=Path, default=Path("docs/results/archive-cost.json"))
    args = ap.parse_args()
    here = str(Path(__file__).resolve().parents[1])
    py = [sys.executable, "-m", "painterid"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        coll = collection(args.data, args.n, tmp / "collection")
        n = len(list(coll.iterdir()))
        embed_s, _ = timed([*py, "embed", str(coll), "--out", str(tmp / "store")], tmp / "cache", here)
        cohort_s, log = timed([*py, "cohort", "set", args.model, str(coll), "--out", str(tmp / "m")],
                              tmp / "cache", here)
        before_s = None
        if args.before:
            before_s, _ = timed([*py, "cohort", "set", args.model, str(coll), "--out", str(tmp / "m0")],
                                tmp / "cache", args.before)
        cfg = json.loads((tmp / "m" / "config.json").read_text())
    result = {"paintings": n, "model": args.model, "embed_s": round(embed_s, 1), "cohort_set_s": round(cohort_s, 1),
              "ratio": round(cohort_s / embed_s, 2), "cohort_set_before_s": None if before_s is None else
              round(before_s, 1), "selfsup": cfg["cohort"].get("selfsup"), "chain": cfg["normaliser"],
              "stderr_lines": len(log.splitlines()), "machine": machine(),
              "command": " ".join(sys.argv)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
