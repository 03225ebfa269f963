"""The wheel and the sdist carry the shipped default model; the licence is an SPDX string (no setuptools warning)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# every file of the shipped models (a cosine model has no normalise.safetensors: its chain has no fitted arrays)
MODEL_FILES = tuple(sorted(p.name for p in (REPO / "painterid" / "default_model").iterdir() if p.is_file()))
ARCHIVE_FILES = tuple(sorted(p.name for p in (REPO / "painterid" / "archive_model").iterdir() if p.is_file()))
ESSENTIAL = {"config.json", "model.safetensors", "cohort.safetensors", "MODEL_CARD.md", "training_set.csv"}


def _source_copy(tmp_path: Path) -> Path:
    """The files a build reads (not the venv, caches or examples), so nothing is written into the checkout."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "painterid", src / "painterid", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return src


def _build(src: Path, out: Path, kind: str) -> Path:
    """setuptools' PEP 517 hook, as pip calls it, in a child process (offline: the installed setuptools)."""
    code = (f"import setuptools.build_meta as b, sys; sys.stdout.write(b.build_{kind}({str(out)!r}))")
    res = subprocess.run([sys.executable, "-W", "always", "-c", code], cwd=src, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "project.license" not in res.stderr  # the TOML-table licence warning is gone
    return out / res.stdout.strip().splitlines()[-1]


def test_wheel_holds_the_default_model(tmp_path):
    pytest.importorskip("setuptools.build_meta")
    whl = _build(_source_copy(tmp_path), tmp_path / "dist", "wheel")
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        assert ESSENTIAL <= set(MODEL_FILES) and ESSENTIAL | {"normalise.safetensors"} <= set(ARCHIVE_FILES)
        for f in MODEL_FILES:
            assert f"painterid/default_model/{f}" in names
        for f in ARCHIVE_FILES:
            assert f"painterid/archive_model/{f}" in names  # the second shipped model (`--model archive`)
        packed = z.read("painterid/default_model/model.safetensors")
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert packed == (REPO / "painterid" / "default_model" / "model.safetensors").read_bytes()
    assert "License-Expression: Apache-2.0" in meta
    assert "Provides-Extra: gpu" in meta and "faiss-gpu" in meta


def test_sdist_holds_the_default_model(tmp_path):
    pytest.importorskip("setuptools.build_meta")
    sdist = _build(_source_copy(tmp_path), tmp_path / "dist", "sdist")
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for f in MODEL_FILES:
        assert f"painterid/default_model/{f}" in names


def test_default_model_dir_is_package_data():
    from painterid.cli import DEFAULT_MODEL
    from painterid.core.defaults import default_model_dir

    d = default_model_dir()
    assert d == DEFAULT_MODEL and d.parent == REPO / "painterid"
    assert ESSENTIAL <= set(MODEL_FILES) and all((d / f).is_file() for f in MODEL_FILES)
    assert 'license = "Apache-2.0"' in (REPO / "pyproject.toml").read_text()
