"""`painterid verify`: a questioned painting against a body of one artist's works (synthetic artists)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from painterid.core.errors import ArtefactError, ImageError, PainterIDError
from painterid.scoring.setcal import SETS_FILE, posterior
from painterid.tasks.verify import ONE_REFERENCE_NOTE, verify

REPO = Path(__file__).resolve().parent.parent


def run(*args):
    return subprocess.run([sys.executable, "-m", "painterid", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=600)


@pytest.fixture(scope="module")
def model(tmp_path_factory, small_store):
    """A cosine + CSLS model on the synthetic store, with its set calibration fitted on its held-out artists."""
    from painterid.embedding.pipeline import labelled
    from painterid.tasks.setfit import fit_sets
    from painterid.training import TrainOptions, fit

    lab = labelled(small_store)
    names = sorted(set(lab.artists))
    split = {"train": names[:6], "val": names[6:10], "test": names[10:]}
    tr = [i for i, a in enumerate(lab.artists) if a in split["train"]]
    va = [i for i, a in enumerate(lab.artists) if a in split["val"]]
    m, _ = fit(lab.vectors[tr], [lab.artists[i] for i in tr], lab.vectors[va], [lab.artists[i] for i in va],
               lab.embedding, TrainOptions(method="cosine", normaliser="csls"), artists_split=split,
               train_hashes=[lab.hashes[i] for i in tr])
    out = tmp_path_factory.mktemp("model") / "m"
    m.save(out)
    fit_sets(out, small_store, ks=(1, 2, 3), default="mean")
    return out


@pytest.fixture(scope="module")
def works(synthetic_data):
    """{artist: [image files]} of the synthetic data."""
    by: dict[str, list[Path]] = {}
    with open(synthetic_data / "train_info.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            by.setdefault(r["artist"], []).append(synthetic_data / "train" / r["filename"])
    return by


def _refs(tmp_path: Path, name: str, files: list[Path]) -> Path:
    d = tmp_path / name
    d.mkdir()
    for f in files:
        shutil.copy(f, d / f.name)
    return d


def test_own_artist_scores_higher_and_verdict_follows_p(model, works, tmp_path):
    a, b = sorted(works)[:2]
    q = works[a][0]
    own, other = _refs(tmp_path, "own", works[a][1:5]), _refs(tmp_path, "other", works[b][:4])
    (r_own,), bad = verify([q], model, references=[own], runtime="torch")
    (r_other,), _ = verify([q], model, references=[other], runtime="torch")
    assert not bad
    assert r_own["set_score"] > r_other["set_score"] and r_own["log10_lr"] > r_other["log10_lr"]
    for r in (r_own, r_other):
        assert r["references"] == 4 and r["excluded_self"] is None and len(r["closest"]) == 4
        assert r["p_same"] == pytest.approx(float(posterior(r["log10_lr"], 0.5)), abs=1e-3)
        assert r["consistent"] == (r["p_same"] >= 0.5)
    # a prior that turns the verdict: the LR is the same, p moves with the prior odds
    (r_low,), _ = verify([q], model, references=[own], prior=0.01, runtime="torch")
    assert r_low["log10_lr"] == r_own["log10_lr"]
    assert r_low["p_same"] == pytest.approx(float(posterior(r_own["log10_lr"], 0.01)), abs=1e-4)


def test_questioned_among_references_is_left_out_and_said(model, works, tmp_path):
    a = sorted(works)[0]
    refs = _refs(tmp_path, "refs", works[a][:4])
    (r,), _ = verify([refs / works[a][0].name], model, references=[refs], runtime="torch")
    assert r["references"] == 3 and Path(r["excluded_self"]).name == works[a][0].name
    assert all(Path(c["reference"]).name != works[a][0].name for c in r["closest"])


def test_one_reference_says_it_is_compare(model, works, tmp_path):
    from painterid.tasks.compare import compare_files

    a = sorted(works)[0]
    (r,), _ = verify([works[a][0]], model, references=[works[a][1]], aggregate="max", runtime="torch")
    assert r["references"] == 1 and r["note"] == ONE_REFERENCE_NOTE
    pair = compare_files(works[a][0], [works[a][1]], model, runtime="torch")[0]
    assert r["set_score"] == pytest.approx(pair["score"], abs=1e-5)


def test_bad_inputs_are_refused(model, works, tmp_path, small_store):
    a = sorted(works)[0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="holds no images"):
        verify([works[a][0]], model, references=[tmp_path / "empty"])
    with pytest.raises(PainterIDError, match="between 0 and 1"):
        verify([works[a][0]], model, references=[works[a][1]], prior=1.0)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ImageError, match="broken.jpg"):
        verify([works[a][0]], model, references=[works[a][1], broken], runtime="torch")
    with pytest.raises(PainterIDError, match="--references"):
        verify([works[a][0]], model)
    with pytest.raises(PainterIDError, match="does not use a population"):  # centroid: --contrast would be ignored
        verify([works[a][0]], model, references=[works[a][1]], contrast=[works[a][2]], aggregate="centroid")
    with pytest.raises(PainterIDError, match="at least 10"):
        verify([works[a][0]], model, references=[works[a][1]], contrast=[works[a][2]], aggregate="znorm-mean",
               runtime="torch")
    bare = tmp_path / "bare"
    shutil.copytree(model, bare)
    (bare / SETS_FILE).unlink()
    with pytest.raises(ArtefactError, match="painterid calibrate"):
        verify([works[a][0]], bare, references=[works[a][1]])


def test_cli_exit_status_and_bad_file_among_many(model, works, tmp_path, small_store):
    a, b = sorted(works)[:2]
    qs = _refs(tmp_path, "questioned", [works[a][0], works[b][0]])
    (qs / "zz-broken.jpg").write_bytes(b"not a jpeg")
    refs = _refs(tmp_path, "refs", works[a][1:5])
    proc = run("verify", qs, "--references", refs, "--model", model, "--json", "--runtime", "torch")
    assert proc.returncode == 2, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [Path(r["questioned"]).name for r in rows] == sorted([works[a][0].name, works[b][0].name])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("painterid: error:")]
    assert len(errors) == 1 and "zz-broken.jpg" in errors[0]
    (qs / "zz-broken.jpg").unlink()
    proc = run("verify", qs, "--references", refs, "--model", model, "--json", "--runtime", "torch")
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == (0 if all(r["p_same"] >= 0.5 for r in rows) else 1), proc.stderr
    # references embedded with another model: refused in one line
    proc = run("verify", qs, "--references", small_store, "--model", REPO / "painterid" / "default_model")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "painterid: error:" in proc.stderr
    proc = run("verify", qs, "--references", refs, "--model", model, "--prior", "0")
    assert proc.returncode == 2 and "between 0 and 1" in proc.stderr and proc.stdout == ""


def test_report_pages(model, works, tmp_path):
    pytest.importorskip("painterid.tasks.evidence")
    from painterid.tasks.verify import write_reports

    a = sorted(works)[0]
    results, _ = verify([works[a][0]], model, references=[works[a][1], works[a][2]], runtime="torch")
    pages = write_reports(tmp_path / "report", results, model)
    assert len(pages) == 1 and pages[0].read_text().lstrip().lower().startswith("<!doctype html")


def test_identify_on_set_evidence_flags_duplicates_and_ranks_the_painter(model, works, small_store, tmp_path):
    from painterid.tasks.identify import build_index
    from painterid.tasks.identify_sets import OPEN_SET_MIN_AUC, identify_by_sets

    build_index(small_store, tmp_path / "ix")
    a = sorted(works)[0]
    (r,) = identify_by_sets([works[a][0]], tmp_path / "ix", model, k=3)
    assert r["duplicate_of"]["artist"] == a  # the query is an indexed painting
    top = r["candidates"][0]
    assert top["artist"] == a and top["paintings"] == len(works[a]) - 1  # left out of its own artist's evidence
    assert [c["log10_lr"] for c in r["candidates"]] == sorted((c["log10_lr"] for c in r["candidates"]),
                                                              reverse=True)
    o = r["open_set"]
    assert r["absence_judgeable"] == (o["open_set_auc"] >= OPEN_SET_MIN_AUC)
    assert not r["none_of_these"] or r["absence_judgeable"]  # never "none of these" when absence can't be judged


def test_public_api_verify_is_the_task(model, works, tmp_path):
    """painterid.verify(q, refs) gives the same answer as the task (one dict for one file, a list for a folder)."""
    import painterid

    a = sorted(works)[0]
    own = _refs(tmp_path, "own", works[a][1:5])
    one = painterid.verify(works[a][0], own, model=model, runtime="torch")
    (task,), _ = verify([works[a][0]], model, references=[own], runtime="torch")
    assert one == task
    qs = _refs(tmp_path, "qs", [works[a][0], sorted(works.values())[1][0]])
    many = painterid.verify(qs, own, model=model, runtime="torch")
    assert [Path(r["questioned"]).name for r in many] == sorted(p.name for p in qs.iterdir())
