"""The fast CPU path: numpy views equal torch's, ONNX vectors agree with torch's, `compare` imports no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from painterid.core.defaults import default_model_dir
from painterid.core.errors import PainterIDError
from painterid.embedding.arrayviews import ArrayViews
from painterid.embedding.runtime import (
    VECTOR_TOLERANCE,
    OnnxUnavailable,
    default_request,
    export_request,
    make_embedder,
)
from painterid.scoring.loading import load_model

from .conftest import real_paintings

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = default_model_dir()
EX = REPO / "examples" / "paintings" / "train"
HEAVY = ("torch", "timm", "torchvision")


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The default embedding on both runtimes (exported once per test session, into the session's cache)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PAINTERID_CACHE", str(tmp_path_factory.getbasetemp() / "painterid-cache"))  # as conftest's
    try:
        onnx = make_embedder(default_request(), device="cpu", runtime="onnx")
        torch_ = make_embedder(default_request(), device="cpu", runtime="torch", num_workers=0)
    finally:
        mp.undo()
    return onnx, torch_


@pytest.mark.parametrize("size", [(512, 384), (100, 300), (1500, 900), (240, 240), (241, 2000)])
@pytest.mark.parametrize("view", ["resize", "center", "corners", "patches"])
def test_array_views_equal_torch_views(view, size):
    from painterid.embedding.images import ViewTransform

    cfg = {"input_size": (3, 240, 240), "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
           "interpolation": "bicubic", "crop_pct": 0.882}
    rng = np.random.default_rng(sum(size))
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    want = ViewTransform(view, cfg, n_patches=5).__call__(img).numpy()
    got = ArrayViews(view, cfg, n_patches=5)(img)
    assert got.shape == want.shape and got.dtype == np.float32 and got.flags.c_contiguous
    assert np.abs(got - want).max() <= 1e-6  # same Pillow calls, same float32 arithmetic: equal in practice


def _agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    return float(np.abs(a - b).max()), float(np.einsum("nd,nd->n", a, b).min())


def test_onnx_vectors_agree_with_torch_on_generated_paintings(both, tmp_path):
    from painterid.data.synthetic import make_synthetic_dataset

    onnx, torch_ = both
    assert onnx.fingerprint == {**torch_.fingerprint}  # same keys and values: stores and caches mix
    data = make_synthetic_dataset(tmp_path / "syn", n_artists=3, per_artist=1, size=300, seed=3)
    files = sorted((data / "train").glob("*.jpg"))
    a, fa = onnx.embed_files(files)
    b, fb = torch_.embed_files(files)
    assert not fa and not fb
    diff, cos = _agreement(a, b)
    print(f"generated: max abs diff {diff:.2e}, min cosine {cos:.7f}")
    assert diff <= VECTOR_TOLERANCE and cos >= 0.99999
    # and the vectors are not trivially equal: different paintings stay apart
    assert float(a[0] @ a[-1]) < 0.999


def test_onnx_vectors_agree_with_torch_on_real_paintings(both):
    data = real_paintings()
    files = sorted((data / "train").glob("*.jpg"))[:3]
    onnx, torch_ = both
    a, _ = onnx.embed_files(files)
    b, _ = torch_.embed_files(files)
    diff, cos = _agreement(a, b)
    print(f"real: max abs diff {diff:.2e}, min cosine {cos:.7f}")
    assert diff <= VECTOR_TOLERANCE and cos >= 0.99999


def test_unreadable_file_is_a_failure_not_a_crash(both, tmp_path):
    onnx, _ = both
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    vecs, failures = onnx.embed_files([EX / "cezanne-1.jpg", bad])
    assert [i for i, _ in failures] == [1] and "bad.jpg" in failures[0][1]
    assert np.isfinite(vecs[0]).all() and np.isnan(vecs[1]).all()


def _run_and_list_heavy(code: str, env: dict, heavy: tuple[str, ...] = HEAVY) -> tuple[list[str], str]:
    """Run ``code`` in a fresh interpreter; the heavy modules it imported and its stdout."""
    probe = code + (f"\nimport sys, json\nprint('MODULES=' + json.dumps(sorted({{m.split('.')[0] for m in "
                    f"sys.modules}} & set({list(heavy)!r}))))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("MODULES=")][-1]
    return json.loads(line[len("MODULES="):]), proc.stdout


def _env(tmp_path, cache: Path) -> dict:
    import os

    return {**os.environ, "PAINTERID_CACHE": str(cache), "PYTHONPATH": str(REPO), "PAINTERID_RUNTIME": "auto"}


def test_compare_on_onnx_imports_no_torch(both, tmp_path, monkeypatch):
    """A cold compare (nothing in the embedding cache) with the default model: numpy, Pillow and onnxruntime."""
    from painterid.core.locations import cache_dir
    from painterid.tasks.compare import compare_files

    # a fresh embedding cache, the session's ONNX export: link it in
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "onnx").symlink_to(cache_dir() / "onnx", target_is_directory=True)
    code = (f"from painterid.tasks.compare import compare_files\n"
            f"r = compare_files({str(EX / 'cezanne-1.jpg')!r}, [{str(EX / 'rembrandt-1.jpg')!r}], "
            f"model_dir={str(DEFAULT_MODEL)!r}, device='cpu')\n"
            f"print('SCORE=%r' % r[0]['score'])")
    heavy, out = _run_and_list_heavy(code, _env(tmp_path, cache))
    assert heavy == [], f"compare imported {heavy}"
    score = float([x for x in out.splitlines() if x.startswith("SCORE=")][0][6:])
    monkeypatch.setenv("PAINTERID_NO_CACHE", "1")
    want = compare_files(EX / "cezanne-1.jpg", [EX / "rembrandt-1.jpg"], model_dir=DEFAULT_MODEL,
                         runtime="torch")[0]["score"]
    monkeypatch.delenv("PAINTERID_NO_CACHE")
    assert abs(score - want) < 1e-3
    # the cache it filled records the runtime, and a warm compare (vectors from the cache) imports no torch either
    from painterid.store.feature_store import FeatureStore

    stores = [p for p in (cache / "embeddings").iterdir() if (p / "config.json").is_file()]
    assert len(stores) == 1
    assert list(FeatureStore.open(stores[0]).runtimes()) == [onnx_name()]
    heavy, _ = _run_and_list_heavy(code, _env(tmp_path, cache))
    assert heavy == []


def test_verify_with_cached_references_imports_no_torch(both, tmp_path):
    """`verify q --references refs/` (default model, default aggregate): embeds through compare's cache and runtime
    choice; once the files are cached, neither torch nor sklearn is imported, and the answer is the same."""
    from painterid.core.locations import cache_dir

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "onnx").symlink_to(cache_dir() / "onnx", target_is_directory=True)
    refs = sorted(EX.glob("*.jpg"))[1:5]
    code = ("from painterid.tasks.verify import verify\n"
            f"r, bad = verify([{str(sorted(EX.glob('*.jpg'))[0])!r}], {str(DEFAULT_MODEL)!r}, "
            f"references={[str(p) for p in refs]!r}, device='cpu')\n"
            "assert not bad\nprint('LR=%r' % r[0]['log10_lr'])")
    heavy, first = _run_and_list_heavy(code, _env(tmp_path, cache))
    assert heavy == [], f"verify imported {heavy}"
    heavy, again = _run_and_list_heavy(code, _env(tmp_path, cache), HEAVY + ("sklearn",))
    assert heavy == [], f"a warm verify imported {heavy}"
    assert [x for x in first.splitlines() if x.startswith("LR=")] == [x for x in again.splitlines()
                                                                     if x.startswith("LR=")]


def test_cli_compare_start_up_imports_neither_torch_nor_pydantic(both, tmp_path):
    """`painterid compare` through the CLI: typer 0.29 imports pydantic and builds an adapter for every option
    (about 0.2 s a call on this machine), which is why pyproject pins typer below 0.29; this catches that and any
    import of torch creeping into the CLI's start-up."""
    from painterid.core.locations import cache_dir

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "onnx").symlink_to(cache_dir() / "onnx", target_is_directory=True)
    code = ("from painterid.cli import app\n"
            "try:\n"
            f"    app(['compare', {str(EX / 'cezanne-1.jpg')!r}, {str(EX / 'cezanne-2.jpg')!r}])\n"
            "except SystemExit as exc:\n"
            "    print('RC=%s' % exc.code)\n")
    heavy, out = _run_and_list_heavy(code, _env(tmp_path, cache), HEAVY + ("pydantic",))
    assert "RC=0" in out and "same artist" in out, out
    assert heavy == [], f"painterid compare imported {heavy}"


