"""Writing artefacts safely and checking that they match what a command expects."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from .errors import ArtefactError


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file under a temporary name, then rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json(path: str | os.PathLike, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike, what: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ArtefactError(f"{path.parent}: not a {what} (no {path.name})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtefactError(f"{path}: unreadable ({exc})") from None


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `target` whole, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# Keys of an embedding config that change the vectors; anything else (dim, notes) is informative only.
FINGERPRINT_KEYS = ("backbone", "weights_id", "view", "pool", "n_patches", "input_size", "mean", "std",
                    "interpolation", "crop_pct")


def config_differences(have: dict, want: dict, keys: tuple[str, ...] = FINGERPRINT_KEYS) -> list[str]:
    """The fingerprint keys whose values differ between two embedding configs."""
    def norm(v):
        return list(v) if isinstance(v, tuple) else v
    return [k for k in keys if norm(have.get(k)) != norm(want.get(k))]


def check_config_match(have: dict, want: dict, what: str, fix: str) -> None:
    """Refuse an artefact made with another backbone, preprocessing or weights, saying which and how to fix."""
    diff = config_differences(have, want)
    if diff:
        detail = "; ".join(f"{k}: {have.get(k)!r} vs {want.get(k)!r}" for k in diff)
        raise ArtefactError(f"{what} was made with other settings ({detail}); {fix}")


def check_replaceable(path: str | os.PathLike, key: str, value: str, what: str) -> None:
    """Refuse to overwrite `path` unless it is absent, an empty directory, or an artefact whose config.json has
    `key == value` (a wrong --out must never destroy someone's folder)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        raise ArtefactError(f"{path}: exists and is not a directory; refusing to overwrite it")
    if not any(path.iterdir()):
        return
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cfg = None
    if not isinstance(cfg, dict) or cfg.get(key) != value:
        raise ArtefactError(f"{path}: exists, is not empty and is not {what}; refusing to overwrite it "
                            "(choose another --out)")
