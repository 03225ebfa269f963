"""The paintings of DATA (a folder, read without embedding) or of a feature STORE, and the split file made of them."""

from __future__ import annotations

from pathlib import Path

from painterid.core.errors import DataError
from painterid.core.io import write_json
from painterid.data.datasets import discover
from painterid.data.splits import make_split
from painterid.store.feature_store import FeatureStore


def data_names_artists(data: str | Path) -> tuple[list[str], list[str]]:
    """Names and artists of the paintings of DATA (a folder, read without embedding) or of a feature STORE."""
    path = Path(data)
    if FeatureStore.is_store(path):
        rows = FeatureStore.open(path).rows
        if not rows:
            raise DataError(f"{path}: the feature store is empty")
        return [r.name for r in rows], [r.artist for r in rows]
    dataset = discover(path)
    return list(dataset.names), list(dataset.artists)


def split_data(data: str | Path, out: str | Path, val: float = 0.2, test: float = 0.2, holdout: float = 0.25,
               seed: int = 0) -> dict:
    """Split DATA (folder or STORE) by artist and write the split file `out`; returns the split."""
    names, artists = data_names_artists(data)
    split = make_split(names, artists, val=val, test=test, holdout=holdout, seed=seed)
    split["data"] = str(data)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, split)
    return split
