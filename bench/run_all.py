"""Run every benchmark in bench/ at the settings its docstring (and docs/PERFORMANCE.md) documents.

    python bench/run_all.py                 # all of them; the real-painting ones only when ../shared/paintings exists
    python bench/run_all.py --quick         # every bench at a small size (a minute or two): does each still run?
    python bench/run_all.py --only pair_scoring index_search
    python bench/run_all.py --list

Each bench runs in its own process (as a user runs it), one after the other, so they do not share the CPU.
Their JSON lines go to BENCH-OUT/<name>.jsonl (default bench-out/) and a summary (seconds, exit status) to
BENCH-OUT/summary.json; the scripts that write a results file write it there too, not into docs/ (copy a file
into docs/results/ when its figures go into the docs).  Exit status 1 when any bench failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "paintings"

# name, script, documented arguments, small-size arguments, needs ../shared/paintings.  "{out}" is BENCH-OUT.
BENCHES: list[tuple[str, str, list[str], list[str], bool]] = [
    ("compare_startup", "compare_startup.py", [], ["--rounds", "1"], False),
    ("compare_runtime", "compare_runtime.py", [], ["--rounds", "1", "--n", "4"], False),
    ("embed_throughput", "embed_throughput.py", [],
     ["--n", "8", "--size", "256", "--workers", "0", "--rounds", "1"], False),
    ("embed_distributed", "embed_distributed.py", [], ["--n", "16", "--size", "256"], False),
    ("pair_scoring", "pair_scoring.py", [],
     ["--vectors", "2000", "--pairs", "200000", "--siamese-pairs", "20000", "--old-sample", "20000"], False),
    ("index_search", "index_search.py", [], ["--sizes", "20000", "--queries", "100", "--single", "20"], False),
    ("train_epoch", "train_epoch.py", [], ["--n", "2000", "--artists", "40", "--max-pairs", "5000"], False),
    ("methods_synthetic", "methods.py", ["--synthetic", "24x8", "--seeds", "0", "1", "2"],
     ["--synthetic", "8x4", "--seeds", "0", "--methods", "cosine", "siamese", "--epochs", "2"], False),
    ("backbones_real", "backbones.py", ["--data", str(SHARED)],
     ["--data", str(SHARED), "--backbones", "efficientnet_lite0", "--views", "center", "--pools", "gap"], True),
    ("methods_real", "methods.py", ["--data", str(SHARED), "--seeds", "0", "1", "2", "3", "4"],
     ["--data", str(SHARED), "--seeds", "0", "--methods", "cosine"], True),
]
WRITES_OUT = {"backbones.py", "methods.py"}  # scripts with a required --out results file


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: checks that every bench runs")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these benches")
    ap.add_argument("--list", action="store_true", help="print the benches and their commands, run nothing")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out", help="where the JSON lines go")
    args = ap.parse_args()
    known = {b[0] for b in BENCHES}
    unknown = sorted(set(args.only or []) - known)
    if unknown:
        ap.error(f"unknown bench {', '.join(unknown)}; known: {', '.join(sorted(known))}")

    summary, failed = [], 0
    if not args.list:
        args.out.mkdir(parents=True, exist_ok=True)
    for name, script, documented, quick, needs_shared in BENCHES:
        if args.only and name not in args.only:
            continue
        cmd = [sys.executable, str(ROOT / "bench" / script), *(quick if args.quick else documented)]
        if script in WRITES_OUT:
            cmd += ["--out", str(args.out / f"{name}.json")]
        shown = " ".join(["python", f"bench/{script}", *cmd[2:]])
        if args.list:
            print(f"{name:18s} {shown}{'   (needs ../shared/paintings)' if needs_shared else ''}")
            continue
        if needs_shared and not (SHARED / "train_info.csv").is_file():
            print(f"== {name}: skipped ({SHARED} is not here)", flush=True)
            summary.append({"bench": name, "skipped": "no ../shared/paintings"})
            continue
        print(f"== {name}: {shown}", flush=True)
        t0 = time.perf_counter()
        with open(args.out / f"{name}.jsonl", "w") as log:
            proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
            log.write(proc.stdout)
        sys.stdout.write(proc.stdout[-2000:])
        seconds = round(time.perf_counter() - t0, 1)
        failed += proc.returncode != 0
        summary.append({"bench": name, "command": shown, "seconds": seconds, "exit": proc.returncode})
        print(f"== {name}: exit {proc.returncode} in {seconds} s", flush=True)
    if not args.list:
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        print(f"{len(summary)} benches, {failed} failed; summary in {args.out / 'summary.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
