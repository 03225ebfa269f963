"""The one artefact module: atomic writes (a file, a streamed file, a directory), kind / format-version checks,
embedding-config matching, and CSV header checks.  Every artefact painterid writes goes through here."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TypeVar

from painterid.core.errors import ArtefactError, DataError


def fsync_path(path: str | os.PathLike) -> None:
    """Best-effort fsync of a file or directory."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", tmp: str | os.PathLike | None = None,
                **open_kwargs) -> Iterator[IO]:
    """Open a temporary sibling of `path` for writing; on success it is fsynced and renamed onto `path`, on any
    error it is removed (readers see the old file or the new one, never half of one).  `tmp`: its name."""
    path = Path(path)
    tmp = Path(tmp) if tmp is not None else path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    try:
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write a file under a temporary name, then rename it into place."""
    with atomic_file(path, "wb") as fh:
        fh.write(data)

T = TypeVar("T")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a UTF-8 text file under a temporary name, then rename it into place."""
    with atomic_file(path, "w") as fh:
        fh.write(text)


def _json_default(obj):
    if hasattr(obj, "as_dict"):  # typed records (EmbeddingFingerprint) are saved as their JSON dict
        return obj.as_dict()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def write_json(path: str | os.PathLike, obj: dict) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=_json_default)
                      + "\n")


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
        for f in tmp.iterdir():
            fsync_path(f)
        fsync_path(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with replacing(target):
        old = None
        if target.exists():
            old = tmp.with_name(tmp.name.replace(".tmp-", ".old-", 1))
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            if old is not None:
                os.replace(old, target)  # put the previous one back
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    fsync_path(target.parent)


def check_kind(config: dict, path: str | os.PathLike, kind: str, format_version: int, what: str,
               kind_key: str = "kind", fix: str = "upgrade painterid") -> dict:
    """Refuse a config.json that is not of `kind` or whose format is newer than this painterid reads."""
    if not isinstance(config, dict) or config.get(kind_key) != kind:
        found = config.get(kind_key) if isinstance(config, dict) else None
        raise ArtefactError(f"{path}: not {what} ({kind_key} {found!r})")
    version = config.get("format_version", 0)
    if not isinstance(version, int):
        raise ArtefactError(f"{path}: no valid format_version")
    if version > format_version:
        raise ArtefactError(f"{path}: format {version} is newer than this painterid reads ({format_version}); {fix}")
    return config


def check_columns(path: str | os.PathLike, header: Sequence[str] | None, required: Sequence[str],
                  expected: str | None = None) -> list[str]:
    """The stripped header of a CSV; a missing column is one DataError naming it (and the `expected` header)."""
    fields = [str(f).strip() for f in (header or [])]
    missing = [c for c in required if c not in fields]
    if missing:
        hint = f"; expected the header {expected}" if expected else ""
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}{hint} (found: {', '.join(fields) or 'nothing'})")
    return fields


@contextlib.contextmanager
def replacing(target: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of directory `target` while it is swapped for a new version (two saves never interleave).

    The lock file lives in the cache ($PAINTERID_CACHE/locks), not beside the user's artefact; where the cache
    cannot be written the swap goes ahead unlocked (each rename is still atomic)."""
    import hashlib

    from painterid.core.locations import cache_dir
    from painterid.core.locking import locked

    target = Path(target)
    locks = cache_dir() / "locks"
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

    from painterid.core.locking import notice

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


#: Fingerprint keys recorded since "bring your own encoder": compared only where both artefacts record them.
FINGERPRINT_KEYS_RECORDED = ("timm_name", "weights_sha256", "crop_mode")


def config_differences(have: dict, want: dict, keys: tuple[str, ...] = FINGERPRINT_KEYS) -> list[str]:
    """The fingerprint keys whose values differ between two embedding configs (the recorded-since keys only
    where both have them)."""
    def norm(v):
        return list(v) if isinstance(v, tuple) else v
    diff = [k for k in keys if norm(have.get(k)) != norm(want.get(k))]
    if keys is FINGERPRINT_KEYS:
        diff += [k for k in FINGERPRINT_KEYS_RECORDED
                 if have.get(k) is not None and want.get(k) is not None and have.get(k) != want.get(k)]
    return diff


def check_config_match(have: dict, want: dict, what: str, fix: str) -> None:
    """Refuse an artefact made with another backbone, preprocessing or weights, saying which and how to fix."""
    diff = config_differences(have, want)
    if diff:
        detail = "; ".join(f"{k}: {have.get(k)!r} vs {want.get(k)!r}" for k in diff)
        raise ArtefactError(f"{what} was made with other settings ({detail}); {fix}")


def check_replaceable(path: str | os.PathLike, key: str, value: str, what: str) -> None:
    """Refuse to overwrite `path` unless it is absent, an empty directory, or an artefact whose config.json has
    `key == value` (a wrong --out must never destroy someone's folder).  A directory that another process swaps
    for a new version while it is being checked is checked again."""
    import time

    path = Path(path)
    for attempt in range(5):
        before = _identity(path)
        try:
            verdict = _replaceable(path, key, value)
        except FileNotFoundError:  # moved away mid-check by a concurrent save
            verdict = None
        if verdict is not None and _identity(path) == before:
            break
        time.sleep(0.02 * (attempt + 1))
    if verdict is False:
        raise ArtefactError(f"{path}: exists, is not empty and is not {what}; refusing to overwrite it "
                            "(choose another --out)")


def _replaceable(path: Path, key: str, value: str) -> bool:
    """True: absent, empty or an artefact of this kind; False: someone else's folder (raises: not a folder)."""
    import stat

    try:
        first = path.lstat()  # one look, so a concurrent swap cannot pass one test and fail the next
    except FileNotFoundError:
        return True
    if not stat.S_ISDIR(first.st_mode):
        raise ArtefactError(f"{path}: exists and is not a directory; refusing to overwrite it")
    if not any(path.iterdir()):
        return True
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        try:
            now = path.lstat()
        except FileNotFoundError:
            now = None
        if now is None or (now.st_dev, now.st_ino) != (first.st_dev, first.st_ino):
            raise  # the folder itself was moved away mid-check by a concurrent save: the caller looks again
        cfg = None  # no config.json: someone's folder
    except (OSError, ValueError):  # unreadable config.json: someone's folder, unless swapped meanwhile (caller)
        cfg = None
    return isinstance(cfg, dict) and cfg.get(key) == value
