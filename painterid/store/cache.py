"""painterid's cache of feature stores: where it is, what it holds, compacting and clearing it.

The cache ($PAINTERID_CACHE, default ~/.cache/painterid) holds `embeddings/KEY/` (the content cache: vectors by
sha256, one store per embedding, that every embedding command looks up first and adds to: `content_cache`), `stores/KEY/` (the embeddings of data sets that `train`, `evaluate`, `index build` and `submit`
read) and `patches/KEY/` (per-patch vectors, one .npy per painting, that a `selfsup` normaliser is trained on). Every function here also takes any store directory instead (`--store DIR`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from painterid.core.errors import ArtefactError
from painterid.core.locking import locked
from painterid.store.feature_store import FeatureStore, store_info

SUBDIRS = ("embeddings", "stores")


def content_cache(fingerprint) -> FeatureStore | None:
    """The store of vectors by content hash for one embedding (`embeddings/KEY/`; None when $PAINTERID_NO_CACHE is
    set or it cannot be opened).  Every command that embeds looks a file's sha256 up here first and adds what it
    embedded, so `compare`, `embed`, `index build`, `train`... never embed the same content twice, whatever folder
    or data set it comes from.  One row per content hash; any number of processes may read and add to it at once
    (docs/CONCURRENCY.md)."""
    import hashlib
    import json
    import os

    from painterid.core.errors import PainterIDError
    from painterid.core.io import FINGERPRINT_KEYS

    if os.environ.get("PAINTERID_NO_CACHE"):
        return None
    key = json.dumps({k: fingerprint.get(k) for k in FINGERPRINT_KEYS}, sort_keys=True)
    root = cache_root() / "embeddings" / hashlib.sha256(key.encode()).hexdigest()[:16]
    try:
        return FeatureStore.create_or_open(root, dict(fingerprint), unique="sha256")
    except (PainterIDError, OSError):
        return None  # an unusable cache must never stop a command


def cache_root() -> Path:
    """$PAINTERID_CACHE, or ~/.cache/painterid."""
    from painterid.core.locations import cache_dir

    return cache_dir()


def cache_stores(root: Path | None = None) -> list[Path]:
    """The feature stores in the cache (sorted)."""
    root = Path(root) if root is not None else cache_root()
    return sorted(p for sub in SUBDIRS if (root / sub).is_dir() for p in (root / sub).iterdir()
                  if FeatureStore.is_store(p))


def _targets(store: Path | None) -> list[Path]:
    if store is None:
        return cache_stores()
    if not FeatureStore.is_store(store):
        raise ArtefactError(f"{store}: not a feature store (no config.json of one)")
    return [Path(store)]


def patch_caches(root: Path | None = None) -> list[Path]:
    """The per-patch vector caches (painterid.embedding.patches) in the cache (sorted)."""
    root = (Path(root) if root is not None else cache_root()) / "patches"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def info(store: Path | None = None) -> dict:
    """Location, and rows, chunks and bytes of each store (of the cache, or of STORE alone); and of the cache,
    the paintings and bytes of each per-patch vector cache."""
    stores = [store_info(p) for p in _targets(store)]
    patches = [] if store is not None else [
        {"dir": str(p), "paintings": sum(1 for f in p.glob("*.npy") if not f.name.startswith(".")),
         "bytes": sum(f.stat().st_size for f in p.iterdir() if f.is_file())} for p in patch_caches()]
    return {"location": str(store if store is not None else cache_root()), "stores": stores,
            "rows": sum(s["rows"] for s in stores), "chunks": sum(s["chunks"] for s in stores),
            "bytes": sum(s["bytes"] for s in stores) + sum(p["bytes"] for p in patches), "patches": patches}


def compact(store: Path | None = None) -> list[dict]:
    """Merge the chunks of each store into one (atomic; safe beside readers and writers, who wait)."""
    return [FeatureStore.open(p).compact() for p in _targets(store)]


def clear(store: Path | None = None) -> list[str]:
    """Delete the stores (each under its lock, so no writer is mid-commit); returns what was removed."""
    removed = []
    for p in _targets(store):
        with locked(p, f"waiting for the writer of {p} to finish before clearing it"):
            (p / "config.json").unlink(missing_ok=True)  # no longer a store from here on, even if the rest fails
            for child in p.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                elif child.name != ".lock":
                    child.unlink()
        shutil.rmtree(p, ignore_errors=True)
        removed.append(str(p))
    if store is None:
        for p in patch_caches():  # one file per painting, each written whole (os.replace): nothing to lock
            shutil.rmtree(p, ignore_errors=True)
            removed.append(str(p))
    return removed
