"""Every bench/ script still runs, at a tiny size (seconds each): a benchmark that rots fails here.

The figures are not checked (speed belongs in docs/PERFORMANCE.md, measured at full size); each script must exit 0
and print its JSON result line.  A new script in bench/ without tiny arguments here fails the first test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DEFAULT_MODEL = ROOT / "painterid" / "default_model"
REAL = ROOT.parent / "shared" / "paintings"
NEEDS_REAL = {"identify.py", "verify_speed.py"}  # ../shared/paintings: its sources; its paintings


def _json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _tiny_args(data: Path, out: Path) -> dict[str, list[str]]:
    img = sorted(data.rglob("*.jpg"))[:2] or sorted(data.rglob("*.png"))[:2]
    return {
        "backbones.py": ["--data", str(data), "--backbones", "efficientnet_lite0", "--view", "center", "--seeds", "1",
                         "--epochs", "1", "--out", str(out / "backbones.json")],
        "compare_models.py": [str(DEFAULT_MODEL), str(DEFAULT_MODEL), "--rounds", "1"],
        "compare_runtime.py": ["--rounds", "1", "--n", "2", "--size", "64"],
        "compare_startup.py": [*map(str, img), "--rounds", "1"],
        "embed_distributed.py": ["--n", "4", "--size", "64", "--nproc", "1", "--backbone", "efficientnet_lite0"],
        "embed_throughput.py": ["--n", "4", "--size", "64", "--workers", "0", "--rounds", "1",
                                "--backbone", "efficientnet_lite0", "--view", "center", "--data", str(out / "thr")],
        "identify.py": ["--data", str(REAL), "--out", str(out / "identify.json")],  # leave one source out: real only
        "index_search.py": ["--sizes", "2000", "--dim", "16", "--per-artist", "20", "--queries", "20",
                            "--single", "10"],
        "methods.py": ["--data", str(data), "--backbone", "efficientnet_lite0", "--methods", "cosine", "siamese",
                       "--seeds", "0", "--epochs", "1", "--out", str(out / "methods.json")],
        "pair_scoring.py": ["--vectors", "300", "--pairs", "20000", "--siamese-pairs", "2000",
                            "--old-sample", "2000"],
        "protocols.py": ["--data", str(data), "--backbone", "efficientnet_lite0", "--view", "center", "--pool", "gap",
                         "--methods", "cosine", "--normalisers", "none", "--protocols", "random", "--seeds", "0",
                         "--epochs", "1", "--calibration", "validation", "crossfit",
                         "--fuse", "mobilenetv2:center:gap",  # painterid.scoring.fusion
                         "--archive",  # each model again with its cohort replaced (PairModel.set_cohort)
                         "--out", str(out / "protocols.json")],
        "recalibrate.py": ["--data", str(data), "--pools", "other", "--seeds", "0",  # the default model
                           "--out", str(out / "recalibrate.json")],
        "run_all.py": ["--quick", "--only", "index_search", "--out", str(out)],
        # exits non-zero if the grid patches' mean does not reproduce the stored vectors; no sources: random only
        "selfsup.py": ["--data", str(data), "--backbone", "efficientnet_lite0", "--n-patches", "2", "--extra", "2",
                       "--input-size", "64", "--seeds", "0", "--steps", "10", "--eval-every", "5",
                       "--normalisers", "none", "csls", "--heads", "linear", "--cache", str(out / "selfsup-cache"),
                       "--out", str(out / "selfsup.json")],
        "store_compaction.py": ["30"],
        "archive_cost.py": ["--data", str(data), "--n", "14", "--repeat", "1", "--out", str(out / "archive.json")],
        "sets.py": ["--data", str(data), "--protocols", "random", "--seeds", "0", "--ks", "1", "2",
                    "--aggregates", "mean", "centroid", "--out", str(out / "sets.json")],
        "verify_speed.py": ["--data", str(REAL), "--rounds", "1", "--out", str(out / "verify-speed.json")],
        "train_epoch.py": ["--n", "300", "--dim", "16", "--artists", "10", "--max-pairs", "2000", "--world", "1"],
    }


SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if p.name != "common.py")


def test_every_bench_script_has_tiny_arguments(tmp_path):
    assert sorted(_tiny_args(tmp_path, tmp_path)) == SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_runs_at_a_tiny_size(script, synthetic_data, tmp_path):
    if script in NEEDS_REAL and not (REAL / "sources.csv").is_file():
        pytest.skip("needs ../shared/paintings")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, str(BENCH / script), *_tiny_args(synthetic_data, tmp_path)[script]],
                       capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    written = sorted(tmp_path.glob("*.json")) + sorted(tmp_path.glob("*.jsonl"))
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    # a one-line JSON result, a pretty-printed one (the whole output), or a JSON file written
    candidates = lines[-1:] + [r.stdout[r.stdout.find("{"):]] + [w.read_text().splitlines()[0] for w in written[:1]]
    assert any(_json_object(t) for t in candidates), r.stdout[-500:]
