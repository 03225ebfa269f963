"""Fused models (`painterid train --backbone a,b`): the rule, the artefact, train / compare / evaluate, refusals.

Two offline backbones (EfficientNet-Lite0 and MobileNetV2, centre view) over a small set of generated artists."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from painterid import cli
from painterid.scoring.fusion import FusedModel, choose_weights, fused_scores, weight_grid
from painterid.scoring.loading import load_model

MEMBERS = ("efficientnet_lite0", "mobilenetv2")


def _main(argv) -> tuple[int, str, str]:
    """painterid's real entry point in-process: (exit status, stdout, stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    old = sys.argv
    sys.argv = ["painterid", *map(str, argv)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exc:
            cli.main()
    finally:
        sys.argv = old
    return exc.value.code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def fused(tmp_path_factory):
    """(data folder, fused model directory) trained through the CLI, its cache in a temporary folder."""
    from painterid.data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("fusion")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PAINTERID_CACHE", str(root / "cache"))
        mp.setenv("PAINTERID_RUNTIME", "torch")  # no ONNX export in a unit test
        mp.setenv("HF_HUB_OFFLINE", "1")
        data = make_synthetic_dataset(root / "data", n_artists=10, per_artist=5, size=96, seed=3)
        out = root / "fused"
        code, _, err = _main(["train", "--data", data, "--out", out, "--backbone", ",".join(MEMBERS),
                              "--view", "center", "--method", "cosine", "--normaliser", "csls:3",
                              "--val-artists", "0.3", "--test-artists", "0.3", "--seed", "1"])
        assert code == 0, err
        assert f"saved {out}: fused {' + '.join(MEMBERS)}" in err
        yield data, out, root


@pytest.fixture
def env(fused, monkeypatch):
    monkeypatch.setenv("PAINTERID_CACHE", str(fused[2] / "cache"))
    monkeypatch.setenv("PAINTERID_RUNTIME", "torch")
    return fused


def test_weight_grid_and_choice_prefer_the_informative_member():
    assert np.allclose(weight_grid(2, 11)[:, 0], np.linspace(0, 1, 11))
    g3 = weight_grid(3, 11)
    assert len(g3) == 66 and np.allclose(g3.sum(1), 1) and (g3 >= 0).all()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    informative = labels * 2.0 + rng.normal(0, 1, 400)  # member 1 knows, member 0 is noise on another scale
    noise = rng.normal(5, 10, 400)
    w, stats, auc = choose_weights([noise, informative], labels)
    assert w[1] >= 0.8 and np.isclose(w.sum(), 1)
    assert stats[0][0] == pytest.approx(noise.mean()) and stats[1][1] == pytest.approx(informative.std())
    # the fused score by hand: the weighted sum of each member's standardised score; its AUC by sklearn
    from sklearn.metrics import roc_auc_score

    z0, z1 = (noise - noise.mean()) / noise.std(), (informative - informative.mean()) / informative.std()
    by_hand = w[0] * z0 + w[1] * z1
    np.testing.assert_allclose(fused_scores([noise, informative], w, stats), by_hand, atol=1e-9)
    assert auc == pytest.approx(roc_auc_score(labels, by_hand))
    # the chosen weights are the grid's best on these pairs (brute force), at least the informative member alone
    grid_best = max(roc_auc_score(labels, g[0] * z0 + g[1] * z1) for g in weight_grid(2, 11))
    assert auc == pytest.approx(grid_best) and auc >= roc_auc_score(labels, informative) - 1e-9


def test_fused_directory_layout(fused):
    from painterid.scoring import PairModel

    _, out, _ = fused
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "painterid.fused-model" and cfg["method"] == "fused"
    names = [m["name"] for m in cfg["members"]]
    assert names == list(MEMBERS)
    assert sum(m["weight"] for m in cfg["members"]) == pytest.approx(1.0)
    for m in cfg["members"]:
        assert m["std"] > 0 and 0 <= m["validation_auc"] <= 1
        assert m["embedding_seconds_per_image"] > 0  # measured while training
        assert m["embedding"]["backbone"] == m["name"]
        member = load_model(out / m["name"])  # an ordinary model directory, on its own
        assert type(member) is PairModel and member.normaliser == "csls:3"
        assert (out / m["name"] / "model.safetensors").is_file() and (out / m["name"] / "cohort.safetensors").is_file()
    v = cfg["info"]["validation"]
    assert set(v["auc_by_member"]) == set(MEMBERS) and 0 <= v["auc"] <= 1
    assert cfg["calibration"]["slope"] > 0 and (out / "MODEL_CARD.md").is_file()
    # every member was trained on the one split
    arts = [json.loads((out / n / "config.json").read_text())["artists"] for n in names]
    assert arts[0] == arts[1] == cfg["artists"]


def test_load_round_trip_and_scores_are_the_weighted_standardised_member_scores(env):
    from painterid.embedding.pipeline import labelled, model_labelled

    data, out, _ = env
    fm = load_model(out)
    assert isinstance(fm, FusedModel) and fm.names == list(MEMBERS)
    assert FusedModel.load(out).config() == fm.config()
    lab = model_labelled(data, fm)
    assert lab.vectors.shape[1] == sum(fm.dims)
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(lab.names), 40), rng.integers(0, len(lab.names), 40)
    cfg = json.loads((out / "config.json").read_text())
    by_hand = np.zeros(40)
    for m in cfg["members"]:  # each member loaded on its own, with its own embedding of the paintings
        member = load_model(out / m["name"])
        mlab = labelled(data, member.embedding)
        row = {p: k for k, p in enumerate(mlab.paths)}
        a = mlab.vectors[[row[lab.paths[k]] for k in i]]
        b = mlab.vectors[[row[lab.paths[k]] for k in j]]
        by_hand += m["weight"] * (member.scores(a, b) - m["mean"]) / m["std"]
    assert np.allclose(fm.scores(lab.vectors[i], lab.vectors[j]), by_hand, atol=1e-5)
    assert np.allclose(fm.score_pairs(lab.vectors, np.column_stack([i, j])), by_hand, atol=1e-5)
    assert not np.allclose(by_hand, by_hand[0])  # not a constant


