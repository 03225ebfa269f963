"""Pair protocols (the data layer: training and evaluation both draw their pairs here).

Paintings are indices ``0 .. N-1`` into ``artists`` (one artist name per painting).  A set of
pairs is an ``int64`` array of shape ``(P, 3)`` with rows ``(i, j, same)``: ``same`` is 1 for a
same-artist pair, 0 for a different-artist pair and -1 when unknown (an unlabelled pairs CSV).

* :func:`balanced_pairs` – the seed report's protocol: every same-artist pair plus one
  different-artist pair per positive (50 % positives).
* :func:`natural_pairs` – all pairs, or a uniform sample (~1 % positives on Kaggle-like data).
* :func:`read_pairs_csv` – pairs from a ``image1,image2[,same]`` CSV.
* :func:`split_pairs` / :func:`balanced_test_sets` – the report's seen / unseen / mixed test sets.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Mapping, Sequence

import numpy as np

from painterid.core.errors import DataError
from painterid.core.io import check_columns
from painterid.core.registry import Registry

__all__ = [
    "balanced_pairs",
    "natural_pairs",
    "read_pairs_csv",
    "split_pairs",
    "balanced_test_sets",
    "MAX_ALL_PAIRS",
]

@dataclass(frozen=True)
class Choice:
    """A named choice with a one-line help (pair protocols, test splits)."""

    name: str
    help: str


#: How test pairs are drawn (`evaluate --protocol`).
PROTOCOLS: Registry[Choice] = Registry("protocol")
PROTOCOLS.register(Choice("balanced", "the seed report's: every same-artist pair and as many different (50% same)"))
PROTOCOLS.register(Choice("natural", "all pairs, or a uniform sample (~1% same on Kaggle-like data)"))

#: The seed report's test sets (`evaluate --split`): pairs of seen artists, unseen artists, both mixed; or all three.
SPLITS: Registry[Choice] = Registry("split")
for _name, _help in (("seen", "both artists trained on"), ("unseen", "neither artist trained on"),
                     ("mixed", "every pair of a test set mixing seen and unseen artists"),
                     ("all", "seen, unseen and mixed")):
    SPLITS.register(Choice(_name, _help))

#: natural_pairs refuses to materialise more pairs than this without ``n_pairs``.
MAX_ALL_PAIRS = 20_000_000

_EMPTY = np.zeros((0, 3), dtype=np.int64)


def artist_codes(artists: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(unique names, integer code per painting)."""
    names = np.asarray([str(a) for a in artists], dtype=object)
    if names.size == 0:
        return np.asarray([], dtype=object), np.zeros(0, dtype=np.int64)
    uniq, codes = np.unique(names.astype(str), return_inverse=True)
    return uniq, codes.astype(np.int64).reshape(-1)


