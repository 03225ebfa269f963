import itertools
from collections import Counter

import numpy as np
import pytest

from painterid.core.errors import DataError
from painterid.data.pairs import (
    _triu_from_linear,
    balanced_pairs,
    balanced_test_sets,
    natural_pairs,
    read_pairs_csv,
    split_pairs,
)
from painterid.data.splits import split_artists

ARTISTS = ["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 1 + ["e"] * 2


def _keys(p):
    return {(int(min(i, j)), int(max(i, j))) for i, j in p[:, :2]}


def test_triu_from_linear_matches_combinations():
    for n in (2, 3, 7, 40):
        i, j = _triu_from_linear(np.arange(n * (n - 1) // 2), n)
        assert list(zip(i.tolist(), j.tolist())) == list(itertools.combinations(range(n), 2))
    n = 300_000
    k = np.random.default_rng(0).integers(0, n * (n - 1) // 2, 1000)
    i, j = _triu_from_linear(k, n)
    assert ((0 <= i) & (i < j) & (j < n)).all()
    assert (i * (2 * n - i - 1) // 2 + (j - i - 1) == k).all()


def test_balanced_pairs_counts_and_labels():
    p = balanced_pairs(ARTISTS, seed=0)
    assert p.dtype == np.int64 and p.shape[1] == 3
    n_pos_expected = 10 + 6 + 3 + 0 + 1
    pos, neg = p[p[:, 2] == 1], p[p[:, 2] == 0]
    assert len(pos) == n_pos_expected and len(neg) == n_pos_expected
    assert (p[:, 0] < p[:, 1]).all()
    a = np.array(ARTISTS)
    assert (a[pos[:, 0]] == a[pos[:, 1]]).all()
    assert (a[neg[:, 0]] != a[neg[:, 1]]).all()
    # every same-artist pair, exactly once
    expected = {(i, j) for i, j in itertools.combinations(range(len(a)), 2) if a[i] == a[j]}
    assert _keys(pos) == expected
    assert len(_keys(p)) == len(p)  # no duplicates at all
    # each negative shares a painting with the positive it was made from
    for (pi, pj, _), (ni, nj, _) in zip(pos, neg):
        assert {pi, pj} & {ni, nj}


def test_balanced_pairs_deterministic_and_seeded():
    p1, p2 = balanced_pairs(ARTISTS, seed=3), balanced_pairs(ARTISTS, seed=3)
    assert np.array_equal(p1, p2)
    assert not np.array_equal(p1, balanced_pairs(ARTISTS, seed=4))


def test_balanced_pairs_max_pos_and_edge_cases():
    rng = np.random.default_rng(1)
    artists = rng.integers(0, 20, 400).astype(str).tolist()
    full = balanced_pairs(artists)
    p = balanced_pairs(artists, seed=1, max_pos=100)
    pos = p[p[:, 2] == 1]
    assert len(pos) == 100 and (p[:, 2] == 0).sum() == 100
    assert _keys(pos) <= _keys(full[full[:, 2] == 1])
    assert len(_keys(p)) == len(p)
    assert np.array_equal(p, balanced_pairs(artists, seed=1, max_pos=100))
    # no positives -> empty (0, 3)
    assert balanced_pairs(["x", "y", "z"]).shape == (0, 3)
    assert balanced_pairs([]).shape == (0, 3)
    with pytest.raises(DataError):
        balanced_pairs(["x", "x", "x"])


def test_balanced_pairs_too_few_negatives_warns():
    # C(6,2)=15 positives but only 6 distinct negatives exist
    with pytest.warns(UserWarning, match="negatives dropped"):
        p = balanced_pairs(["a"] * 6 + ["b"], seed=0)
    neg = p[p[:, 2] == 0]
    assert len(neg) == 6 and len(_keys(neg)) == 6


def test_natural_pairs():
    p = natural_pairs(ARTISTS)
    n = len(ARTISTS)
    assert len(p) == n * (n - 1) // 2
    assert p[:, 2].sum() == 20
    a = np.array(ARTISTS)
    assert np.array_equal(p[:, 2], (a[p[:, 0]] == a[p[:, 1]]).astype(int))
    s = natural_pairs(ARTISTS, n_pairs=30, seed=2)
    assert len(s) == 30 and len(_keys(s)) == 30 and _keys(s) <= _keys(p)
    assert np.array_equal(s, natural_pairs(ARTISTS, n_pairs=30, seed=2))
    assert len(natural_pairs(ARTISTS, n_pairs=10_000)) == len(p)
    # large N: sampling works without materialising all pairs
    big = natural_pairs([str(k % 100) for k in range(100_000)], n_pairs=5000, seed=0)
    assert len(big) == 5000 and 0 < big[:, 2].mean() < 0.05
    with pytest.raises(DataError, match="n_pairs"):
        natural_pairs([str(k) for k in range(10_000)])


NAMES = {f"{k}.jpg": k for k in range(6)}


def _write(tmp_path, text):
    f = tmp_path / "pairs.csv"
    f.write_text(text)
    return f


def test_read_pairs_csv_ok_and_unlabelled(tmp_path):
    p = read_pairs_csv(_write(tmp_path, "image1,image2,same\n0.jpg,1.jpg,1\ndir/2.jpg,3.jpg,0\n"), NAMES)
    assert p.tolist() == [[0, 1, 1], [2, 3, 0]]
    p = read_pairs_csv(_write(tmp_path, "image2,image1\n5.jpg,4.jpg\n"), NAMES)
    assert p.tolist() == [[4, 5, -1]]


def test_read_pairs_csv_errors(tmp_path):
    with pytest.raises(DataError, match="image2"):
        read_pairs_csv(_write(tmp_path, "image1,other\n0.jpg,1.jpg\n"), NAMES)
    with pytest.raises(DataError, match="image1"):
        read_pairs_csv(_write(tmp_path, "0.jpg,1.jpg\n2.jpg,3.jpg\n"), NAMES)  # no header
    with pytest.raises(DataError, match=r"2 file name\(s\).*'x.jpg'"):
        read_pairs_csv(_write(tmp_path, "image1,image2\n0.jpg,x.jpg\ny.jpg,x.jpg\n"), NAMES)
    with pytest.raises(DataError, match="same"):
        read_pairs_csv(_write(tmp_path, "image1,image2,same\n0.jpg,1.jpg,maybe\n"), NAMES)
    with pytest.raises(DataError, match="contradict"):
        read_pairs_csv(_write(tmp_path, "image1,image2,same\n0.jpg,1.jpg,1\n1.jpg,0.jpg,0\n"), NAMES)
    with pytest.raises(DataError, match="not found"):
        read_pairs_csv(tmp_path / "nope.csv", NAMES)


def test_read_pairs_csv_duplicates_warn(tmp_path):
    text = "image1,image2,same\n0.jpg,1.jpg,1\n2.jpg,3.jpg,0\n1.jpg,0.jpg,1\n0.jpg,1.jpg,1\n"
    with pytest.warns(UserWarning, match="dropped 2 duplicate"):
        p = read_pairs_csv(_write(tmp_path, text), NAMES)
    assert p.tolist() == [[0, 1, 1], [2, 3, 0]]


def test_split_pairs_partitions():
    artists = ["s1", "s1", "s2", "u1", "u1", "u2"]
    pairs = np.array([
        [0, 1, 1],  # seen-seen positive
        [0, 2, 0],  # seen-seen negative
        [3, 4, 1],  # unseen positive
        [3, 5, 0],  # unseen negative
        [1, 3, 0],  # cross
        [2, 5, 0],  # cross
    ])
    out = split_pairs(pairs, artists, {"s1", "s2"})
    assert out["seen"].tolist() == pairs[:2].tolist()
    assert out["unseen"].tolist() == pairs[2:4].tolist()
    assert out["cross"].tolist() == pairs[4:].tolist()
    assert (out["cross"][:, 2] == 0).all()
    assert out["mixed"].tolist() == pairs.tolist() == out["all"].tolist()
    with pytest.raises(DataError):
        split_pairs(np.array([[0, 9, 1]]), artists, {"s1"})


def test_balanced_test_sets():
    artists = ["s1"] * 4 + ["s2"] * 3 + ["u1"] * 4 + ["u2"] * 3
    train = {"s1", "s2"}
    sets = balanced_test_sets(artists, train, seed=0)
    a = np.array(artists)
    seen = np.isin(a, list(train))
    assert (seen[sets["seen"][:, :2]]).all()
    assert (~seen[sets["unseen"][:, :2]]).all()
    for key in ("seen", "unseen", "mixed"):
        p = sets[key]
        assert (p[:, 2] == 1).sum() == (p[:, 2] == 0).sum() > 0
    assert (sets["mixed"][:, 2] == 1).sum() == 6 + 3 + 6 + 3
    # restricted to test indices, rows use global indices
    idx = [0, 1, 2, 7, 8, 9]
    sub = balanced_test_sets(artists, train, indices=idx, seed=0)
    assert set(sub["mixed"][:, :2].ravel().tolist()) <= set(idx)
    assert sub["seen"].shape == (0, 3)  # only one seen artist among the test paintings


def test_split_artists_disjoint_covering_deterministic():
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 40, 60)
    artists = [f"art{k}" for k, c in enumerate(counts) for _ in range(c)]
    s = split_artists(artists, seed=0)
    tr, va, te = set(s["train"]), set(s["val"]), set(s["test"])
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert tr | va | te == set(artists)
    assert (len(tr), len(va), len(te)) == (42, 9, 9)
    assert s == split_artists(artists, seed=0)
    assert s != split_artists(artists, seed=1)
    # prolific artists are spread: each split has artists with many paintings
    c = Counter(artists)
    top = sorted(c, key=c.get, reverse=True)[:10]
    assert set(top) & va and set(top) & te
    for names in s.values():
        assert any(c[n] >= 2 for n in names)
    # min_per_artist excludes small artists
    s2 = split_artists(artists, seed=0, min_per_artist=10)
    kept = set().union(*map(set, s2.values()))
    assert kept == {a for a in c if c[a] >= 10}


def test_split_artists_small_and_invalid():
    s = split_artists(["a", "b", "c"])
    assert all(len(v) == 1 for v in s.values())
    with pytest.raises(DataError, match="at least 3 artists"):
        split_artists(["a", "a", "b"])
    with pytest.raises(ValueError):
        split_artists(["a", "b", "c"], fractions=(0.5, 0.5, 0.5))
