import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

from painterid.embedding import EmbeddingConfig
from painterid.identify import build_index, identify

REPO = Path(__file__).resolve().parent.parent


def test_identify_finds_the_artist_of_a_held_out_painting(tmp_path, synthetic_data):
    data = tmp_path / "data"
    shutil.copytree(synthetic_data, data)
    rows = list(csv.DictReader(open(data / "train_info.csv")))
    held = rows[:4]  # four paintings the index never sees
    with open(data / "train_info.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows[4:])
    cfg = EmbeddingConfig(backbone="efficientnet_lite0", view="center", pool="style")
    index, failures = build_index(data, tmp_path / "idx", cfg)
    assert not failures and index.n == len(rows) - 4
    res = identify([data / "train" / r["filename"] for r in held], tmp_path / "idx", k=3)
    top1 = [r["candidates"][0]["artist"] for r in res]
    hits = sum(t == h["artist"] for t, h in zip(top1, held))
    assert hits >= 3, (top1, [h["artist"] for h in held])
    assert all(0.0 <= c["probability"] <= 1.0 for r in res for c in r["candidates"])
    # open set: with an impossible threshold nothing is attributed
    strict = identify([data / "train" / held[0]["filename"]], tmp_path / "idx", k=3, threshold=1.01)
    assert strict[0]["none_of_these"] is True
    proc = subprocess.run([sys.executable, "-m", "painterid.cli", "identify", str(data / "train" / held[0]["filename"]),
                           "--index", str(tmp_path / "idx"), "--json"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["candidates"][0]["artist"] == top1[0]
