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

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from painterid.core.errors import ArtefactError, DataError
from painterid.core.io import check_kind, read_json
from painterid.core.version import __version__
from painterid.data.pairs import artist_codes

KIND = "painterid.split"
FORMAT_VERSION = 1
PARTS = ("train", "val", "test_seen", "test_unseen")
# the artists a painting of each part must be by
PART_ARTISTS = {"train": "train", "val": "val", "test_seen": "train", "test_unseen": "test"}


def split_artists(
    artists: Sequence[str],
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    min_per_artist: int = 1,
) -> dict[str, list[str]]:
    """Artist-disjoint ``{"train", "val", "test"}`` split of the distinct artist names (sorted lists).

    Artists with fewer than ``min_per_artist`` paintings are left out of every split.  The number of artists
    per split follows ``fractions`` (each split with a positive fraction gets at least one artist).  To give every split same-artist pairs, artists are ordered by painting count
    (most first; the order within windows of similar rank is shuffled with ``seed``) and dealt out
    so that each split's share of the prolific artists stays proportional to its fraction.
    Deterministic for a ``seed``.  Raises :class:`DataError` with fewer than three artists.
    """
    fr = np.asarray(list(fractions), dtype=np.float64)
    if fr.shape != (3,) or (fr < 0).any() or not math.isclose(fr.sum(), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    uniq, codes = artist_codes(artists)
    counts = np.bincount(codes, minlength=uniq.size)
    eligible = counts >= int(min_per_artist)
    names = uniq[eligible].astype(str)
    counts = counts[eligible]
    a = names.size
    if a < 3:
        raise DataError(
            f"an artist-disjoint train/val/test split needs at least 3 artists"
            f"{f' with >= {min_per_artist} paintings' if min_per_artist > 1 else ''}; found {a}")

    # Split sizes: largest-remainder rounding, then at least one artist per positive fraction.
    raw = fr * a
    sizes = np.floor(raw).astype(np.int64)
    for k in np.argsort(-(raw - sizes), kind="stable")[: a - sizes.sum()]:
        sizes[k] += 1
    for k in range(3):
        if fr[k] > 0 and sizes[k] == 0:
            donor = int(np.argmax(sizes))
            sizes[donor] -= 1
            sizes[k] += 1

    rng = np.random.default_rng(seed)
    # Most paintings first; ties and near-ranks shuffled by the seed.
    perm = rng.permutation(a)
    order = perm[np.argsort(-counts[perm], kind="stable")]
    window = max(1, int(math.ceil(1.0 / fr[fr > 0].min())))
    for w in range(0, a, window):
        order[w:w + window] = rng.permutation(order[w:w + window])

    quota = sizes / a
    assigned = np.zeros(3, dtype=np.int64)
    split_of = np.empty(a, dtype=np.int64)
    for t, art in enumerate(order, start=1):
        deficit = quota * t - assigned
        deficit[assigned >= sizes] = -np.inf
        best = np.flatnonzero(deficit == deficit.max())
        k = int(best[0]) if best.size == 1 else int(rng.choice(best))
        split_of[art] = k
        assigned[k] += 1

    keys = ("train", "val", "test")
    return {keys[k]: sorted(names[split_of == k].tolist()) for k in range(3)}


def split_paintings(artists: list[str], val: float = 0.2, test: float = 0.2, holdout: float = 0.25,
                    seed: int = 0) -> dict:
    """Artist-disjoint train / validation / test split, plus held-out paintings of training artists.

    Returns {"artists": {"train", "val", "test"}, "indices": {"train", "val", "test_seen", "test_unseen"}}.
    Held-out paintings of training artists (for the seen-artist test) come only from artists with at least
    four paintings, two or more each, so they form same-artist pairs.
    """
    train_frac = 1.0 - val - test
    if train_frac <= 0:
        raise DataError("--val-artists plus --test-artists must leave some artists for training")
    groups = split_artists(artists, fractions=(train_frac, val, test), seed=seed)
    rng = np.random.default_rng(seed)
    arr = np.asarray(artists, dtype=object)
    train_set = set(groups["train"])
    idx = {"train": [], "val": [], "test_seen": [], "test_unseen": []}
    for a in sorted(train_set):
        rows = np.flatnonzero(arr == a)
        n_hold = int(round(holdout * len(rows))) if len(rows) >= 4 else 0
        n_hold = max(2, n_hold) if n_hold else 0
        rows = rng.permutation(rows)
        idx["test_seen"].extend(rows[:n_hold].tolist())
        idx["train"].extend(rows[n_hold:].tolist())
    val_set, test_set = set(groups["val"]), set(groups["test"])
    idx["val"] = [i for i, a in enumerate(artists) if a in val_set]
    idx["test_unseen"] = [i for i, a in enumerate(artists) if a in test_set]
    return {"artists": {k: sorted(v) for k, v in groups.items()},
            "indices": {k: np.array(sorted(v), dtype=np.int64) for k, v in idx.items()}}


def training_split(artists: list[str], names: list[str], seed: int, val: float = 0.2, test: float = 0.2,
                   holdout: float = 0.25, split_file: dict | None = None, indices: dict | None = None) -> dict:
    """The artist-disjoint split of one training run (precomputed `indices`, a `painterid split` file's content,
    or made here), refusing data without artists or with too few paintings to train and validate."""
    if any(not a for a in artists):
        raise DataError("training needs the artist of every painting (Kaggle CSV or one folder per artist)")
    if indices is not None:
        split = indices
    elif split_file is not None:
        split = split_indices(split_file, list(names), artists)
    else:
        split = split_paintings(artists, val=val, test=test, holdout=holdout, seed=seed)
    ix = split["indices"]
    if len(ix["train"]) < 4 or len(ix["val"]) < 2:
        raise DataError(f"too few paintings to train ({len(ix['train'])} training, {len(ix['val'])} validation)")
    return split


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


def read_split(path: str | Path) -> dict:
    """Read and check a split file."""
    split = read_json(path, "painterid split file")
    check_kind(split, path, KIND, FORMAT_VERSION, "a painterid split file (make one with `painterid split`)")
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
    """A split file applied to paintings `names` / `artists`, in `split_paintings`' form.

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
