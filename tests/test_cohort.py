"""A model's reference cohort: `train --cohort`, `painterid cohort set` (through the real command)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from painterid.scoring.loading import load_model

REPO = Path(__file__).resolve().parent.parent


def run(*args):
    return subprocess.run([sys.executable, "-m", "painterid.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=600)


def test_train_with_a_cohort_then_replace_it(small_store, tmp_path):
    from painterid.embedding.pipeline import labelled

    out = tmp_path / "m"
    proc = run("train", "--data", small_store, "--out", out, "--method", "cosine", "--normaliser",
               "power,center,l2,csls:3", "--cohort", small_store, "--val-artists", "0.25", "--test-artists", "0.3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = json.loads((out / "config.json").read_text())
    assert [s["name"] for s in cfg["chain"]] == ["power", "center", "l2", "csls"]
    lab = labelled(small_store)
    held = set(cfg["artists"]["val"]) | set(cfg["artists"]["test"])
    model = load_model(out)
    # the cohort is every painting of the store but those of validation and test artists and the held-out
    # paintings of the seen-artist test: here exactly the training paintings
    trained = set(model.train_hashes)
    fit_for_cohort = [i for i, h in enumerate(lab.hashes) if h in trained]
    assert len([a for a in lab.artists if a not in held]) > len(fit_for_cohort)  # some seen-test paintings left out
    assert cfg["cohort"]["n"] == len(fit_for_cohort) == len(model.cohort)
    np.testing.assert_allclose(model.cohort, lab.vectors[fit_for_cohort])
    power = np.sign(model.cohort) * np.sqrt(np.abs(model.cohort))
    np.testing.assert_allclose(model.chain.steps[1].state["mean"], power.mean(0), atol=1e-5)
    (out / "MODEL_CARD.md").write_text("card kept")

    # replace it by the paintings of the first 8 artists only (as a store of its own)
    from painterid.store.feature_store import FeatureStore

    few = [i for i, a in enumerate(lab.artists) if a in sorted(set(lab.artists))[:8]]
    src = FeatureStore.open(small_store)
    sub = FeatureStore.create_or_open(tmp_path / "sub", src.embedding)
    sub.append([src.rows[i] for i in few], src.vectors[few])
    proc = run("cohort", "set", out, tmp_path / "sub")
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = load_model(out)
    kept = [i for i in few if lab.artists[i] not in held]
    assert len(again.cohort) == len(kept) and "cohort of" in proc.stderr
    power = np.sign(again.cohort) * np.sqrt(np.abs(again.cohort))
    np.testing.assert_allclose(again.chain.steps[1].state["mean"], power.mean(0), atol=1e-5)
    assert (out / "MODEL_CARD.md").read_text() == "card kept"
    assert again.threshold == model.threshold

    bad = run("cohort", "set", out, tmp_path / "nowhere")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert load_model(out).cohort.shape == again.cohort.shape  # untouched by the failed call
