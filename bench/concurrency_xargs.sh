#!/bin/bash
# The user experiment of issue 14: N parallel `painterid compare ref.jpg X.jpg` (xargs -P) over M images with one
# cache, then count the cache's rows. Usage: bench/concurrency_xargs.sh P [PYTHONPATH]  (prints the counts)
# Before the store lock (painterid <= 00ab7e0) every process wrote shard-00000 and the last rename won.
set -euo pipefail
P=${1:-4}
SRC=${2:-$(cd "$(dirname "$0")/.." && pwd)}
PY=${PYTHON:-python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
PYTHONPATH=$SRC $PY -c "from painterid.data.synthetic import make_synthetic_dataset as m; m('data', n_artists=3, per_artist=3, size=128, seed=3)"
mkdir imgs && cp data/train/00000.jpg ref.jpg && for i in 1 2 3 4 5 6 7 8; do cp data/train/0000$i.jpg imgs/; done
export PYTHONPATH=$SRC PAINTERID_CACHE=$WORK/cache
start=$(date +%s)
ls imgs/*.jpg | xargs -P "$P" -I{} $PY -m painterid compare ref.jpg {} --format csv > answers.csv 2> errors.txt || true
echo "P=$P: $(grep -vc '^image_a' answers.csv) answers in $(( $(date +%s) - start )) s"
$PY - <<'PY'
import csv
from pathlib import Path
for s in sorted((Path("cache") / "embeddings").iterdir()):
    rows = [r["sha256"] for c in sorted(s.glob("shard-*.csv")) if c.with_suffix(".safetensors").exists()
            for r in csv.DictReader(open(c))]
    print(f"cache rows {len(rows)}, distinct images {len(set(rows))} (of 9), chunks "
          f"{len(list(s.glob('shard-*.safetensors')))}")
PY
