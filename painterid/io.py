"""Writing artefacts safely and checking that they match what a command expects."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from .errors import ArtefactError

T = TypeVar("T")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file under a temporary name, then rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk or a signal: no temporary file stays behind
        tmp.unlink(missing_ok=True)
        raise


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
    """Yield a temporary sibling directory; on success it replaces `target` whole, on error it is removed.

    The swap holds `target`'s lock (`replacing`), so two processes saving to one place never interleave."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")  # unique per call
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with replacing(target):
        old = None
        if target.exists():
            old = tmp.with_name(tmp.name.replace(".tmp-", ".old-", 1))
            os.replace(target, old)
        os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def replacing(target: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of directory `target` while it is swapped for a new version (two saves never interleave).

    The lock file lives in the cache ($PAINTERID_CACHE/locks), not beside the user's artefact; where the cache
    cannot be written the swap goes ahead unlocked (each rename is still atomic)."""
    import hashlib

    from .cache import cache_root
    from .store import locked

    target = Path(target)
    locks = cache_root() / "locks"
    try:
        locks.mkdir(parents=True, exist_ok=True)
    except OSError:
        yield
        return
    key = hashlib.sha256(str(target.resolve()).encode()).hexdigest()[:24]
    with locked(locks, f"waiting for another process replacing {target}", quiet_s=2.0, name=f"{key}.lock"):
        yield


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def read_stable(path: str | os.PathLike, load: Callable[[], T], attempts: int = 4) -> T:
    """`load()` a directory artefact; if another process replaced the directory meanwhile (a save renames a new
    one into place), say so on stderr and read it again, so a reader never mixes files of two versions."""
    import time

    from .store import notice

    path = Path(path)
    for attempt in range(attempts):
        before = _identity(path)
        try:
            result, error = load(), None
        except (ArtefactError, OSError) as exc:
            result, error = None, exc
        after = _identity(path)
        swapping = any(path.parent.glob(f".{path.name}.old-*")) or any(path.parent.glob(f"{path.name}.old-*"))
        if before == after and not (error is not None and swapping):
            if error is not None:
                raise error
            return result
        if attempt + 1 < attempts:
            notice(f"{path} is being replaced by another process while read; reading it again")
            time.sleep(0.05 * (attempt + 1))
    raise ArtefactError(f"{path}: kept being replaced by another process while read; try again when it is saved")


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
