"""A stand-in for the Hugging Face hub in tests: a file put into the standard cache layout, as hf_hub_download does."""

from __future__ import annotations

import hashlib
from pathlib import Path


def put_in_hf_cache(cache_dir: str | Path, repo_id: str, filename: str, blob: bytes) -> str:
    """Store ``blob`` as ``repo_id/filename`` in a Hugging Face cache (blobs, refs/main, a snapshot link); its path."""
    sha = hashlib.sha256(blob).hexdigest()
    root = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / sha).write_bytes(blob)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text("c0ffee")
    snap = root / "snapshots" / "c0ffee" / filename
    snap.parent.mkdir(parents=True, exist_ok=True)
    if not snap.exists():
        snap.symlink_to(Path("../../blobs") / sha)
    return str(snap)
