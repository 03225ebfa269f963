"""The shipped default model loads, uses an offline backbone, and scores bundled real paintings sensibly."""

import json
from pathlib import Path

import numpy as np

from painterid.core.defaults import default_model_dir
from painterid.embedding.backbones import get_spec
from painterid.scoring.loading import load_model
from painterid.tasks.compare import compare_files

from .conftest import real_paintings

REPO = Path(__file__).resolve().parent.parent
DEFAULT = default_model_dir()
EX = REPO / "examples" / "paintings" / "train"


def test_default_model_is_offline_and_calibrated():
    model = load_model(DEFAULT)
    assert get_spec(model.embedding["backbone"]).source == "package"
    assert model.artists["val"] and model.artists["test"]
    p = model.probability(np.array([model.threshold - 1, model.threshold, model.threshold + 1]))
    assert p[0] < p[1] < p[2]


def test_compare_with_default_model_on_bundled_paintings():
    res = compare_files(EX / "cezanne-1.jpg", [EX / "cezanne-1.jpg", EX / "rembrandt-1.jpg"], model_dir=DEFAULT)
    assert [r["image_b"].endswith(n) for r, n in zip(res, ("cezanne-1.jpg", "rembrandt-1.jpg"))] == [True, True]
    assert res[0]["same_artist"] is True  # an image against itself
    assert res[0]["probability"] > res[1]["probability"]
    model = load_model(DEFAULT)
    for r in json.loads(json.dumps(res)):  # what --json prints: the model's threshold, its calibrated probability
        assert r["threshold"] == model.threshold and r["method"] == model.method
        assert abs(r["probability"] - float(model.probability(np.array([r["score"]]))[0])) < 1e-5
        assert r["same_artist"] == (r["score"] >= model.threshold)


def test_default_model_on_real_paintings_beats_chance():
    """Optional (needs ../shared/paintings): the default model on its own held-out test artists."""
    from painterid.embedding.pipeline import labelled
    from painterid.evaluation.run import evaluate_model

    data = real_paintings()
    model = load_model(DEFAULT)
    lab = labelled(data, model.embedding)
    res = evaluate_model(model, lab, split="unseen", n_boot=0)
    assert res["groups"]["unseen"]["n_pairs"] >= 100
    assert res["groups"]["unseen"]["auc"] > 0.62


def test_compare_second_run_is_served_from_the_cache(monkeypatch, tmp_path):
    """compare caches vectors by file content: the second run embeds nothing and gives the same scores.

    The one entry point every runtime goes through (runtime.make_embedder: ONNX or torch) is counted; the two
    files are made new content (a tail after the JPEG's end) so that the first run must embed them.  A cache that
    never hits, or is keyed by path, builds an embedder on the second run (with the files swapped)."""
    import painterid.embedding.runtime as runtime

    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    for src, dst in ((EX / "cezanne-1.jpg", a), (EX / "rembrandt-1.jpg", b)):
        dst.write_bytes(src.read_bytes() + str(tmp_path).encode())
    built, real = [], runtime.make_embedder

    def counted(*args, **kwargs):
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(runtime, "make_embedder", counted)
    first = compare_files(a, [b], model_dir=DEFAULT)
    assert len(built) == 1
    again = compare_files(b, [a], model_dir=DEFAULT)
    assert len(built) == 1, "an embedder was built although every vector is cached"
    assert again[0]["score"] == first[0]["score"] and again[0]["probability"] == first[0]["probability"]


def test_the_archive_model_is_shipped_by_name_and_never_rewritten_in_place(tmp_path):
    """`--model archive` names the second shipped model (cosine over selfsup,l2,csls); `cohort set archive DATA`
    without --out is refused in one line before any work, leaving the package's files as they were."""
    import subprocess
    import sys

    from painterid.core.defaults import model_path

    archive = default_model_dir("archive")
    assert model_path("archive") == archive and model_path(str(tmp_path)) == tmp_path
    model = load_model(archive)
    assert model.method == "cosine" and model.chain.needs_patches and model.refits_selfsup
    assert model.chain.steps[0].state["proj"].shape == (model.embedding["dim"], 256)
    before = {p.name: p.read_bytes() for p in archive.iterdir()}
    run = subprocess.run([sys.executable, "-m", "painterid.cli", "compare", str(EX / "cezanne-1.jpg"),
                          str(EX / "cezanne-1.jpg"), "--model", "archive", "--json"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0 and json.loads(run.stdout)["method"] == "cosine", run.stderr[-1500:]
    for cmd in (["cohort", "set", "archive", str(EX.parent)], ["calibrate", "default", str(EX.parent)]):
        run = subprocess.run([sys.executable, "-m", "painterid.cli", *cmd], capture_output=True, text=True,
                             cwd=tmp_path, timeout=300)
        assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert "--out" in run.stderr
    assert {p.name: p.read_bytes() for p in archive.iterdir()} == before