def _triu_from_linear(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map linear indices ``k`` of the pairs ``i < j`` of ``n`` items (ordered by i, then j) to (i, j).

    ``n`` may be a scalar or an array of the same shape as ``k`` (one item count per index).
    """
    k = np.asarray(k, dtype=np.int64)
    n = np.broadcast_to(np.asarray(n, dtype=np.int64), k.shape)
    nf = n.astype(np.float64)
    i = (nf - 2 - np.floor(np.sqrt(-8.0 * k + 4.0 * nf * (nf - 1) - 7) / 2.0 - 0.5)).astype(np.int64)

    def start(r):  # linear index of the pair (r, r + 1)
        return r * (2 * n - r - 1) // 2

    # Guard against floating-point error near perfect squares.
    for _ in range(2):
        i = np.where(k < start(i), i - 1, i)
        i = np.where(k >= start(i + 1), i + 1, i)
    j = k - start(i) + i + 1
    return i, j


def _pair_keys(i: np.ndarray, j: np.ndarray, n: int) -> np.ndarray:
    lo = np.minimum(i, j).astype(np.int64)
    hi = np.maximum(i, j).astype(np.int64)
    return lo * np.int64(max(n, 1)) + hi


# --------------------------------------------------------------------------- balanced pairs


def balanced_pairs(artists: Sequence[str], seed: int = 0, max_pos: int | None = None) -> np.ndarray:
    """The seed report's balanced protocol: all same-artist pairs and as many different-artist pairs.

    Positives: every pair ``i < j`` of paintings by the same artist, i.e. ``sum_a C(n_a, 2)`` of
    them (or a seeded uniform sample of ``max_pos`` of them, drawn without materialising the rest).
    Negatives: for each positive ``(i, j)`` one of its two paintings, chosen at random, is paired
    with a painting drawn uniformly from all paintings of *other* artists (so an artist is chosen
    with probability proportional to its painting count).  No pair occurs twice; if the data hold
    too few distinct different-artist pairs the shortfall is dropped with a warning.

    Returns ``int64 (P, 3)`` rows ``(i, j, same)`` with ``i < j``: the positives (ordered by
    ``i, j``) followed by the negatives (the k-th negative was made from the k-th positive).
    Deterministic for a ``seed``.  No positives → the empty ``(0, 3)`` array (the caller warns).
    Raises :class:`DataError` when there are positives but only one artist.
    """
    uniq, codes = artist_codes(artists)
    n = codes.size
    if n == 0:
        return _EMPTY.copy()
    rng = np.random.default_rng(seed)
    order = np.argsort(codes, kind="stable")  # paintings grouped by artist
    counts = np.bincount(codes, minlength=uniq.size).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_pairs_per = counts * (counts - 1) // 2
    total = int(n_pairs_per.sum())
    if total == 0:
        return _EMPTY.copy()
    if uniq.size < 2:
        raise DataError("balanced pairs need at least two artists (no different-artist pair exists)")

    if max_pos is not None and max_pos < 0:
        raise ValueError(f"max_pos must be >= 0, got {max_pos}")
    g = _Groups(codes, order, counts, starts, n_pairs_per)
    pos_i, pos_j = _positives(g, total, max_pos, rng)
    if pos_i.size == 0:
        return _EMPTY.copy()
    anchor, partner, keep = _negatives(g, pos_i, pos_j, rng)
    neg_i = np.minimum(anchor, partner)[keep]
    neg_j = np.maximum(anchor, partner)[keep]

    pos = np.stack([pos_i, pos_j, np.ones_like(pos_i)], axis=1)
    neg = np.stack([neg_i, neg_j, np.zeros_like(neg_i)], axis=1)
    return np.concatenate([pos, neg]).astype(np.int64)



@dataclass(frozen=True)
class _Groups:
    """Paintings grouped by artist: codes, the grouping order, count and start of each artist, pairs per artist."""

    codes: np.ndarray
    order: np.ndarray
    counts: np.ndarray
    starts: np.ndarray
    n_pairs_per: np.ndarray


def _positives(g: _Groups, total: int, max_pos: int | None, rng) -> tuple[np.ndarray, np.ndarray]:
    """Every same-artist pair (or a seeded sample of `max_pos`), as (i, j) with i < j ordered by (i, j)."""
    if max_pos is None or max_pos >= total:
        lin = np.arange(total, dtype=np.int64)
    else:
        lin = np.sort(rng.choice(total, size=int(max_pos), replace=False)).astype(np.int64)
    cum = np.cumsum(g.n_pairs_per)
    grp = np.searchsorted(cum, lin, side="right")
    within = lin - (cum[grp] - g.n_pairs_per[grp])
    a, b = _triu_from_linear(within, g.counts[grp])
    pi = g.order[g.starts[grp] + a]
    pj = g.order[g.starts[grp] + b]
    pos_i, pos_j = np.minimum(pi, pj), np.maximum(pi, pj)
    srt = np.lexsort((pos_j, pos_i))
    return pos_i[srt], pos_j[srt]


def _negatives(g: _Groups, pos_i: np.ndarray, pos_j: np.ndarray, rng):
    """For each positive, one of its paintings (the anchor) and a random painting of another artist; no pair twice.
    Returns (anchor, partner, keep)."""
    codes, order, counts, starts = g.codes, g.order, g.counts, g.starts
    n, n_pos = codes.size, pos_i.size
    anchor = np.where(rng.integers(0, 2, size=n_pos) == 0, pos_i, pos_j)
    a_code = codes[anchor]
    n_other = n - counts[a_code]  # > 0 since there are >= 2 artists

    def draw(sel: np.ndarray) -> np.ndarray:
        """A uniformly random painting of another artist for each anchor in ``sel``."""
        u = (rng.random(sel.size) * n_other[sel]).astype(np.int64)
        u = np.minimum(u, n_other[sel] - 1)
        s = starts[a_code[sel]]
        pos = np.where(u < s, u, u + counts[a_code[sel]])
        return order[pos]

    partner = draw(np.arange(n_pos))
    keep = np.ones(n_pos, dtype=bool)
    for _ in range(100):
        keys = _pair_keys(anchor, partner, n)
        _, first = np.unique(keys, return_index=True)
        dup = np.ones(n_pos, dtype=bool)
        dup[first] = False
        if not dup.any():
            break
        redo = np.flatnonzero(dup)
        # re-pick which painting of the positive is the anchor, then a new partner
        anchor[redo] = np.where(rng.integers(0, 2, size=redo.size) == 0, pos_i[redo], pos_j[redo])
        a_code[redo] = codes[anchor[redo]]
        n_other[redo] = n - counts[a_code[redo]]
        partner[redo] = draw(redo)
    else:
        keys = _pair_keys(anchor, partner, n)
        _, first = np.unique(keys, return_index=True)
        keep[:] = False
        keep[first] = True
        warnings.warn(
            f"balanced_pairs: only {int(keep.sum())} distinct different-artist pairs could be drawn "
            f"for {n_pos} same-artist pairs; {int((~keep).sum())} negatives dropped",
            stacklevel=2,
        )
    return anchor, partner, keep


# --------------------------------------------------------------------------- natural pairs


def natural_pairs(artists: Sequence[str], n_pairs: int | None = None, seed: int = 0) -> np.ndarray:
    """All pairs ``i < j`` (or a seeded uniform sample of ``n_pairs`` distinct ones), labelled by artist.

    This is the natural distribution (about 1 % same-artist on Kaggle-like data).  Rows are
    ``(i, j, same)`` ordered by ``i, j``.  Without ``n_pairs`` more than :data:`MAX_ALL_PAIRS`
    pairs raise :class:`DataError` (pass ``n_pairs``); ``n_pairs >= N(N-1)/2`` gives all pairs.
    """
    _, codes = artist_codes(artists)
    n = codes.size
    total = n * (n - 1) // 2
    if total == 0:
        return _EMPTY.copy()
    if n_pairs is not None and n_pairs < 0:
        raise ValueError(f"n_pairs must be >= 0, got {n_pairs}")
    if n_pairs is None or n_pairs >= total:
        if total > MAX_ALL_PAIRS:
            raise DataError(
                f"{n} paintings make {total:,} pairs, more than {MAX_ALL_PAIRS:,}; pass n_pairs to sample")
        i, j = np.triu_indices(n, k=1)
    else:
        rng = np.random.default_rng(seed)
        lin = np.sort(rng.choice(total, size=int(n_pairs), replace=False)).astype(np.int64)
        i, j = _triu_from_linear(lin, n)
    i = i.astype(np.int64)
    j = j.astype(np.int64)
    same = (codes[i] == codes[j]).astype(np.int64)
    return np.stack([i, j, same], axis=1)


# --------------------------------------------------------------------------- pairs CSV

_TRUE = {"1", "1.0", "true", "yes", "same", "y", "t"}
_FALSE = {"0", "0.0", "false", "no", "different", "n", "f"}


def _same_label(p: Path, r: int, value: str | None) -> int:
    """1 / 0 from a `same` cell (1/0, true/false, yes/no), -1 when empty."""
    cell = (value or "").strip().lower()
    if cell in _TRUE:
        return 1
    if cell in _FALSE:
        return 0
    if cell not in ("", "-1", "nan", "none"):
        raise DataError(f"{p}: line {r + 2}: 'same' must be 1/0 or true/false, got {value!r}")
    return -1


def read_pairs_csv(path, name_to_index: Mapping[str, int]) -> np.ndarray:
    """Read pairs from a CSV with a header ``image1,image2[,same]`` (other columns are ignored).

    ``image1``/``image2`` are looked up in ``name_to_index`` as written, then by their base file
    name (``a/b/1.jpg`` → ``1.jpg``).  ``same`` may be 1/0, true/false, yes/no; when the column is
    absent (or a cell is empty) the label is -1.  Rows are ``(index1, index2, same)`` in file
    order, columns as written.

    Raises :class:`DataError` for a missing/empty file, missing columns, unknown file names (all
    are counted, the first few listed), a bad ``same`` value, or a pair listed twice with
    conflicting labels.  Exact duplicate pairs (in either order) are dropped with a warning,
    keeping the first; so are pairs of a painting with itself.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"pairs file not found: {p}")
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip() for f in (reader.fieldnames or [])]
            if not fields:
                raise DataError(f"{p}: empty pairs file (needs a header row 'image1,image2[,same]')")
            reader.fieldnames = check_columns(p, fields, ("image1", "image2"), expected="image1,image2[,same]")
            has_same = "same" in fields
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not UTF-8 text (byte {exc.start}); save the pairs CSV as UTF-8") from None
    except csv.Error as exc:
        raise DataError(f"{p}: malformed CSV ({exc})") from None

    def look(name: str | None):
        name = (name or "").strip()
        if name in name_to_index:
            return int(name_to_index[name])
        base = PurePath(name).name
        if base in name_to_index:
            return int(name_to_index[base])
        return None

    unknown: list[str] = []
    out = np.empty((len(rows), 3), dtype=np.int64)
    for r, row in enumerate(rows):
        i, j = look(row.get("image1")), look(row.get("image2"))
        for name, idx in ((row.get("image1"), i), (row.get("image2"), j)):
            if idx is None:
                unknown.append((name or "").strip())
        same = _same_label(p, r, row.get("same")) if has_same else -1
        out[r] = (-1 if i is None else i, -1 if j is None else j, same)
    if unknown:
        uniq = list(dict.fromkeys(unknown))
        raise DataError(
            f"{p}: {len(uniq)} file name(s) ({len(unknown)} occurrence(s)) are not in the data set, "
            f"e.g. {', '.join(repr(u) for u in uniq[:5])}")

    return _deduplicated(p, out)


