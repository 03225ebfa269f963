"""Where painterid keeps derived data; light to import (no torch), so `compare` can use it."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where painterid keeps derived data (feature stores of data sets): $PAINTERID_CACHE or ~/.cache/painterid."""
    env = os.environ.get("PAINTERID_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "painterid"