def onnx_name() -> str:
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__}"


def test_identify_on_onnx_imports_no_torch(both, tmp_path):
    from painterid.core.locations import cache_dir
    from painterid.tasks.index import ArtistIndex

    onnx, _ = both
    vecs, _ = onnx.embed_files(sorted(EX.glob("*.jpg"))[:6])
    names = [f"p{i}.jpg" for i in range(6)]
    ArtistIndex.build(vecs, names, ["A", "A", "A", "B", "B", "B"], onnx.fingerprint, kind="flat").save(tmp_path / "ix")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "onnx").symlink_to(cache_dir() / "onnx", target_is_directory=True)
    code = (f"from painterid.tasks.identify import identify\n"
            f"r = identify([{str(sorted(EX.glob('*.jpg'))[0])!r}], {str(tmp_path / 'ix')!r}, k=1, device='cpu')\n"
            f"print('TOP=' + r[0]['candidates'][0]['artist'])")
    heavy, out = _run_and_list_heavy(code, _env(tmp_path, cache))
    assert heavy == []
    assert "TOP=A" in out  # the query is the index's own p0 (artist A)


def test_default_model_scores_without_torch_equal_its_torch_head():
    """The shipped default (a siamese head over a normaliser chain) is scored with numpy once loaded."""
    import torch


    model = load_model(DEFAULT_MODEL)
    assert model._head is None  # nothing built: no torch needed to load it
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 50, model.embedding["dim"])).astype(np.float32)
    got = model.raw_scores(a, b)
    head = model.head  # built when someone asks for it (explain, training), with the same weights
    assert isinstance(head, torch.nn.Module)
    with torch.inference_mode():
        want = head(torch.from_numpy(model.transform(a)), torch.from_numpy(model.transform(b))).numpy()
    assert np.abs(got - want).max() < 1e-5