def _deduplicated(p: Path, out: np.ndarray) -> np.ndarray:
    """Drop self-pairs and exact duplicates (either order) with a warning; refuse contradicting labels."""
    selfpairs = out[:, 0] == out[:, 1]
    if selfpairs.any():
        warnings.warn(f"{p}: dropped {int(selfpairs.sum())} pair(s) of a painting with itself", stacklevel=2)
        out = out[~selfpairs]
    if out.shape[0] == 0:
        return _EMPTY.copy()
    n = int(out[:, :2].max()) + 1
    keys = _pair_keys(out[:, 0], out[:, 1], n)
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    # conflicting labels for the same pair
    first_label = out[first[inverse], 2]
    conflict = (out[:, 2] != first_label)
    if conflict.any():
        r = int(np.flatnonzero(conflict)[0])
        raise DataError(
            f"{p}: {int(conflict.sum())} duplicate pair(s) contradict an earlier label, "
            f"e.g. data row {r + 1} ({int(out[r, 0])}, {int(out[r, 1])})")
    if first.size < out.shape[0]:
        warnings.warn(f"{p}: dropped {out.shape[0] - first.size} duplicate pair(s)", stacklevel=2)
        out = out[np.sort(first)]
    return out


# --------------------------------------------------------------------------- seen / unseen / mixed


