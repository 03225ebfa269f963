"""`painterid submit`: Kaggle submission_info.csv → submission.csv, streamed in chunks; chunked = dense."""

from __future__ import annotations

import csv
import random
import shutil
import sys

import numpy as np
import pytest

from painterid.core.errors import DataError
from painterid.scoring.loading import load_model
from painterid.tasks.submit import submit


@pytest.fixture(scope="module")
def models(tmp_path_factory, small_store):
    """A cosine model with CSLS (the precomputed-neighbourhood path) and a siamese one (no dot-product space)."""
    from painterid.embedding.pipeline import labelled
    from painterid.training import TrainOptions, train_model

    root = tmp_path_factory.mktemp("submit-models")
    lab = labelled(small_store)
    train_model(lab, root / "cosine", TrainOptions(method="cosine", normaliser="csls"), val=0.25, test=0.3)
    train_model(lab, root / "siamese", TrainOptions(method="siamese", epochs=2, normaliser="none"), val=0.25,
                test=0.3)
    return {"cosine": root / "cosine", "siamese": root / "siamese"}


def _write_pairs(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "image1", "image2"])
        w.writerows(rows)


def _read(path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], [r[0] for r in rows[1:]], np.array([float(r[1]) for r in rows[1:]])


def _dense(model_dir, small_store, rows):
    """The truth: every labelled pair scored at once by the model, missing images at 0.5."""
    from painterid.embedding.pipeline import labelled

    pm = load_model(model_dir)
    lab = labelled(small_store)
    where = {n: i for i, n in enumerate(lab.names)}
    ok = np.array([a in where and b in where for _, a, b in rows])
    pairs = np.array([(where[a], where[b]) for (_, a, b), k in zip(rows, ok) if k])
    out = np.full(len(rows), 0.5)
    out[ok] = pm.probability(pm.score_pairs(lab.vectors, pairs))
    return out


def test_chunked_submission_equals_the_dense_computation(models, synthetic_data, small_store, tmp_path,
                                                         monkeypatch):
    from painterid.store.feature_store import FeatureStore

    names = sorted(p.name for p in (synthetic_data / "train").iterdir())
    rng = random.Random(0)
    rows = [(str(7 + 3 * k), *rng.sample(names, 2)) for k in range(300)]
    rows[17] = (rows[17][0], "missing.jpg", names[0])
    rows[40] = (rows[40][0], names[3], names[3])  # a painting with itself
    _write_pairs(tmp_path / "pairs.csv", rows)
    n_store = len(FeatureStore.open(small_store))

    # the store already holds every image: nothing is embedded, no backbone is loaded
    import painterid.embedding.embedder
    monkeypatch.setattr(painterid.embedding.embedder, "Embedder", None)

    for method in ("cosine", "siamese"):
        outs = {}
        for chunk in (7, 10**6):
            out = tmp_path / f"{method}-{chunk}.csv"
            with pytest.warns(UserWarning, match=r"1 pair\(s\) have a missing"):
                summary = submit(synthetic_data, models[method], out, pairs=tmp_path / "pairs.csv", chunk=chunk,
                                 store_dir=small_store)
            assert summary.n_pairs == 300 and summary.n_missing_pairs == 1
            assert summary.missing_images == ["missing.jpg"]
            outs[chunk] = out
        header, index, p7 = _read(outs[7])
        _, index_big, p_big = _read(outs[10**6])
        assert header == ["index", "sameArtist"]
        assert index == index_big == [r[0] for r in rows]  # one row per input row, in order
        assert p7[17] == 0.5 and p7[40] > 0.5
        # float32 rounding differs with the order and batch of the matrix products (times the calibration
        # slope); a pair scored as another pair would be off by far more
        truth = _dense(models[method], small_store, rows)
        np.testing.assert_allclose(p7, truth, rtol=1e-4, atol=1e-5)
        if method == "cosine":  # dot products in a space computed once: bit for bit the same whatever the chunk
            assert outs[7].read_bytes() == outs[10**6].read_bytes()
        else:  # an MLP head: BLAS rounds differently per batch size, in the last float32 bits
            np.testing.assert_allclose(p7, p_big, rtol=0, atol=2e-6)
        assert p7.std() > 0.05  # real scores, not a constant
    assert len(FeatureStore.open(small_store)) == n_store


def test_kaggle_layout_embeds_test_images_once(models, synthetic_data, small_store, tmp_path, monkeypatch):
    from painterid.cli import main
    from painterid.embedding.pipeline import labelled

    lab = labelled(small_store)
    kaggle = tmp_path / "kaggle"
    (kaggle / "test").mkdir(parents=True)
    (kaggle / "train").mkdir()
    for k in range(3):  # test images have new names and no artist
        shutil.copy(synthetic_data / "train" / lab.names[k], kaggle / "test" / f"t{k}.jpg")
    shutil.copy(synthetic_data / "train" / lab.names[3], kaggle / "train" / lab.names[3])
    rows = [("0", "t0.jpg", "t1.jpg"), ("1", "t2.jpg", lab.names[3]), ("2", "gone.jpg", "t0.jpg"),
            ("3", "t1.jpg", "t2.jpg")]
    _write_pairs(kaggle / "submission_info.csv", rows)
    out = tmp_path / "submission.csv"
    monkeypatch.setattr(sys, "argv", ["painterid", "submit", "--data", str(kaggle), "--model",
                                      str(models["cosine"]), "--out", str(out), "--chunk", "2"])
    with pytest.raises(SystemExit) as exit_, pytest.warns(UserWarning, match="gone.jpg"):
        main()
    assert exit_.value.code == 0
    header, index, p = _read(out)
    assert header == ["index", "sameArtist"] and index == ["0", "1", "2", "3"] and p[2] == 0.5
    originals = [(i, lab.names[a], lab.names[b]) for i, a, b in (("0", 0, 1), ("1", 2, 3), ("3", 1, 2))]
    np.testing.assert_allclose(p[[0, 1, 3]], _dense(models["cosine"], small_store, originals), atol=1e-4)

    # a second run finds every image in the cached store: no backbone is loaded
    import painterid.embedding.embedder
    monkeypatch.setattr(painterid.embedding.embedder, "Embedder", None)
    with pytest.warns(UserWarning, match="gone.jpg"):
        again = submit(kaggle, models["cosine"], tmp_path / "again.csv", chunk=3)
    assert again.n_images == 4 and (tmp_path / "again.csv").read_bytes() == out.read_bytes()


def test_bad_pairs_files_are_one_clear_error(models, synthetic_data, tmp_path, monkeypatch, capsys):
    from painterid.cli import main

    (tmp_path / "bad.csv").write_text("id,left,right\n1,a.jpg,b.jpg\n")
    with pytest.raises(DataError, match="image1, image2"):
        submit(synthetic_data, models["cosine"], tmp_path / "o.csv", pairs=tmp_path / "bad.csv")
    monkeypatch.setattr(sys, "argv", ["painterid", "submit", "--data", str(synthetic_data), "--model",
                                      str(models["cosine"]), "--out", str(tmp_path / "o.csv")])
    with pytest.raises(SystemExit) as exit_:
        main()  # synthetic_data has no submission_info.csv
    assert exit_.value.code == 2
    assert "submission_info.csv" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()