def test_runtime_choice_errors(monkeypatch, capsys):
    from .test_robustness import assert_one_line_error, cli

    code, _, err = cli(monkeypatch, capsys, "compare", EX / "cezanne-1.jpg", EX / "cezanne-2.jpg", "--runtime", "fast")
    assert_one_line_error(code, err, "'--runtime'", "'fast' is not one of 'auto', 'onnx', 'torch'")
    monkeypatch.setenv("PAINTERID_RUNTIME", "fast")  # the environment is checked by the library
    with pytest.raises(PainterIDError, match="unknown runtime 'fast'"):
        make_embedder(default_request(), device="cpu")
    with pytest.raises(OnnxUnavailable, match="device 'cuda'"):
        make_embedder(default_request(), device="cuda", runtime="onnx")


def test_failed_export_falls_back_to_torch_once(monkeypatch, tmp_path):
    """A backbone that does not export: auto embeds with torch (and does not retry), --runtime onnx says why."""
    from painterid.embedding import onnx_export
    from painterid.embedding.embedder import Embedder

    monkeypatch.setenv("PAINTERID_CACHE", str(tmp_path / "cache"))
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise onnx_export.ExportError("backbone 'efficientnet_lite0' does not export to ONNX (test)")

    monkeypatch.setattr(onnx_export, "export", broken)
    request = export_request("efficientnet_lite0", "center", "gap", None, None, None)
    first = make_embedder(request, device="cpu", runtime="auto", num_workers=0)
    assert isinstance(first, Embedder) and "does not export" in first.fallback_reason
    with pytest.raises(OnnxUnavailable, match="does not export"):
        make_embedder(request, device="cpu", runtime="onnx")
    assert len(calls) == 1  # remembered: no second attempt


def test_embed_on_onnx_imports_no_torch_and_fills_a_store_torch_reads(both, tmp_path):
    from painterid.core.locations import cache_dir
    from painterid.data.synthetic import make_synthetic_dataset
    from painterid.store.feature_store import FeatureStore

    onnx, torch_ = both
    data = make_synthetic_dataset(tmp_path / "syn", n_artists=2, per_artist=1, size=260, seed=5)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "onnx").symlink_to(cache_dir() / "onnx", target_is_directory=True)
    code = ("import sys\nfrom painterid.cli import main\n"
            f"sys.argv = ['painterid', 'embed', {str(data)!r}, '--out', {str(tmp_path / 'store')!r}]\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n")
    heavy, _ = _run_and_list_heavy(code, _env(tmp_path, cache))
    assert heavy == []
    store = FeatureStore.open(tmp_path / "store")
    assert len(store) == 2 and store.runtimes() == {onnx_name(): 2}
    assert store.embedding == torch_.fingerprint  # a store the torch path opens and appends to
    want, _ = torch_.embed_files(store.paths)
    assert np.abs(store.vectors - want).max() <= VECTOR_TOLERANCE


def test_one_export_serves_both_spellings_of_the_input_size(both, tmp_path_factory, monkeypatch):
    """`embed` asks with no input size, a model's fingerprint with 240: the same export answers both."""
    from painterid.embedding.runtime import ensure_export

    monkeypatch.setenv("PAINTERID_CACHE", str(tmp_path_factory.getbasetemp() / "painterid-cache"))
    onnx, _ = both
    a, _ = ensure_export(default_request(), export=False)
    b, rec = ensure_export({**default_request(), "input_size": onnx.fingerprint["input_size"][1]}, export=False)
    assert a == b and rec["fingerprint"] == onnx.fingerprint
    with pytest.raises(OnnxUnavailable, match="no ONNX export"):
        ensure_export({**default_request(), "input_size": 256}, export=False)
