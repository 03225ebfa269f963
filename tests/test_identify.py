import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

from painterid.embedding.embedder import EmbeddingConfig
from painterid.tasks.identify import build_index, identify

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


def test_open_set_probability_rises_with_the_score_and_unknown_artists_are_rejected():
    import numpy as np
    import pytest

    from painterid.core.errors import DataError
    from painterid.scoring.calibration import Calibrator
    from painterid.tasks.identify import open_set_calibration

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(60, 32))
    counts = np.r_[np.full(30, 4), np.ones(30, int)]  # 30 artists with 4 paintings, 30 with one
    codes = np.repeat(np.arange(60), counts)
    x = centres[codes] + rng.normal(size=(len(codes), 32)) * 0.9
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    out = open_set_calibration(x.astype(np.float32), [f"a{c}" for c in codes])
    cal = Calibrator(**out["calibration"])
    assert cal.slope > 0
    p = cal(np.linspace(-0.2, 1.0, 13))
    assert (np.diff(p) > 0).all()  # a higher score is a more likely painter
    assert out["known_queries"] == 120 and out["unknown_queries"] == 30
    assert 0.5 < out["top1"] <= out["top5"] <= 1.0
    assert out["rejection_auc"] > 0.7  # paintings of absent artists score lower than those of indexed ones
    # a calibration that would run backwards is refused
    with pytest.raises(DataError, match="not increasing"):
        from painterid.tasks import identify as ident
        fake = {"top": np.c_[np.linspace(1, 0, 40), np.zeros((40, 4))], "hit": np.r_[np.full(20, 3), np.zeros(20, int)],
                "known": np.ones(40, bool)}
        orig = ident.leave_one_out_search
        ident.leave_one_out_search = lambda *a, **k: fake
        try:
            ident.open_set_calibration(x, [f"a{c}" for c in codes])
        finally:
            ident.leave_one_out_search = orig


def test_index_build_kind_and_identify_k_and_threshold_through_the_cli(tmp_path, small_store, synthetic_data):
    """The CLI passes `index build --kind` and `identify -k / --threshold` through: the index is of the kind asked
    (recorded in its config.json), identify lists exactly k candidates, reports the threshold it applied (the
    index's own without --threshold), and attributes a painting when its best score clears the threshold, not
    when it falls short (thresholds just either side of the best score, not an impossible one)."""
    from typer.testing import CliRunner

    from painterid.cli import app

    runner = CliRunner()
    for kind in ("hnsw", "flat"):
        res = runner.invoke(app, ["index", "build", "--data", str(small_store), "--out", str(tmp_path / kind),
                                  "--kind", kind], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        assert json.loads((tmp_path / kind / "config.json").read_text())["kind"] == kind
    idx = tmp_path / "flat"
    own = json.loads((idx / "config.json").read_text())["open_set"]["threshold"]
    image = sorted((synthetic_data / "train").iterdir())[5]

    def ask(*extra):
        res = runner.invoke(app, ["identify", str(image), "--index", str(idx), "--json", "--runtime", "torch",
                                  *extra], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout.splitlines()[0])

    for k in (1, 4):
        assert len(ask("-k", str(k))["candidates"]) == k
    default = ask("-k", "2")
    assert default["threshold"] == own
    best = default["candidates"][0]["score"]
    for thr, rejected in ((best - 1e-3, False), (best + 1e-3, True)):
        r = ask("-k", "2", "--threshold", str(thr))
        assert r["threshold"] == thr and r["none_of_these"] is rejected
        assert r["candidates"][0]["score"] == best  # the threshold changes the verdict, never the scores
