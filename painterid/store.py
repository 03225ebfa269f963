"""FeatureStore: a directory of embeddings keyed by file content, resumable and safe to interrupt.

Layout::

    STORE/config.json                 what made the vectors (embedding config, format version)
    STORE/shard-00000.safetensors     vectors [n, D] float32 of one committed chunk
    STORE/shard-00000.csv             path,sha256,artist,name,source of those rows
    STORE/shard-r1-00003.*            a chunk written by rank 1 of a distributed `embed` (painterid.distributed)

A chunk is committed by renaming its `.safetensors` into place last; a `.csv` without its vectors (a run
killed in between) is ignored, so a killed `embed` never leaves rows that load half-written. Chunks load in the
order (number, rank), plain chunks before rank chunks of the same number, so the row order does not depend on
the order the file system lists them in.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .errors import ArtefactError
from .io import atomic_file, atomic_write_text, check_config_match, check_kind

FORMAT_VERSION = 1
KIND = "painterid.feature-store"
_SHARD = re.compile(r"shard-(?:r(\d+)-)?(\d{5,})\.safetensors$")
COLUMNS = ("path", "sha256", "artist", "name", "source")


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Content hash of a file (the key under which its embedding is stored)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class Row:
    path: str
    sha256: str
    artist: str = ""
    name: str = ""
    source: str = ""


class FeatureStore:
    """Embeddings of paintings plus the table of file, content hash and artist."""

    def __init__(self, root: Path, config: dict):
        self.root = Path(root)
        self.config = config
        self._rows: list[Row] = []
        self._chunks: list[np.ndarray] = []
        self._vectors: np.ndarray | None = None
        self._next_shard = 0
        self.rank: int | None = None  # set by a distributed writer: its chunks are named shard-r{rank}-NNNNN

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def create_or_open(cls, root: str | Path, embedding: dict) -> "FeatureStore":
        """Open STORE if it was made with `embedding`, else create it (refuse a mismatched one)."""
        root = Path(root)
        if (root / "config.json").is_file():
            store = cls.open(root)
            check_config_match(store.embedding, embedding, what=f"feature store {root}",
                               fix="embed into a new --out folder, or delete this one")
            return store
        if root.exists() and any(root.iterdir()):
            raise ArtefactError(f"{root}: exists, is not empty and is not a feature store")
        root.mkdir(parents=True, exist_ok=True)
        config = {"kind": KIND, "format_version": FORMAT_VERSION, "painterid_version": __version__,
                  "embedding": dict(embedding)}
        atomic_write_text(root / "config.json", json.dumps(config, indent=2, sort_keys=True))
        return cls(root, config)

    @classmethod
    def open(cls, root: str | Path) -> "FeatureStore":
        """Open an existing store; a missing or foreign directory is one clear error."""
        root = Path(root)
        cfg_path = root / "config.json"
        if not cfg_path.is_file():
            raise ArtefactError(f"{root}: not a feature store (no config.json); make one with `painterid embed`")
        try:
            config = json.loads(cfg_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ArtefactError(f"{cfg_path}: unreadable ({exc})") from None
        check_kind(config, root, KIND, FORMAT_VERSION, "a feature store")
        store = cls(root, config)
        store._load_shards()
        return store

    @staticmethod
    def is_store(path: str | Path) -> bool:
        cfg = Path(path) / "config.json"
        if not cfg.is_file():
            return False
        try:
            return json.loads(cfg.read_text()).get("kind") == KIND
        except (OSError, json.JSONDecodeError):
            return False

    def _load_shards(self) -> None:
        from safetensors.numpy import load_file

        shards = sorted((int(m.group(2)), -1 if m.group(1) is None else int(m.group(1)), p)
                        for p in self.root.iterdir() if (m := _SHARD.match(p.name)))
        for number, _rank, path in shards:
            table = path.with_suffix(".csv")
            if not table.is_file():
                raise ArtefactError(f"{path}: its table {table.name} is missing; the store is damaged")
            with open(table, newline="", encoding="utf-8") as fh:
                rows = [Row(**{k: r.get(k, "") for k in COLUMNS}) for r in csv.DictReader(fh)]
            try:
                vectors = load_file(str(path))["vectors"]
            except Exception as exc:  # safetensors raises its own error types
                raise ArtefactError(f"{path}: unreadable vectors ({exc})") from None
            if len(vectors) != len(rows):
                raise ArtefactError(f"{path}: {len(vectors)} vectors but {len(rows)} rows; the store is damaged")
            self._rows.extend(rows)
            self._chunks.append(vectors.astype(np.float32, copy=False))
            self._next_shard = max(self._next_shard, number + 1)

    # -- contents --------------------------------------------------------------------------------
    @property
    def embedding(self) -> dict:
        return self.config["embedding"]

    @property
    def rows(self) -> list[Row]:
        return self._rows

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def vectors(self) -> np.ndarray:
        if self._vectors is None or len(self._vectors) != len(self._rows):
            dim = self.embedding.get("dim", 0)
            self._vectors = np.concatenate(self._chunks) if self._chunks else np.zeros((0, dim), np.float32)
        return self._vectors

    @property
    def artists(self) -> list[str]:
        return [r.artist for r in self._rows]

    @property
    def paths(self) -> list[str]:
        return [r.path for r in self._rows]

    def by_hash(self) -> dict[str, int]:
        """Row index of each content hash (the first row that has it)."""
        out: dict[str, int] = {}
        for i, r in enumerate(self._rows):
            out.setdefault(r.sha256, i)
        return out

    def lookup(self, sha256s: list[str]) -> np.ndarray:
        """Row index per hash, -1 where the store has no vector for it."""
        table = self.by_hash()
        return np.array([table.get(h, -1) for h in sha256s], dtype=np.int64)

    # -- writing ---------------------------------------------------------------------------------
    def append(self, rows: list[Row], vectors: np.ndarray) -> None:
        """Commit one chunk of rows atomically (table first, vectors renamed into place last)."""
        from safetensors.numpy import save_file

        if len(rows) != len(vectors):
            raise ValueError("rows and vectors differ in length")
        if not rows:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        tag = "" if self.rank is None else f"r{self.rank}-"
        stem = self.root / f"shard-{tag}{self._next_shard:05d}"
        with atomic_file(stem.with_suffix(".csv"), "w", tmp=stem.with_suffix(f".csv.tmp-{os.getpid()}"),
                         newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            for r in rows:
                writer.writerow(r.__dict__)
        tmp_vec = stem.with_suffix(f".safetensors.tmp-{os.getpid()}")
        save_file({"vectors": vectors}, str(tmp_vec))
        os.replace(tmp_vec, stem.with_suffix(".safetensors"))
        self._rows.extend(rows)
        self._chunks.append(vectors)
        self._next_shard += 1

    def select(self, paths: list[str]) -> np.ndarray:
        """Row index of each path (the last row recorded for it); -1 where absent."""
        where = {r.path: i for i, r in enumerate(self._rows)}
        return np.array([where.get(p, -1) for p in paths], dtype=np.int64)