def split_pairs(pairs, artists: Sequence[str], train_artists) -> dict[str, np.ndarray]:
    """Split test pairs by whether their artists were seen in training.

    Keys (each an ``int64 (P, 3)`` subset of ``pairs``, in the original order):

    * ``"seen"``   – both paintings' artists are in ``train_artists``;
    * ``"unseen"`` – neither painting's artist is in ``train_artists``;
    * ``"cross"``  – exactly one of the two is; since a same-artist pair has one artist, these are
      always *different-artist* pairs (negatives only), so on their own they have no AUC;
    * ``"mixed"``  – every pair of the given set: the seed report's "Mix" test set is a test set
      drawn from a *mixture* of seen and unseen artists, i.e. it contains seen–seen, unseen–unseen
      and seen–unseen pairs.  Pass pairs built over a pool of paintings of both seen and unseen
      artists (e.g. :func:`balanced_pairs` over that pool) to get it; :func:`balanced_test_sets`
      builds all three sets balanced;
    * ``"all"``    – the same pairs as ``"mixed"`` (kept so callers can iterate over a fixed name).

    ``seen`` ∪ ``unseen`` ∪ ``cross`` = ``all``, disjointly.  Note that ``seen`` and ``unseen``
    subsets of a balanced pool are generally *not* balanced (the cross negatives go elsewhere).
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 3)
    names = np.asarray([str(a) for a in artists], dtype=object)
    train = {str(a) for a in train_artists}
    is_seen = np.fromiter((a in train for a in names), dtype=bool, count=names.size)
    if pairs.size and (pairs[:, :2].min() < 0 or pairs[:, :2].max() >= names.size):
        raise DataError(f"pairs refer to painting indices outside 0..{names.size - 1}")
    s1 = is_seen[pairs[:, 0]]
    s2 = is_seen[pairs[:, 1]]
    return {
        "seen": pairs[s1 & s2],
        "unseen": pairs[~s1 & ~s2],
        "cross": pairs[s1 ^ s2],
        "mixed": pairs.copy(),
        "all": pairs.copy(),
    }


def balanced_test_sets(
    artists: Sequence[str],
    train_artists,
    indices: Sequence[int] | None = None,
    seed: int = 0,
    max_pos: int | None = None,
) -> dict[str, np.ndarray]:
    """The report's three balanced test sets over the test paintings ``indices`` (default: all).

    ``"seen"``: :func:`balanced_pairs` over the paintings whose artist is in ``train_artists``;
    ``"unseen"``: over those whose artist is not; ``"mixed"``: over all of them together (so its
    negatives include seen–unseen pairs).  Row indices are global painting indices.  A set with
    no positives is an empty ``(0, 3)`` array.
    """
    names = np.asarray([str(a) for a in artists], dtype=object)
    idx = np.arange(names.size) if indices is None else np.asarray(indices, dtype=np.int64)
    train = {str(a) for a in train_artists}
    seen_mask = np.fromiter((names[k] in train for k in idx), dtype=bool, count=idx.size)
    out = {}
    for key, sub in (("seen", idx[seen_mask]), ("unseen", idx[~seen_mask]), ("mixed", idx)):
        sub_names = names[sub]
        if len(set(sub_names.tolist())) < 2:
            out[key] = _EMPTY.copy()
            continue
        p = balanced_pairs(sub_names, seed=seed, max_pos=max_pos)
        p[:, 0] = sub[p[:, 0]]
        p[:, 1] = sub[p[:, 1]]
        lo, hi = np.minimum(p[:, 0], p[:, 1]), np.maximum(p[:, 0], p[:, 1])
        p[:, 0], p[:, 1] = lo, hi
        out[key] = p
    return out
