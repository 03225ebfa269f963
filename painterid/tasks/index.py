"""ArtistIndex: nearest paintings and nearest artists over FAISS.

Layout of an index directory::

    INDEX/config.json               format version, index kind, dim, n, n_subcentres, embedding config
    INDEX/index.faiss               the painting index (faiss.write_index of the CPU index)
    INDEX/paintings.csv             row,file,artist of every indexed painting (row = id in index.faiss)
    INDEX/prototypes.safetensors    per-artist prototypes [P, D] float32 + artist_ids [P] int64
    INDEX/prototype_artists.json    artist names; artist_ids index into this list

Vectors are expected L2-normalised, so inner product is cosine similarity. The directory is written to a
temporary sibling and renamed into place: a crash never leaves a half-written index. No pickle anywhere.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Sequence

import faiss
import numpy as np
from safetensors.numpy import load_file, save_file

from painterid.core.device import faiss_gpu_available as gpu_available
from painterid.core.errors import ArtefactError, DataError
from painterid.core.io import atomic_dir, check_kind, check_replaceable, read_stable
from painterid.core.version import __version__
from painterid.tasks.index_kinds import INDEX_KINDS

FORMAT_VERSION = 1
ARTEFACT = "painterid.artist-index"
KINDS = INDEX_KINDS.names()
#: `kind="auto"` uses an exact flat index up to this many vectors, HNSW above.
AUTO_APPROX_THRESHOLD = 200_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128

CONFIG = "config.json"
INDEX = "index.faiss"
PAINTINGS = "paintings.csv"
PROTOTYPES = "prototypes.safetensors"
PROTOTYPE_ARTISTS = "prototype_artists.json"
REQUIRED_FILES = (CONFIG, INDEX, PAINTINGS, PROTOTYPES, PROTOTYPE_ARTISTS)


# -- helpers ----------------------------------------------------------------------------------------
def _to_gpu(index: faiss.Index, kind: str, use_gpu: bool | None) -> faiss.Index:
    """A GPU copy of `index` when wanted and possible (flat and IVF only), else `index` itself."""
    if use_gpu is False or kind not in ("flat", "ivf") or not gpu_available():
        return index
    try:  # pragma: no cover - needs a GPU build of faiss
        return faiss.index_cpu_to_all_gpus(index)
    except Exception:  # pragma: no cover
        return index


def _as_matrix(x: Any, dim: int | None = None, what: str = "queries") -> np.ndarray:
    """`x` as a contiguous float32 [Q, D] matrix (a single [D] vector becomes [1, D])."""
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a [N, D] matrix, got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ArtefactError(f"{what} have dimension {arr.shape[1]} but the index has dimension {dim}; "
                            "embed with the settings the index was built with")
    return np.ascontiguousarray(arr)


def _json_normalise(obj: Any) -> Any:
    """`obj` as it reads back from JSON (tuples become lists), so configs compare like for like."""
    try:
        return json.loads(json.dumps(obj, sort_keys=True))
    except (TypeError, ValueError) as e:
        raise ValueError(f"embedding_config must be JSON-serialisable: {e}") from None


def _config_diff(stored: Any, expected: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two JSON-like values differ."""
    if isinstance(stored, dict) and isinstance(expected, dict):
        out: list[str] = []
        for key in sorted(set(stored) | set(expected), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in stored or key not in expected:
                out.append(name)
            else:
                out.extend(_config_diff(stored[key], expected[key], name))
        return out
    return [] if stored == expected else [prefix or "<config>"]


def _lookup(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(cfg, dict) or part not in cfg:
            return "<absent>"
        cfg = cfg[part]
    return cfg


def _short(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) and value == "<absent>" else json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[: width - 3] + "..."


def recall_at_k(approx_idx: np.ndarray, exact_idx: np.ndarray) -> float:
    """Mean fraction of the exact top-k (per query row) found in the approximate top-k.

    Both are [Q, k] id matrices (as returned by `search_paintings`); -1 entries (no result) are ignored in
    `exact_idx` and never count as hits in `approx_idx`.
    """
    approx = np.asarray(approx_idx)
    exact = np.asarray(exact_idx)
    if approx.ndim == 1:
        approx = approx[None, :]
    if exact.ndim == 1:
        exact = exact[None, :]
    if approx.shape[0] != exact.shape[0]:
        raise ValueError(f"approx_idx has {approx.shape[0]} rows but exact_idx has {exact.shape[0]}")
    hits = total = 0
    for a, e in zip(approx, exact):
        truth = {int(i) for i in e if i >= 0}
        total += len(truth)
        hits += len(truth.intersection(int(i) for i in a if i >= 0))
    return float(hits / total) if total else 1.0


# -- the index --------------------------------------------------------------------------------------
def _check_embedding(root: Path, have: dict, want: dict) -> None:
    """Refuse an index built with other embedding settings than `want`, naming the first differences."""
    expected = _json_normalise(want)
    diff = _config_diff(have, expected)
    if diff:
        detail = ", ".join(f"{k} (index: {_short(_lookup(have, k))}, now: {_short(_lookup(expected, k))})"
                           for k in diff[:5])
        more = f" and {len(diff) - 5} more" if len(diff) > 5 else ""
        raise ArtefactError(f"{root}: index was built with other embedding settings, differing in "
                            f"{detail}{more}; rebuild the index with `painterid index build`")


class ArtistIndex:
    """Paintings (exact or approximate inner-product index) plus per-artist prototypes.

    Build with `ArtistIndex.build`, open with `ArtistIndex.load`. Scores are inner products of
    L2-normalised vectors, i.e. cosine similarities; queries are expected L2-normalised too.
    """

    def __init__(self, index: faiss.Index, files: list[str], artists: list[str], prototypes: np.ndarray,
                 prototype_artist_ids: np.ndarray, prototype_artists: list[str], config: dict,
                 use_gpu: bool | None = None):
        self.config = config
        self.kind: str = config["kind"]
        self.dim: int = int(config["dim"])
        self.n_subcentres: int = int(config["n_subcentres"])
        self.embedding_config: dict = config["embedding_config"]
        self.files = list(files)
        self.artists = list(artists)
        self.prototypes = np.ascontiguousarray(prototypes, dtype=np.float32)
        self.prototype_artist_ids = np.asarray(prototype_artist_ids, dtype=np.int64)
        self.prototype_artists = list(prototype_artists)
        self._cpu_index = index
        self._apply_search_params(index, config.get("search_params", {}))
        if self.kind == "ivf":  # lets reconstruct() fetch stored vectors by row
            faiss.extract_index_ivf(index).make_direct_map()
        self._index = _to_gpu(index, self.kind, use_gpu)
        self._proto_index = faiss.IndexFlatIP(self.dim)
        self._proto_index.add(self.prototypes)
        counts = np.bincount(self.prototype_artist_ids, minlength=len(self.prototype_artists))
        self._max_protos_per_artist = int(counts.max()) if counts.size else 1
        self._rows_by_artist: dict[str, np.ndarray] | None = None

    # -- building --------------------------------------------------------------------------------
    @classmethod
    def build(cls, vectors: np.ndarray, files: Sequence[str], artists: Sequence[str],
              embedding_config: dict, kind: str = "auto", n_subcentres: int = 1, seed: int = 0,
              use_gpu: bool | None = None) -> "ArtistIndex":
        """Index `vectors` [N, D] (one row per painting, L2-normalised) of `files` by `artists`.

        `kind`: "flat" (exact), "hnsw" or "ivf" (approximate), or "auto" (flat up to
        AUTO_APPROX_THRESHOLD vectors, HNSW above). `n_subcentres` > 1 gives artists with at least
        2 * n_subcentres paintings up to that many k-means prototypes. `use_gpu`: None uses a GPU when
        faiss has one, False never does.
        """
        INDEX_KINDS.get(kind)  # an unknown kind: one line naming the valid ones
        if int(n_subcentres) < 1:
            raise ValueError(f"n_subcentres must be >= 1, got {n_subcentres}")
        n_subcentres = int(n_subcentres)
        x = np.array(vectors, dtype=np.float32, copy=True)
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise DataError(f"need a non-empty [N, D] matrix of embeddings, got shape {x.shape}")
        n, d = x.shape
        files = [str(f) for f in files]
        artists = [str(a) for a in artists]
        if len(files) != n or len(artists) != n:
            raise DataError(f"{n} vectors but {len(files)} files and {len(artists)} artists")
        if not np.isfinite(x).all():
            raise DataError("embeddings contain NaN or infinite values")
        norms = np.linalg.norm(x, axis=1)
        if (norms < 1e-12).any():
            raise DataError(f"{int((norms < 1e-12).sum())} embeddings are all zeros")
        x /= norms[:, None]  # idempotent for normalised input
        x = np.ascontiguousarray(x)

        if kind == "auto":
            kind = "flat" if n <= AUTO_APPROX_THRESHOLD else "hnsw"
        index, search_params = cls._make_painting_index(x, kind, seed)

        names = sorted(set(artists))
        protos, proto_ids = cls._make_prototypes(x, artists, names, n_subcentres, seed)
        config = {
            "artefact": ARTEFACT,
            "format_version": FORMAT_VERSION,
            "painterid_version": __version__,
            "kind": kind,
            "metric": "inner_product",
            "dim": int(d),
            "n": int(n),
            "n_artists": len(names),
            "n_prototypes": int(protos.shape[0]),
            "n_subcentres": n_subcentres,
            "seed": int(seed),
            "search_params": search_params,
            "embedding_config": _json_normalise(embedding_config),
        }
        return cls(index, files, artists, protos, proto_ids, names, config, use_gpu=use_gpu)

    @staticmethod
    def _make_painting_index(x: np.ndarray, kind: str, seed: int) -> tuple[faiss.Index, dict]:
        n, d = x.shape
        if kind == "flat":
            index = faiss.IndexFlatIP(d)
            params: dict = {}
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            params = {"ef_search": HNSW_EF_SEARCH}
        else:  # ivf
            nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = int(seed)
            index.cp.min_points_per_centroid = 1
            rng = np.random.default_rng(seed)
            sample = min(n, 256 * nlist)
            train = x if sample == n else x[np.sort(rng.choice(n, size=sample, replace=False))]
            index.train(np.ascontiguousarray(train))
            params = {"nprobe": int(min(nlist, max(16, nlist // 8)))}
        ArtistIndex._apply_search_params(index, params)
        index.add(x)
        return index, params

    @staticmethod
    def _apply_search_params(index: faiss.Index, params: dict) -> None:
        if "ef_search" in params and hasattr(index, "hnsw"):
            index.hnsw.efSearch = int(params["ef_search"])
        if "nprobe" in params:
            try:
                faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])
            except Exception:
                pass

    @staticmethod
    def _make_prototypes(x: np.ndarray, artists: list[str], names: list[str], n_subcentres: int,
                         seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Per artist: the re-normalised mean, or up to `n_subcentres` spherical k-means centres."""
        d = x.shape[1]
        code = {a: i for i, a in enumerate(names)}
        labels = np.fromiter((code[a] for a in artists), dtype=np.int64, count=len(artists))
        protos: list[np.ndarray] = []
        ids: list[int] = []
        # rows grouped by artist once (stable: each artist's rows keep their order), not one mask per artist,
        # which took 6.5 s at 1M paintings of 10k artists (docs/PERFORMANCE.md)
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(len(names) + 1))
        for aid in range(len(names)):
            mine = np.ascontiguousarray(x[order[bounds[aid]:bounds[aid + 1]]])
            if n_subcentres > 1 and mine.shape[0] >= 2 * n_subcentres:
                km = faiss.Kmeans(d, n_subcentres, niter=25, seed=int(seed) + aid, spherical=True,
                                  min_points_per_centroid=1, max_points_per_centroid=1 << 30)
                km.train(mine)
                _, assign = km.index.search(mine, 1)
                used = np.unique(assign[:, 0])
                centres = [mine[assign[:, 0] == c].mean(axis=0) for c in used if c >= 0]
            else:
                centres = [mine.mean(axis=0)]
            for c in centres:
                norm = float(np.linalg.norm(c))
                protos.append(c / norm if norm > 1e-12 else mine[0])
                ids.append(aid)
        return (np.ascontiguousarray(np.stack(protos).astype(np.float32)).reshape(-1, d),
                np.asarray(ids, dtype=np.int64))

    # -- searching -------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.files)

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return (f"ArtistIndex(kind={self.kind!r}, n={self.n}, dim={self.dim}, "
                f"artists={len(self.prototype_artists)}, prototypes={self.prototypes.shape[0]})")

    def search_paintings(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k paintings per query: (scores [Q, k] float32, rows [Q, k] int64), best first.

        `k` is capped at the number of paintings. Rows index `files`/`artists`; an approximate index may
        return -1 (score -inf) where it found fewer than k.
        """
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = _as_matrix(queries, self.dim)
        k = min(int(k), self.n)
        index = self._index if k <= 2048 else self._cpu_index  # GPU faiss caps k at 2048
        scores, idx = index.search(q, k)
        scores = np.where(idx < 0, -np.inf, scores).astype(np.float32)
        return scores, idx.astype(np.int64)

    def search_artists(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Top-k distinct artists per query by their best prototype: [[(artist, score), ...], ...]."""
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = _as_matrix(queries, self.dim)
        k = min(int(k), len(self.prototype_artists))
        # the top k * (most prototypes of one artist) prototypes always hold k distinct artists
        kp = min(self.prototypes.shape[0], k * self._max_protos_per_artist)
        scores, idx = self._proto_index.search(q, kp)
        out: list[list[tuple[str, float]]] = []
        for srow, irow in zip(scores, idx):
            seen: set[int] = set()
            best: list[tuple[str, float]] = []
            for s, i in zip(srow, irow):
                if i < 0:
                    continue
                aid = int(self.prototype_artist_ids[i])
                if aid in seen:
                    continue
                seen.add(aid)
                best.append((self.prototype_artists[aid], float(s)))
                if len(best) == k:
                    break
            out.append(best)
        return out

    search = search_artists

    def _rows_of(self, artist: str) -> np.ndarray:
        if self._rows_by_artist is None:
            groups: dict[str, list[int]] = {}
            for row, a in enumerate(self.artists):
                groups.setdefault(a, []).append(row)
            self._rows_by_artist = {a: np.asarray(r, dtype=np.int64) for a, r in groups.items()}
        rows = self._rows_by_artist.get(str(artist))
        if rows is None:
            raise DataError(f"artist {artist!r} is not in this index ({len(self.prototype_artists)} artists)")
        return rows

    def vectors_of(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The stored (normalised) vectors of painting `rows` [R, D]."""
        rows = np.ascontiguousarray(np.asarray(rows, dtype=np.int64).ravel())
        if rows.size == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._cpu_index.reconstruct_batch(rows), dtype=np.float32).reshape(-1, self.dim)

    def nearest_paintings_of(self, query: np.ndarray, artist: str, k: int) -> list[tuple[str, float]]:
        """The k paintings of `artist` closest to one query vector (exact): [(file, score), ...], best first."""
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = _as_matrix(query, self.dim, what="query")
        if q.shape[0] != 1:
            raise ValueError(f"nearest_paintings_of takes one query vector, got {q.shape[0]}")
        rows = self._rows_of(artist)
        sims = self.vectors_of(rows) @ q[0]
        order = np.argsort(-sims, kind="stable")[: int(k)]
        return [(self.files[int(rows[j])], float(sims[j])) for j in order]

    # -- saving and loading ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the index directory atomically (temporary sibling, then rename into place)."""
        target = Path(path)
        check_replaceable(target, "artefact", ARTEFACT, "an artist index")
        try:
            with atomic_dir(target) as tmp:  # a second `index build --out` here waits; readers use read_stable
                self._write(tmp)
        except Exception as e:
            if isinstance(e, OSError) or re.search(r"write error|I/O error", str(e)):
                # faiss reports a full disk as a RuntimeError "... write error in FILE ... (reason)"
                reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).strip()
                m = re.search(r"\(([^()]+)\)$", reason)
                reason = m.group(1) if m and not isinstance(e, OSError) else reason.splitlines()[0]
                what = "the previous index is kept" if target.exists() else "nothing was written"
                raise ArtefactError(f"cannot write index to {target}: {reason}; {what}") from e
            raise
        return target

    def _write(self, root: Path) -> None:
        faiss.write_index(self._cpu_index, str(root / INDEX))
        with open(root / PAINTINGS, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["row", "file", "artist"])
            for row, (f, a) in enumerate(zip(self.files, self.artists)):
                w.writerow([row, f, a])
        save_file({"prototypes": self.prototypes, "artist_ids": self.prototype_artist_ids},
                  str(root / PROTOTYPES))
        (root / PROTOTYPE_ARTISTS).write_text(json.dumps(self.prototype_artists, ensure_ascii=False),
                                              encoding="utf-8")
        config = dict(self.config, painterid_version=__version__)
        (root / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike, expected_embedding_config: dict | None = None,
             use_gpu: bool | None = None) -> "ArtistIndex":
        """Open an index directory; with `expected_embedding_config`, refuse one built with other settings."""
        return read_stable(path, lambda: cls._load_once(path, expected_embedding_config, use_gpu))

    @classmethod
    def _load_once(cls, path: str | os.PathLike, expected_embedding_config: dict | None = None,
                   use_gpu: bool | None = None) -> "ArtistIndex":
        root = Path(path)
        if not root.is_dir():
            raise ArtefactError(f"{root}: no artist index here (build one with `painterid index build`)")
        missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
        if missing:
            raise ArtefactError(f"{root}: incomplete artist index, missing {', '.join(missing)}; "
                                "rebuild it with `painterid index build`")
        try:
            config = json.loads((root / CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ArtefactError(f"{root / CONFIG}: unreadable ({e})") from None
        check_kind(config, root, ARTEFACT, FORMAT_VERSION, "an artist index", kind_key="artefact",
                   fix="upgrade painterid or rebuild the index")
        for key in ("kind", "dim", "n", "n_subcentres", "embedding_config"):
            if key not in config:
                raise ArtefactError(f"{root / CONFIG}: missing {key!r}")
        if expected_embedding_config is not None:
            _check_embedding(root, config["embedding_config"], expected_embedding_config)
        try:
            index = faiss.read_index(str(root / INDEX))
        except Exception as e:
            raise ArtefactError(f"{root / INDEX}: unreadable faiss index ({str(e).splitlines()[0] if str(e) else e!r})") from None
        files: list[str] = []
        artists: list[str] = []
        try:
            with open(root / PAINTINGS, newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                header = next(reader, None)
                if header != ["row", "file", "artist"]:
                    raise ValueError(f"unexpected header {header}")
                for expect, rec in enumerate(reader):
                    if len(rec) != 3 or int(rec[0]) != expect:
                        raise ValueError(f"bad record {expect + 1}")
                    files.append(rec[1])
                    artists.append(rec[2])
            tensors = load_file(str(root / PROTOTYPES))
            protos, proto_ids = tensors["prototypes"], tensors["artist_ids"]
            names = json.loads((root / PROTOTYPE_ARTISTS).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, csv.Error) as e:
            raise ArtefactError(f"{root}: corrupt artist index ({e})") from None
        except Exception as e:  # safetensors raises its own error type on a damaged file
            raise ArtefactError(f"{root}: corrupt artist index ({type(e).__name__}: {e})") from None
        n, dim = int(config["n"]), int(config["dim"])
        problems = []
        if index.ntotal != n or index.d != dim:
            problems.append(f"index.faiss holds {index.ntotal}x{index.d}, config says {n}x{dim}")
        if len(files) != n:
            problems.append(f"paintings.csv has {len(files)} rows, config says {n}")
        if protos.ndim != 2 or protos.shape[1] != dim or proto_ids.shape != (protos.shape[0],):
            problems.append("prototype shapes do not match")
        elif (not isinstance(names, list) or proto_ids.size == 0 or proto_ids.min() < 0
              or proto_ids.max() >= len(names)):
            problems.append("prototype artist ids do not match prototype_artists.json")
        if problems:
            raise ArtefactError(f"{root}: inconsistent artist index ({'; '.join(problems)}); "
                                "rebuild it with `painterid index build`")
        return cls(index, files, artists, protos, proto_ids, [str(a) for a in names], config, use_gpu=use_gpu)