def test_compare_exit_codes_on_same_and_different_paintings(env):
    from painterid.embedding.pipeline import model_labelled

    data, out, _ = env
    fm = load_model(out)
    lab = model_labelled(data, fm)
    test = [k for k, a in enumerate(lab.artists) if a in set(fm.artists["test"])]
    pairs = np.array([(p, q) for p in test for q in test if lab.artists[p] != lab.artists[q]])
    s = fm.score_pairs(lab.vectors, pairs)
    far = pairs[int(np.argmin(s))]  # the most clearly different pair of unseen artists
    a, b = (lab.paths[k] for k in far)
    code, stdout, err = _main(["compare", a, b, "--model", out, "--json"])
    r = json.loads(stdout)
    assert code == 1 and r["same_artist"] is False and r["method"] == "fused", err
    assert r["score"] == pytest.approx(float(s.min()), abs=1e-4)  # compare's embedding path = evaluate's
    code, stdout, _ = _main(["compare", a, a, "--model", out, "--json"])  # one painting against itself
    assert code == 0 and json.loads(stdout)["probability"] > 0.5


def test_evaluate_a_fused_model(env):
    data, out, _ = env
    code, stdout, err = _main(["evaluate", "--model", out, "--data", data, "--split", "unseen", "--json",
                               "--bootstrap", "0"])
    assert code == 0, err
    unseen = json.loads(stdout)["groups"]["unseen"]
    assert unseen["n_pos"] > 0 and unseen["n_pos"] == unseen["n_neg"]
    assert 0.5 < unseen["auc"] <= 1.0


def test_commands_without_fused_support_refuse_in_one_line(env, tmp_path):
    data, out, _ = env
    img = next(Path(data, "train").glob("*.jpg"))
    kaggle_pairs = tmp_path / "pairs.csv"
    kaggle_pairs.write_text(f"index,image1,image2\n0,{img.name},{img.name}\n")
    for argv in (["explain", img, img, "--model", out, "--out", tmp_path / "x.png"],
                 ["cohort", "set", out, data],
                 ["submit", "--data", data, "--model", out, "--out", tmp_path / "s.csv", "--pairs", kaggle_pairs]):
        code, _, err = _main(argv)
        assert code == 2 and err.count("\n") == 1 and "fused model" in err and "Traceback" not in err, (argv, err)
    for argv in (["index", "build", "--data", data, "--out", tmp_path / "ix", "--backbone", ",".join(MEMBERS)],
                 ["embed", data, "--out", tmp_path / "st", "--backbone", ",".join(MEMBERS)]):
        code, _, err = _main(argv)
        assert code == 2 and err.count("\n") == 1 and "takes one backbone" in err, (argv, err)
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "ix").exists()


def test_bad_backbone_in_a_list_is_one_line_before_any_work(env, tmp_path):
    data, _, _ = env
    for value, said in (("efficientnet_lite0,nonexistent", "unknown backbone 'nonexistent'"),
                        ("mobilenetv2,mobilenetv2", "twice")):
        code, _, err = _main(["train", "--data", data, "--out", tmp_path / "m", "--backbone", value])
        assert code == 2 and err.count("\n") == 1 and said in err, err
    code, _, err = _main(["train", "--data", data, "--out", tmp_path / "m", "--backbone", ",".join(MEMBERS),
                          "--method", "finetune"])
    assert code == 2 and "fused model" in err
    assert not (tmp_path / "m").exists()


def test_table1_takes_a_fused_model_and_a_broken_one_is_one_line(env, tmp_path):
    import shutil

    data, out, _ = env
    code, stdout, err = _main(["table1", "--data", data, "--models", out, "--json"])
    assert code == 0, err
    row = json.loads(stdout)["rows"][0]
    assert row["method"] == "fused" and row["backbone"] == "+".join(MEMBERS)
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    shutil.rmtree(broken / MEMBERS[1])  # a member directory lost
    img = next(Path(data, "train").glob("*.jpg"))
    code, _, err = _main(["compare", img, img, "--model", broken])
    assert code == 2 and err.count("\n") == 1 and MEMBERS[1] in err and "Traceback" not in err, err
