"""Split files: an artist-disjoint train / validation / test split of a data set, written once, read by `train`.

A split file is JSON::

    {"kind": "painterid.split", "format_version": 1, "seed": 0, "val": 0.2, "test": 0.2, "holdout": 0.25,
     "artists": {"train": [...], "val": [...], "test": [...]},
     "files":   {"train": [...], "val": [...], "test_seen": [...], "test_unseen": [...]}}

Files are named as pair CSVs and reports name them (Kaggle: the file name; one folder per artist: the path relative
to the data folder), so a split made from a DATA folder also applies to a feature STORE embedded from it.
`test_seen` holds paintings of training artists kept out of training (the seen-artist test).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from . import __version__
from .datasets import split_paintings
from .errors import ArtefactError, DataError
from .io import read_json, write_json

KIND = "painterid.split"
FORMAT_VERSION = 1
PARTS = ("train", "val", "test_seen", "test_unseen")
# the artists a painting of each part must be by
PART_ARTISTS = {"train": "train", "val": "val", "test_seen": "train", "test_unseen": "test"}


def data_names_artists(data: str | Path) -> tuple[list[str], list[str]]:
    """Names and artists of the paintings of DATA (a folder, read without embedding) or of a feature STORE."""
    from .datasets import discover
    from .store import FeatureStore

    path = Path(data)
    if FeatureStore.is_store(path):
        rows = FeatureStore.open(path).rows
        if not rows:
            raise DataError(f"{path}: the feature store is empty")
        return [r.name for r in rows], [r.artist for r in rows]
    dataset = discover(path)
    return list(dataset.names), list(dataset.artists)


def make_split(names: list[str], artists: list[str], val: float = 0.2, test: float = 0.2,
               holdout: float = 0.25, seed: int = 0) -> dict:
    """The split (as written to a split file) of paintings `names` by `artists`; deterministic for a seed."""
    if len(names) != len(artists):
        raise ValueError("names and artists differ in length")
    if any(not a for a in artists):
        raise DataError("a split needs the artist of every painting (Kaggle CSV or one folder per artist)")
    dup = len(names) - len(set(names))
    if dup:
        raise DataError(f"{dup} painting name(s) occur twice; a split file needs unique names")
    for name, frac in (("--val", val), ("--test", test), ("--holdout", holdout)):
        if not 0.0 <= frac < 1.0:
            raise DataError(f"{name} must lie in [0, 1), got {frac}")
    parts = split_paintings(list(artists), val=val, test=test, holdout=holdout, seed=seed)
    files = {k: sorted(names[i] for i in parts["indices"][k]) for k in PARTS}
    return {
        "kind": KIND, "format_version": FORMAT_VERSION, "painterid_version": __version__,
        "seed": int(seed), "val": float(val), "test": float(test), "holdout": float(holdout),
        "artists": {k: list(v) for k, v in parts["artists"].items()},
        "files": files,
        "counts": {**{f"{k}_artists": len(v) for k, v in parts["artists"].items()},
                   **{f"{k}_paintings": len(v) for k, v in files.items()}},
    }


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


def read_split(path: str | Path) -> dict:
    """Read and check a split file."""
    split = read_json(path, "painterid split file")
    if split.get("kind") != KIND:
        raise ArtefactError(f"{path}: not a painterid split file (kind {split.get('kind')!r}); "
                            "make one with `painterid split`")
    if split.get("format_version", 0) > FORMAT_VERSION:
        raise ArtefactError(f"{path}: split format {split['format_version']} is newer than this painterid "
                            f"reads ({FORMAT_VERSION}); upgrade painterid")
    groups = split.get("artists", {})
    if any(k not in groups for k in ("train", "val", "test")) or any(k not in split.get("files", {}) for k in PARTS):
        raise ArtefactError(f"{path}: a split file needs artists train/val/test and files {'/'.join(PARTS)}")
    seen: dict[str, str] = {}
    for k in ("train", "val", "test"):
        for a in groups[k]:
            if a in seen:
                raise ArtefactError(f"{path}: artist {a!r} is in both {seen[a]} and {k}; the split is not "
                                    "artist-disjoint")
            seen[a] = k
    return split


def split_indices(split: dict, names: list[str], artists: list[str]) -> dict:
    """A split file applied to paintings `names` / `artists`, in `datasets.split_paintings`' form.

    Paintings the split does not list are left out (with a warning), as are listed files the data lacks;
    a painting whose artist is not in its part's artists means the split belongs to other data (DataError).
    """
    where: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        where.setdefault(n, []).append(i)
    groups = {k: set(v) for k, v in split["artists"].items()}
    indices: dict[str, np.ndarray] = {}
    missing = 0
    for part in PARTS:
        allowed = groups[PART_ARTISTS[part]]
        rows: list[int] = []
        for name in split["files"][part]:
            found = where.get(name)
            if not found:
                missing += 1
                continue
            for i in found:
                if artists[i] not in allowed:
                    raise DataError(f"the split file lists {name!r} under {part}, but in this data it is by "
                                    f"{artists[i]!r}, not one of the split's {PART_ARTISTS[part]} artists; "
                                    "the split was made from other data")
            rows.extend(found)
        indices[part] = np.array(sorted(rows), dtype=np.int64)
    listed = sum(len(v) for v in indices.values())
    if missing:
        warnings.warn(f"{missing} file(s) of the split are not in this data and are left out", stacklevel=2)
    if listed < len(names):
        warnings.warn(f"{len(names) - listed} painting(s) of this data are not in the split and are left out",
                      stacklevel=2)
    return {"artists": {k: sorted(v) for k, v in split["artists"].items()}, "indices": indices}
