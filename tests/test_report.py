"""`evaluate --report DIR` (self-contained HTML), MAP@R / TAR@0.1% in the JSON, and `painterid table1`."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from painterid.cli import app
from painterid.scoring.loading import load_model

runner = CliRunner()


@pytest.fixture(scope="module")
def models(tmp_path_factory, small_store):
    """A cosine and a siamese model (5 epochs) trained on the small store."""
    from painterid.embedding.pipeline import labelled
    from painterid.training import TrainOptions, train_model

    root = tmp_path_factory.mktemp("models")
    lab = labelled(small_store)
    out = {}
    # the siamese head without CSLS: choosing the normaliser scores a cohort matrix, slow on a shared CPU
    for method, normaliser in (("cosine", "auto"), ("siamese", "none")):
        train_model(lab, root / method, TrainOptions(method=method, epochs=5, normaliser=normaliser), val=0.25,
                    test=0.3)
        out[method] = root / method
    return out


def test_report_is_self_contained_and_shows_the_hardest_mistakes(models, small_store, tmp_path):
    from painterid.embedding.pipeline import labelled
    from painterid.evaluation.run import evaluate_model
    from tests.independent import map_at_r as independent_map_at_r

    report = tmp_path / "report"
    res = runner.invoke(app, ["evaluate", "--model", str(models["siamese"]), "--data", str(small_store),
                              "--bootstrap", "0", "--json", "--report", str(report)])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert set(result["groups"]) == {"seen", "unseen", "mixed"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # written atomically: no temporary left
    page = (report / "index.html").read_text()
    assert json.loads((report / "metrics.json").read_text())["groups"] == result["groups"]

    for name in ("seen", "unseen", "mixed"):
        assert f"<td>{name}</td>" in page
    assert page.count('<img src="data:image/png;base64,') >= 3
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "http://" not in page and "https://" not in page and "<script" not in page

    # the hardest different-artist pair, found independently, is shown with both images
    pm = load_model(models["siamese"])
    lab = labelled(small_store)
    _, scored = evaluate_model(pm, lab, n_boot=0, return_scores=True)
    pairs = np.concatenate([p for p, _ in scored.values()])
    scores = np.concatenate([s for _, s in scored.values()])
    neg = np.flatnonzero(pairs[:, 2] == 0)
    i, j = pairs[neg[np.argmax(scores[neg])], :2]
    section = page[page.index("Hardest mistakes"):]
    first = section[:section.index('<div class="pair">', section.index('<div class="pair">') + 1)]
    assert lab.names[i] in first and lab.names[j] in first
    assert first.count('<img src="data:image/png;base64,') == 2

    # MAP@R of the unseen test paintings (raw embeddings: the siamese score is no dot product); TAR@0.1% FAR
    unseen = result["groups"]["unseen"]
    idx = np.unique(scored["unseen"][0][:, :2])
    expected = independent_map_at_r(lab.vectors[idx], [lab.artists[k] for k in idx])
    assert unseen["map@r"] == pytest.approx(expected)
    assert 0.0 < unseen["map@r"] <= 1.0 and "tar@far=0.1%" in unseen


def test_map_at_r_uses_the_models_space(models, small_store):
    from painterid.embedding.pipeline import labelled
    from painterid.evaluation.run import retrieval_map_at_r

    pm = load_model(models["cosine"])
    lab = labelled(small_store)
    idx = np.arange(len(lab.artists))
    # a model whose space makes every painting of an artist identical reaches MAP@R = 1
    pm.space = lambda x: np.eye(len(set(lab.artists)), dtype=np.float32)[
        [sorted(set(lab.artists)).index(lab.artists[k]) for k in idx]]
    assert retrieval_map_at_r(pm, lab.vectors, lab.artists, idx) == pytest.approx(1.0)


def test_table1_prints_ours_beside_the_reports(models, small_store):
    from painterid.embedding.pipeline import labelled
    from painterid.evaluation.run import evaluate_model
    from painterid.evaluation.table1 import table1

    res = table1(small_store, [models["cosine"], models["siamese"]])
    assert [r["method"] for r in res["rows"]] == ["cosine", "siamese"]
    lab = labelled(small_store)
    for row, path in zip(res["rows"], (models["cosine"], models["siamese"])):
        direct = evaluate_model(load_model(path), lab, n_boot=0)["groups"]
        for g in ("seen", "unseen", "mixed"):
            assert row["accuracy"][g] == pytest.approx(direct[g]["accuracy"])
            assert row["auc"][g] == pytest.approx(direct[g]["auc"])
        assert row["backbone"] == "efficientnet_lite0"
    ref = {r["name"]: r for r in res["reference"]}
    assert ref["Xception (seed report)"]["accuracy"] == {"seen": 0.888, "unseen": 0.647, "mixed": 0.672}
    assert ref["Kaggle winner (ROC AUC)"]["auc"] == {"seen": 0.942, "unseen": 0.825, "mixed": 0.929}

    cli = runner.invoke(app, ["table1", "--data", str(small_store), "--models", str(models["cosine"]),
                              str(models["siamese"])])
    assert cli.exit_code == 0, cli.output
    text = cli.stdout
    assert "reported on Painter by Numbers, not measured here" in text
    for needle in ("cosine · efficientnet_lite0", "siamese · efficientnet_lite0", "Baseline CNN", "0.888", "0.942",
                   f"{res['rows'][1]['accuracy']['unseen']:.3f}"):
        assert needle in text, needle
    assert text.index("siamese · efficientnet_lite0") < text.index("Baseline CNN")  # ours first, then theirs


@pytest.mark.parametrize("protocol", ["balanced", "natural"])
def test_evaluate_never_scores_training_paintings_or_validation_artists(models, small_store, protocol):
    """Leakage would only raise the figures, so it is checked directly: no painting of any test pair is one the
    model was trained on (its training_set.csv, read here from disk), none is by a validation artist, and the
    splits are what they say (seen: both artists trained on; unseen: neither)."""
    import csv as csv_mod

    from painterid.embedding.pipeline import labelled
    from painterid.evaluation.run import evaluate_model

    model_dir = models["cosine"]
    pm = load_model(model_dir)
    cfg = json.loads((model_dir / "config.json").read_text())
    with open(model_dir / "training_set.csv", newline="") as fh:
        trained_on = {row[0] for row in csv_mod.reader(fh)} - {"sha256"}
    train_artists, val_artists = set(cfg["artists"]["train"]), set(cfg["artists"]["val"])
    assert trained_on and val_artists
    lab = labelled(small_store)
    _, scored = evaluate_model(pm, lab, protocol=protocol, n_boot=0, return_scores=True)
    assert sum(len(p) for p, _ in scored.values()) > 0
    for split, (pairs, _) in scored.items():
        for i, j, _same in pairs:
            assert lab.hashes[i] not in trained_on and lab.hashes[j] not in trained_on, split
            a, b = lab.artists[i], lab.artists[j]
            assert a not in val_artists and b not in val_artists, split
            if split != "mixed":  # mixed: every pair of the seen and unseen test paintings together
                seen = (a in train_artists) + (b in train_artists)
                assert seen == {"seen": 2, "unseen": 0}[split], (split, a, b)
