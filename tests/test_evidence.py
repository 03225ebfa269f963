"""Patch evidence (painterid.tasks.evidence): shares that add up to the score, best-matching patches, the verify
page and explain's patch figure. A stand-in embedder (a fixed random projection of each crop's pixels) keeps it
fast; the geometry (which pixels are a patch) is the library's own `patches` view."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from painterid.scoring.model import PairModel
from painterid.scoring.normalise import Chain
from painterid.tasks import evidence as ev_mod
from painterid.tasks.evidence import linear_chain, patch_evidence, shapley_shares, write_verify_report

SIDE, PATCH, N = 64, 32, 4  # a 64 px image, 32 px patches, 4 of them: a 2 x 2 grid of tiles that do not overlap
FP = {"backbone": "stand-in", "weights_id": "none", "weights_file": None, "view": "patches", "pool": "gap",
      "n_patches": N, "input_size": [3, PATCH, PATCH], "mean": [0.5] * 3, "std": [0.5] * 3,
      "interpolation": "bicubic", "crop_pct": 1.0, "dim": 24}


class StandIn:
    """Embeds each crop by a fixed random projection of its 8 x 8 average-pooled pixels, L2-normalised."""

    def __init__(self):
        self.proj = np.random.default_rng(7).normal(size=(3 * 8 * 8, FP["dim"])).astype(np.float32)
        self.calls = 0

    def view_vectors(self, flat):
        self.calls += 1
        x = np.asarray(flat, np.float32)
        pooled = x.reshape(len(x), 3, 8, PATCH // 8, 8, PATCH // 8).mean((3, 5)).reshape(len(x), -1)
        v = pooled @ self.proj
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def _tile(seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((PATCH, PATCH, 3)) * 255).astype(np.uint8)


def _image(path, seeds) -> str:
    """Tiles seeds[0..3] at the grid positions in row-major order."""
    rows = [np.concatenate([_tile(seeds[2 * r]), _tile(seeds[2 * r + 1])], axis=1) for r in range(2)]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    return str(path)


def _model(spec: str) -> PairModel:
    cohort = np.random.default_rng(3).normal(size=(20, FP["dim"])).astype(np.float32)
    cohort /= np.linalg.norm(cohort, axis=1, keepdims=True)
    chain = Chain.parse(spec).fit(cohort)
    return PairModel("cosine", FP, None, cohort=cohort, chain=chain, threshold=0.1)


@pytest.mark.parametrize("spec", ["none", "csls:3", "center,l2,csls:3", "whiten:8,l2"])
def test_linear_shares_add_up_to_the_model_score(tmp_path, spec):
    m = _model(spec)
    q = _image(tmp_path / "q.png", [1, 2, 3, 4])
    refs = [_image(tmp_path / "r1.png", [2, 9, 1, 8]), _image(tmp_path / "r2.png", [5, 6, 7, 3])]
    ev = patch_evidence(m, q, refs, embedder=StandIn())
    assert ev.attribution == "linear" and linear_chain(m)
    a = ev.questioned.vector
    direct = m.scores(np.repeat(a[None], 2, 0), np.stack([r.vector for r in ev.references]))
    assert np.allclose(ev.pair_scores, direct, atol=1e-6)
    assert ev.shares.sum() + ev.offset == pytest.approx(float(direct.mean()), abs=1e-5)
    assert ev.margins.sum() == pytest.approx(float(direct.mean()) - m.threshold, abs=1e-5)
    assert np.ptp(ev.shares) > 1e-3  # the patches do not all get the same share


def test_a_non_linear_chain_gets_shapley_shares_that_add_up(tmp_path):
    m = _model("power,center,l2,csls:3")
    assert not linear_chain(m)
    q = _image(tmp_path / "q.png", [1, 2, 3, 4])
    ev = patch_evidence(m, q, [_image(tmp_path / "r.png", [2, 9, 1, 8])], embedder=StandIn())
    assert ev.attribution == "shapley" and ev.offset == 0.0
    assert ev.shares.sum() == pytest.approx(ev.score, abs=1e-5)
    # Shapley on a linear model also adds up (efficiency), and its sum is the score too
    lin = _model("center,l2,csls:3")
    ev2 = patch_evidence(lin, q, [_image(tmp_path / "r.png", [2, 9, 1, 8])], embedder=StandIn())
    sh = shapley_shares(lin, ev2.questioned.vectors, [r.vectors for r in ev2.references])
    assert sh.sum() == pytest.approx(ev2.score, abs=1e-5)


def test_best_match_is_the_same_tile_wherever_the_reference_has_it(tmp_path):
    m = _model("center,l2,csls:3")
    q = _image(tmp_path / "q.png", [11, 12, 13, 14])
    r1 = _image(tmp_path / "r1.png", [90, 13, 91, 11])  # tiles 13 at patch 1, 11 at patch 3
    r2 = _image(tmp_path / "r2.png", [14, 92, 12, 93])  # tiles 14 at patch 0, 12 at patch 2
    ev = patch_evidence(m, q, [r1, r2], embedder=StandIn())
    assert [(r, j) for r, j, _ in ev.best] == [(0, 3), (1, 2), (0, 1), (1, 0)]
    assert all(cos > 0.999 for _, _, cos in ev.best)
    assert np.array_equal(np.asarray(ev.questioned.crop(2)), np.asarray(ev.references[0].crop(1)))


def test_patches_the_reference_shares_count_more_for_the_match(tmp_path):
    m = _model("csls:3")
    q = _image(tmp_path / "q.png", [21, 22, 23, 24])
    ev = patch_evidence(m, q, [_image(tmp_path / "r.png", [21, 22, 95, 96])], embedder=StandIn())
    assert min(ev.margins[:2]) > max(ev.margins[2:])
    assert ev.order()[:2] in ([0, 1], [1, 0])


def _result(q, refs, verdict="not consistent"):
    return {"questioned": q, "references": len(refs), "excluded_self": None, "aggregate": "max", "set_score": -0.2,
            "log10_lr": -1.3, "prior": 0.5, "p_same": 0.048, "consistent": verdict == "consistent",
            "verdict": verdict, "closest": [{"reference": r, "score": 0.1 - i / 10} for i, r in enumerate(refs)],
            "model": "m"}


def test_verify_page_is_self_contained_and_names_the_verdict(tmp_path, monkeypatch):
    import painterid.embedding.runtime as runtime

    monkeypatch.setattr(runtime, "make_embedder", lambda *a, **k: StandIn())
    model_dir = _model("center,l2,csls:3").save(tmp_path / "model")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    q1 = _image(tmp_path / "a" / "q.png", [1, 2, 3, 4])
    q2 = _image(tmp_path / "b" / "q.png", [5, 6, 7, 8])
    refs = [_image(tmp_path / "r1.png", [2, 9, 1, 8]), _image(tmp_path / "r2.png", [5, 6, 7, 3])]
    out = tmp_path / "report"
    p1 = write_verify_report(out, _result(q1, refs), model_dir)
    p2 = write_verify_report(out, _result(q2, refs, "consistent"), model_dir)
    assert p1.name == "q.html" and p2 != p1 and p2.name.startswith("q-")  # two questioned files, one stem
    assert write_verify_report(out, _result(q1, refs), model_dir) == p1  # the same painting: the same page
    assert sorted(p.name for p in out.iterdir()) == sorted([p1.name, p2.name])  # nothing half-written left
    page = p1.read_text()
    srcs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/") for s in srcs)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "not consistent" in page and "10^-1.30" in page and "0.048" in page
    assert len(re.findall(r"<tr><td class=num>", page)) == N  # one row per questioned patch
    assert "consistent</span>" in p2.read_text()


def test_explain_a_patches_model_shows_its_patches(tmp_path, monkeypatch):
    import painterid.embedding.runtime as runtime
    from painterid.tasks.explain import explain_pair

    monkeypatch.setattr(runtime, "make_embedder", lambda *a, **k: StandIn())
    model_dir = _model("csls:3").save(tmp_path / "model")
    a = _image(tmp_path / "a.png", [1, 2, 3, 4])
    b = _image(tmp_path / "b.png", [2, 9, 1, 8])
    r = explain_pair(a, b, model_dir, out=tmp_path / "x.png")
    assert r["explained_view"].startswith("patches") and len(r["patches"]) == N
    assert sum(p["margin"] for p in r["patches"]) == pytest.approx(r["score"] - r["threshold"], abs=1e-4)
    assert {p["best_match"] for p in r["patches"] if p["patch"] in (1, 2)} == {1, 3}  # tiles 1, 2 of b
    assert Image.open(r["out"]).format == "PNG"
    assert ev_mod.EXACT_SHAPLEY_MAX >= N
