"""explain: Grad-CAM heatmaps of the regions that drive a pair score (CPU, efficientnet_lite0, synthetic paintings)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from painterid.data.synthetic import paint, random_style
from painterid.embedding.embedder import Embedder, EmbeddingConfig
from painterid.scoring.heads import CosineScorer
from painterid.scoring.model import PairModel
from painterid.tasks.explain import explain_pair, view_box


class NegatedCosine(CosineScorer):
    """A scorer whose score is minus the cosine: its heatmaps must mark other regions than the cosine's."""

    def forward(self, a, b):
        return -super().forward(a, b)


@pytest.fixture(scope="module")
def gap_embedder():
    return Embedder(EmbeddingConfig(backbone="efficientnet_lite0", view="center", pool="gap"), num_workers=0)


@pytest.fixture(scope="module")
def cosine_dir(tmp_path_factory, gap_embedder):
    out = tmp_path_factory.mktemp("explain") / "cosine"
    PairModel("cosine", gap_embedder.fingerprint, CosineScorer()).save(out)
    return out


def _painting(artist: int, n: int, size=(160, 160)) -> Image.Image:
    return paint(random_style(np.random.default_rng([artist, 0])), np.random.default_rng([artist, 1, n]), size)


def _half_flat(path, artist: int) -> None:
    """Left half a textured painting, right half flat grey."""
    arr = np.asarray(_painting(artist, 0)).copy()
    arr[:, arr.shape[1] // 2:] = 128
    Image.fromarray(arr).save(path)


def test_view_box_is_the_region_the_center_view_shows():
    from painterid.embedding.images import ViewTransform

    dc = {"input_size": (3, 64, 64), "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "crop_pct": 0.75,
          "interpolation": "bilinear"}
    img = _painting(3, 0, size=(200, 120))
    seen = (ViewTransform("center", dc)(img)[0].permute(1, 2, 0).numpy() * 255.0)
    left, top, w, h = view_box("center", img.width, img.height, dc)
    assert left > 40 and 0 < top < 20  # a wide image loses most on the sides
    crop = np.asarray(img.crop((round(left), round(top), round(left + w), round(top + h)))
                      .resize((64, 64), Image.BILINEAR), dtype=np.float32)
    whole = np.asarray(img.resize((64, 64), Image.BILINEAR), dtype=np.float32)
    assert np.abs(seen - crop).mean() < 6.0
    assert np.abs(seen - whole).mean() > 3 * np.abs(seen - crop).mean()
    assert view_box("resize", 200, 120, dc) == (0.0, 0.0, 200.0, 120.0)


def test_explain_writes_side_by_side_png_and_maps_of_each_image(tmp_path, gap_embedder, cosine_dir):
    a, b = tmp_path / "a.jpg", tmp_path / "b.png"
    _painting(1, 0, size=(176, 144)).save(a, quality=92)
    _painting(1, 1, size=(150, 150)).save(b)
    out = tmp_path / "figs" / "heat.png"
    r = explain_pair(a, b, cosine_dir, out=out, embedder=gap_embedder)

    assert r["out"] == str(out) and out.is_file()
    assert [p.name for p in out.parent.iterdir()] == ["heat.png"]  # no temporary file left behind
    with Image.open(out) as fig:
        assert fig.format == "PNG" and fig.width > fig.height
    for m, (w, h) in ((r["map_a"], (176, 144)), (r["map_b"], (150, 150))):
        assert m.shape == (h, w) and m.dtype == np.float32
        assert m.min() >= 0.0 and m.max() == pytest.approx(1.0)
        assert m.std() > 0.05
        assert (m > 0.5).mean() < 0.6  # a map, not a wash

    # the differentiable path gives the score the inference path (compare) gives
    vecs, failures = gap_embedder.embed_files([a, b])
    assert not failures
    expected = float(np.dot(vecs[0], vecs[1]))
    assert r["score"] == pytest.approx(expected, abs=1e-4)
    assert r["explained_score"] == pytest.approx(expected, abs=1e-4)
    assert r["same_artist"] == (r["score"] >= 0.5) and 0.0 < r["probability"] < 1.0
    assert r["explained_view"] == "center" and r["cam"] == "gradcam"


@pytest.mark.parametrize("pool", ["gap", "style", "stage"])
def test_heat_lies_on_the_painted_half_not_the_flat_half(tmp_path, gap_embedder, pool):
    emb = gap_embedder if pool == "gap" else Embedder(
        EmbeddingConfig(backbone="efficientnet_lite0", view="center", pool=pool), num_workers=0)
    model = PairModel("cosine", emb.fingerprint, CosineScorer())
    for artist in (0, 1):
        a, b = tmp_path / f"half{artist}.png", tmp_path / f"ref{artist}.png"
        _half_flat(a, artist)
        _painting(artist, 1).save(b)
        m = explain_pair(a, b, model, embedder=emb)["map_a"]
        painted, flat = m[:, :80].mean(), m[:, 80:].mean()
        assert painted > 2 * flat, (pool, artist, painted, flat)


def test_maps_follow_the_score_gradient(tmp_path, gap_embedder):
    """Negating the score must move the heat elsewhere: maps of activations alone (or random maps) would not."""
    a, b = tmp_path / "half.png", tmp_path / "ref.png"
    _half_flat(a, 0)
    _painting(0, 1).save(b)
    pos = explain_pair(a, b, PairModel("cosine", gap_embedder.fingerprint, CosineScorer()), embedder=gap_embedder)
    neg = explain_pair(a, b, PairModel("cosine", gap_embedder.fingerprint, NegatedCosine()), embedder=gap_embedder)
    assert neg["score"] == pytest.approx(-pos["score"], abs=1e-5)
    for key in ("map_a", "map_b"):
        p, q = pos[key], neg[key]
        overlap = np.minimum(p, q).sum() / min(p.sum(), q.sum())
        assert overlap < 0.3, (key, overlap)


def test_explain_runs_under_inference_mode(tmp_path, gap_embedder, cosine_dir):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    _painting(2, 0).save(a)
    _painting(4, 0).save(b)
    with torch.inference_mode():
        r = explain_pair(a, b, cosine_dir, embedder=gap_embedder)
    assert r["map_a"].max() == pytest.approx(1.0) and "out" not in r


def _cli(monkeypatch, capsys, *args):
    from painterid.cli import main

    monkeypatch.setattr(sys, "argv", ["painterid", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
    cap = capsys.readouterr()
    return exc.value.code, cap.out, cap.err


def test_cli_explain_writes_the_figure_and_exits_0(tmp_path, monkeypatch, capsys, cosine_dir):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    _painting(5, 0).save(a)
    _painting(6, 0).save(b)  # another artist: explain exits 0 whatever the verdict
    out = tmp_path / "heat.png"
    code, stdout, _ = _cli(monkeypatch, capsys, "explain", a, b, "--out", out, "--model", cosine_dir)
    assert code == 0
    assert out.is_file() and Image.open(out).format == "PNG"
    assert "p(same artist)" in stdout and str(out) in stdout


def test_cli_explain_bad_image_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, cosine_dir):
    bad, good = tmp_path / "bad.jpg", tmp_path / "good.png"
    bad.write_text("not an image")
    _painting(5, 0).save(good)
    out = tmp_path / "heat.png"
    code, _, stderr = _cli(monkeypatch, capsys, "explain", bad, good, "--out", out, "--model", cosine_dir)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("painterid: error:") and "bad.jpg" in lines[0]
    assert not out.exists()
    code, _, stderr = _cli(monkeypatch, capsys, "explain", good, good, "--out", tmp_path / "heat.jpg",
                           "--model", cosine_dir)
    assert code == 2 and ".png" in stderr and len(stderr.strip().splitlines()) == 1
