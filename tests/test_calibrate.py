"""`painterid calibrate`: a model's p(same) and threshold refitted on a user's labelled pairs (generated data)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from painterid.scoring.loading import load_model

REPO = Path(__file__).resolve().parent.parent


def run(*args):
    return subprocess.run([sys.executable, "-m", "painterid.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=600)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """8 generated artists x 4 paintings, embedded once into a store with the smallest offline backbone."""
    from painterid.data.synthetic import make_synthetic_dataset
    from painterid.embedding.embedder import Embedder, EmbeddingConfig
    from painterid.embedding.pipeline import embed_data

    root = tmp_path_factory.mktemp("recal")
    data = make_synthetic_dataset(root / "data", n_artists=8, per_artist=4, size=96, seed=3)
    embedder = Embedder(EmbeddingConfig(backbone="efficientnet_lite0", view="center", pool="style"), num_workers=0)
    store, _, failures = embed_data(data, embedder, root / "store")
    assert not failures
    return data, root / "store"


def shifted_model(store: Path, out: Path, train_hashes=()):
    """A cosine model whose calibration says "same" for nearly every pair: p ~ 1, threshold below every score."""
    from painterid.scoring import PairModel
    from painterid.scoring.calibration import Calibrator
    from painterid.store.feature_store import FeatureStore

    model = PairModel("cosine", FeatureStore.open(store).embedding, None, calibrator=Calibrator(10.0, 5.0),
                      threshold=-1.0, info={"kept": "yes"}, train_hashes=list(train_hashes))
    model.save(out)
    (out / "MODEL_CARD.md").write_text("card kept")
    return out


def write_pairs_csv(data: Path, path: Path, rows) -> Path:
    """A pairs CSV of file paths relative to its own folder (`path` must sit in `data`)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image1", "image2", "same"])
        w.writerows(rows)
    return path


def labelled_rows(data: Path, seed: int = 0) -> list[tuple[str, str, int]]:
    from painterid.data.pairs import balanced_pairs

    info = list(csv.DictReader(open(data / "train_info.csv")))
    pairs = balanced_pairs([r["artist"] for r in info], seed=seed)
    return [(f"train/{info[i]['filename']}", f"train/{info[j]['filename']}", int(s)) for i, j, s in pairs]


def test_refit_in_place_on_a_store_matches_training_rules(collection, tmp_path):
    from painterid.data.pairs import balanced_pairs
    from painterid.embedding.pipeline import labelled
    _, store = collection
    model_dir = shifted_model(store, tmp_path / "m")
    before = load_model(model_dir)
    proc = run("calibrate", model_dir, store)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "recalibrated on 48 same / 48 different pairs" in proc.stderr and "-1.0000 ->" in proc.stderr

    after = load_model(model_dir)
    lab = labelled(store)
    pairs = balanced_pairs(lab.artists, seed=0)
    y = pairs[:, 2]
    scores = after.scores(lab.vectors[pairs[:, 0]], lab.vectors[pairs[:, 1]])
    np.testing.assert_allclose(scores, before.scores(lab.vectors[pairs[:, 0]], lab.vectors[pairs[:, 1]]))
    # training's rules on these pairs, checked without the functions that fit them: the threshold reaches the best
    # accuracy of any cut between the scores (brute force), and the Platt fit is the logistic maximum likelihood,
    # where the log-loss gradient vanishes: sum(p - y) = 0 and sum((p - y) * score) = 0 (a slope that is merely
    # positive, or a fit on other pairs, leaves them far from 0)
    cuts = np.r_[np.sort(scores), scores.max() + 1.0]
    best_acc = max(np.mean((scores >= c) == y) for c in cuts)
    assert np.mean((scores >= after.threshold) == y) == pytest.approx(best_acc)
    p = after.calibrator(scores)
    assert after.calibrator.slope > 0
    assert abs(np.sum(p - y)) < 1e-3 * len(y) and abs(np.sum((p - y) * scores)) < 1e-3 * len(y)
    assert abs(np.sum((p - y) * scores)) < 1e-3 * np.sum(np.abs(p - y) * np.abs(scores))
    p_before, p_after = before.probability(scores), after.probability(scores)
    assert p_before.mean() > 0.95 and abs(p_after.mean() - y.mean()) < 0.01  # mean p now the base rate
    assert np.mean((p_after - y) ** 2) < np.mean((p_before - y) ** 2) - 0.2  # Brier much better
    assert np.mean((scores >= after.threshold) == y) > np.mean((scores >= before.threshold) == y)

    cfg = json.loads((model_dir / "config.json").read_text())
    rec = cfg["info"]["recalibrations"][-1]
    assert cfg["info"]["kept"] == "yes" and rec["source"] == str(store) and rec["pairs"] == {"same": 48,
                                                                                             "different": 48}
    assert rec["old"]["threshold"] == -1.0 and rec["new"]["threshold"] == pytest.approx(after.threshold)
    assert rec["before"]["brier"] == pytest.approx(np.mean((p_before - y) ** 2))
    assert rec["after"]["brier"] == pytest.approx(np.mean((p_after - y) ** 2))
    assert (model_dir / "MODEL_CARD.md").read_text() == "card kept"


