"""`painterid compare REF FOLDER`: a folder stands for its images (sorted; subfolders with --recursive)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from painterid.core.errors import ImageError
from painterid.tasks.compare import expand_images

REPO = Path(__file__).resolve().parent.parent


def run(*args):
    return subprocess.run([sys.executable, "-m", "painterid", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=600)


def _screening_folder(root: Path, images: list[Path]) -> Path:
    """suspects/ with three images (named out of order), a non-image, a hidden file and a subfolder image."""
    d = root / "suspects"
    (d / "more").mkdir(parents=True)
    for name, src in zip(("c.jpg", "a.jpg", "b.PNG"), images[1:4]):
        shutil.copy(src, d / name)
    shutil.copy(images[4], d / "more" / "d.jpg")
    shutil.copy(images[5], d / ".hidden.jpg")
    (d / "notes.txt").write_text("not an image")
    return d


def test_expand_images_sorts_and_recurses_only_when_asked(tmp_path, synthetic_data):
    imgs = sorted((synthetic_data / "train").glob("*.jpg"))
    d = _screening_folder(tmp_path, imgs)
    single = tmp_path / "single.jpg"
    shutil.copy(imgs[0], single)
    assert expand_images([single, d]) == [single, d / "a.jpg", d / "b.PNG", d / "c.jpg"]
    assert expand_images([d], recursive=True) == [d / "a.jpg", d / "b.PNG", d / "c.jpg", d / "more" / "d.jpg"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="holds no images"):
        expand_images([tmp_path / "empty"])


@pytest.fixture(scope="module")
def cosine_model(tmp_path_factory, small_store):
    out = tmp_path_factory.mktemp("model") / "cosine"
    proc = run("train", "--data", small_store, "--out", out, "--method", "cosine", "--val-artists", "0.25",
               "--test-artists", "0.3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def test_compare_reference_against_a_folder(cosine_model, synthetic_data, tmp_path):
    imgs = sorted((synthetic_data / "train").glob("*.jpg"))
    d = _screening_folder(tmp_path, imgs)
    proc = run("compare", imgs[0], d, "--model", cosine_model, "--json")
    assert proc.returncode in (0, 1), proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [Path(r["image_b"]).name for r in rows] == ["a.jpg", "b.PNG", "c.jpg"]
    one = run("compare", imgs[0], imgs[2], "--model", cosine_model, "--json")  # a.jpg is a copy of imgs[2]
    # the same pair, alone or in a folder batch: equal up to float32 batch effects and the 6-decimal rounding
    assert json.loads(one.stdout)["score"] == pytest.approx(rows[0]["score"], abs=3e-6)
    deep = run("compare", imgs[0], d, "--recursive", "--model", cosine_model, "--format", "csv")
    assert deep.returncode in (0, 1) and len(deep.stdout.strip().splitlines()) == 1 + 4


def test_folder_as_reference_or_empty_folder_is_one_line_exit_2(cosine_model, synthetic_data, tmp_path):
    imgs = sorted((synthetic_data / "train").glob("*.jpg"))
    (tmp_path / "empty").mkdir()
    for args in ([tmp_path, imgs[0]], [imgs[0], tmp_path / "empty"]):
        proc = run("compare", *args, "--model", cosine_model)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("painterid: error:")
    assert "reference must be one image" in run("compare", tmp_path, imgs[0], "--model", cosine_model).stderr


def test_compare_help_shows_a_screening_example():
    proc = run("compare", "--help")
    assert proc.returncode == 0 and "painterid compare ref.jpg suspects/" in proc.stdout