def test_calibrating_on_data_leaves_out_the_paintings_the_model_was_trained_on(collection, tmp_path):
    """A model trained on 3 of the 8 artists' paintings (12 of 32, by content hash): calibrate DATA draws its
    pairs from the other 20 only: 5 artists x C(4, 2) = 30 same-artist pairs (with the training paintings it
    would be 48), and says how many it left out."""
    from painterid.embedding.pipeline import labelled
    from painterid.tasks.calibrate import calibrate

    data, store = collection
    lab = labelled(store)
    trained_artists = sorted(set(lab.artists))[:3]
    hashes = [h for h, a in zip(lab.hashes, lab.artists) if a in trained_artists]
    assert len(hashes) == 12
    model_dir = shifted_model(store, tmp_path / "m", train_hashes=hashes)
    for source in (store, data):
        _, rec, _ = calibrate(model_dir, source, out=tmp_path / "new")
        assert rec["left_out"]["training_paintings"] == 12
        assert rec["pairs"] == {"same": 30, "different": 30}


def test_pairs_csv_with_out_leaves_the_model_untouched(collection, tmp_path):

    data, store = collection
    model_dir = shifted_model(store, tmp_path / "m")
    original = {p.name: p.read_bytes() for p in model_dir.iterdir()}
    rows = labelled_rows(data, seed=1)[::2]  # every other pair: still both classes, >= 10 each
    pairs = write_pairs_csv(data, data / "mine.csv", rows)
    proc = run("calibrate", model_dir, pairs, "--out", tmp_path / "new")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {p.name: p.read_bytes() for p in model_dir.iterdir()} == original
    new = load_model(tmp_path / "new")
    rec = new.info["recalibrations"][-1]
    n_same = sum(r[2] for r in rows)
    assert rec["kind"] == "csv" and rec["pairs"] == {"same": n_same, "different": len(rows) - n_same}
    assert new.threshold != -1.0 and abs(rec["after"]["mean_p"] - n_same / len(rows)) < 0.01
    assert rec["after"]["accuracy"] > rec["before"]["accuracy"]
    assert (tmp_path / "new" / "MODEL_CARD.md").read_text() == "card kept"


def test_fused_model_recalibrates_its_fused_score(collection, tmp_path):
    from painterid.scoring.calibration import Calibrator
    from painterid.scoring.fusion import FusedModel
    from painterid.tasks.calibrate import calibrate

    data, store = collection
    a, b = (load_model(shifted_model(store, tmp_path / n)) for n in ("a", "b"))
    FusedModel([a, b], ["a", "b"], [0.5, 0.5], [(0.0, 1.0), (0.0, 1.0)], Calibrator(10.0, 5.0), -1.0).save(
        tmp_path / "fused", member_files={"a": {"MODEL_CARD.md": b"member card"}})
    (tmp_path / "fused" / "MODEL_CARD.md").write_text("fused card")
    model, rec, _ = calibrate(tmp_path / "fused", data)
    again = load_model(tmp_path / "fused")
    assert isinstance(again, FusedModel) and again.threshold == pytest.approx(rec["new"]["threshold"]) != -1.0
    assert abs(rec["after"]["mean_p"] - 0.5) < 0.01 and rec["before"]["mean_p"] > 0.95
    assert again.members[0].calibrator.slope == 10.0  # the members are kept as they were
    assert (tmp_path / "fused" / "MODEL_CARD.md").read_text() == "fused card"
    assert (tmp_path / "fused" / "a" / "MODEL_CARD.md").read_bytes() == b"member card"


def test_bad_inputs_one_line_exit_2_model_untouched(collection, tmp_path):
    data, store = collection
    model_dir = shifted_model(store, tmp_path / "m")
    original = (model_dir / "config.json").read_bytes()
    rows = labelled_rows(data)
    few = write_pairs_csv(data, data / "few.csv", rows[:5] + rows[-5:])
    one_class = write_pairs_csv(data, data / "one.csv", [r for r in rows if r[2] == 1])
    unlabelled = data / "unlabelled.csv"
    unlabelled.write_text("image1,image2\n" + "".join(f"{r[0]},{r[1]}\n" for r in rows))
    missing = write_pairs_csv(data, data / "missing.csv", rows + [("train/nowhere.jpg", rows[0][0], 0)])
    cases = [(few, "at least 10"), (one_class, "0 different-artist"), (unlabelled, "'same' column"),
             (missing, "nowhere.jpg"), (tmp_path / "absent", "no such pairs CSV")]
    for source, words in cases:
        proc = run("calibrate", model_dir, source)
        # the one-time ONNX export notice may come first, depending on which test ran first in this cache
        lines = [x for x in proc.stderr.strip().splitlines() if not x.startswith("painterid: exporting")]
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("painterid: error:"), proc.stderr
        assert words in lines[0], lines[0]
    assert (model_dir / "config.json").read_bytes() == original
