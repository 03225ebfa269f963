"""FeatureStore: a directory of embeddings keyed by file content, resumable, safe to interrupt and to share.

Layout::

    STORE/config.json                 what made the vectors (embedding config, format version)
    STORE/shard-00000.safetensors     vectors [n, D] float32 of one committed chunk
    STORE/shard-00000.csv             path,sha256,artist,name,source of those rows
    STORE/shard-r1-00003.*            a chunk written by rank 1 of a distributed `embed` (painterid.embedding.distributed)
    STORE/.lock                       the store's lock file (filelock); held by writers, never by readers

A chunk is committed by renaming its `.safetensors` into place last; a `.csv` without its vectors (a run
killed in between) is ignored, so a killed `embed` never leaves rows that load half-written. Chunks load in the
order (number, rank), plain chunks before rank chunks of the same number, so the row order does not depend on
the order the file system lists them in.

Several processes may share a store (docs/CONCURRENCY.md). Every commit holds the store's exclusive lock, reads
the chunks other processes committed since this one last looked, drops rows the store already has and takes the
next free chunk number, so two processes never write the same chunk name. A row is one (path, sha256); a
store created with ``unique="sha256"`` (the compare cache) keeps one row per content hash. Duplicates left by
older versions are dropped on read too. Past `COMPACT_AT` chunks a commit merges them all into one
(`compact`); readers take no lock: a chunk removed by a compaction between listing and reading makes them list
again, and rows seen twice in the moment both the merged chunk and its parts exist load once.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from painterid.core.errors import ArtefactError
from painterid.core.io import atomic_write_text, check_config_match, check_kind, fsync_path
from painterid.core.locking import LOCK_FILE, locked, pid_alive
from painterid.core.version import __version__

FORMAT_VERSION = 1
KIND = "painterid.feature-store"
_SHARD = re.compile(r"shard-(?:r(\d+)-)?(\d{5,})\.safetensors$")
_TMP = re.compile(r"\.tmp-(\d+)$")
COLUMNS = ("path", "sha256", "artist", "name", "source")
COMPACT_AT = 64  # a commit that leaves more chunks than this merges them into one
NOTICE_AFTER_S = 2.0  # a commit waiting longer than this for the lock says so (a whole `embed` says at once)


def _as_os_error(exc: Exception, path: Path) -> OSError:
    """safetensors reports a full disk as its own error type; give it back as the OSError it is."""
    if isinstance(exc, OSError):
        return exc
    m = re.search(r"os error (\d+)", str(exc))
    code = int(m.group(1)) if m else errno.EIO
    return OSError(code, os.strerror(code), str(path))


def committed_chunks(root: Path) -> list[tuple[int, int, Path]]:
    """(number, rank or -1, vectors file) of every committed chunk, in load order."""
    return sorted((int(m.group(2)), -1 if m.group(1) is None else int(m.group(1)), p)
                  for p in Path(root).iterdir() if (m := _SHARD.match(p.name)))


def _read_chunk(path: Path) -> tuple[list[Row], np.ndarray]:
    """Rows and vectors of one committed chunk; FileNotFoundError when a compaction removed it meanwhile."""
    from safetensors.numpy import load_file

    table = path.with_suffix(".csv")
    try:
        with open(table, newline="", encoding="utf-8") as fh:
            rows = [Row(**{k: r.get(k, "") for k in COLUMNS}) for r in csv.DictReader(fh)]
    except FileNotFoundError:
        if path.exists():
            raise ArtefactError(f"{path}: its table {table.name} is missing; the store is damaged") from None
        raise
    try:
        vectors = load_file(str(path))["vectors"]
    except Exception as exc:  # safetensors raises its own error types
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, "removed while reading", str(path)) from None
        raise ArtefactError(f"{path}: unreadable vectors ({exc})") from None
    if len(vectors) != len(rows):
        raise ArtefactError(f"{path}: {len(vectors)} vectors but {len(rows)} rows; the store is damaged")
    return rows, vectors.astype(np.float32, copy=False)


def _write_chunk(stem: Path, rows: list[Row], vectors: np.ndarray, durable: bool = True,
                 metadata: dict[str, str] | None = None) -> None:
    """Write STEM.csv and STEM.safetensors: both under temporary names first, the vectors renamed last (the
    commit). On any failure, a full disk or a signal included, nothing of this chunk is left behind.

    ``durable``: flush both files to disk before the renames (a power cut leaves no empty chunk); a cache, which
    can be recomputed, skips it (an fsync costs tens of milliseconds per `compare` on a slow disk)."""
    import safetensors.numpy

    pid = os.getpid()
    tmp_csv, tmp_vec = Path(f"{stem}.csv.tmp-{pid}"), Path(f"{stem}.safetensors.tmp-{pid}")
    table, vec = stem.with_suffix(".csv"), stem.with_suffix(".safetensors")
    try:
        with open(tmp_csv, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            for r in rows:
                writer.writerow(r.__dict__)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        try:
            safetensors.numpy.save_file({"vectors": np.ascontiguousarray(vectors, dtype=np.float32)}, str(tmp_vec),
                                        metadata=metadata or None)
        except Exception as exc:
            raise _as_os_error(exc, tmp_vec) from None
        if durable:
            with open(tmp_vec, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp_csv, table)
        os.replace(tmp_vec, vec)
    except BaseException:
        tmp_csv.unlink(missing_ok=True)
        tmp_vec.unlink(missing_ok=True)
        if not vec.exists():
            table.unlink(missing_ok=True)
        raise
    if durable:
        fsync_path(stem.parent)


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

    def __init__(self, root: Path, config: dict, unique: str | None = None):
        self.root = Path(root)
        self.config = config
        self.unique = unique or config.get("unique", "row")  # "row": one per (path, sha256); "sha256"
        self._reset()
        self.rank: int | None = None  # set by a distributed writer: its chunks are named shard-r{rank}-NNNNN
        self.runtime: str | None = None  # what embeds the chunks appended now (recorded in each chunk's metadata)

    def _reset(self) -> None:
        self._rows: list[Row] = []
        self._chunks: list[np.ndarray] = []
        self._vectors: np.ndarray | None = None
        self._seen: set = set()
        self._loaded: list[tuple[int, int, str]] = []  # (number, rank, file name) of the chunks read
        self._next_shard = 0

    def _key(self, row: Row):
        return row.sha256 if self.unique == "sha256" else (row.path, row.sha256)

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def create_or_open(cls, root: str | Path, embedding: dict, unique: str | None = None) -> "FeatureStore":
        """Open STORE if it was made with `embedding`, else create it (refuse a mismatched one).

        ``unique="sha256"``: keep one row per content hash (a cache), instead of one per (path, sha256)."""
        root = Path(root)
        if not (root / "config.json").is_file():
            if root.exists() and _foreign(root):
                raise ArtefactError(f"{root}: exists, is not empty and is not a feature store")
            root.mkdir(parents=True, exist_ok=True)
            with locked(root, f"waiting for another process creating the store {root}", NOTICE_AFTER_S):
                if not (root / "config.json").is_file():  # two processes may create it at once: one writes
                    if _foreign(root):
                        raise ArtefactError(f"{root}: exists, is not empty and is not a feature store")
                    config = {"kind": KIND, "format_version": FORMAT_VERSION, "painterid_version": __version__,
                              "embedding": dict(embedding)}
                    if unique:
                        config["unique"] = unique
                    atomic_write_text(root / "config.json", json.dumps(config, indent=2, sort_keys=True))
        store = cls.open(root, unique=unique)
        check_config_match(store.embedding, embedding, what=f"feature store {root}",
                           fix="embed into a new --out folder, or delete this one")
        return store

    @classmethod
    def open(cls, root: str | Path, unique: str | None = None) -> "FeatureStore":
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
        store = cls(root, config, unique)
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
        """Read every committed chunk (again); a compaction removing chunks meanwhile makes it list again."""
        for _ in range(20):
            self._reset()
            try:
                for number, rank, path in committed_chunks(self.root):
                    self._add_chunk(number, rank, path.name, *_read_chunk(path))
                    self._next_shard = max(self._next_shard, number + 1)
                return
            except FileNotFoundError:
                continue
        raise ArtefactError(f"{self.root}: its chunks kept changing while being read; try again")

    def _add_chunk(self, number: int, rank: int, name: str, rows: list[Row], vectors: np.ndarray) -> None:
        """Take in one chunk, dropping the rows already held (same key)."""
        keep = []
        for i, r in enumerate(rows):
            k = self._key(r)
            if k not in self._seen:
                self._seen.add(k)
                keep.append(i)
        if len(keep) < len(rows):
            rows, vectors = [rows[i] for i in keep], vectors[keep]
        self._rows.extend(rows)
        self._chunks.append(vectors)
        self._loaded.append((number, rank, name))

    def refresh(self) -> None:
        """Take in the chunks other processes committed since this store was read (all again after a
        compaction, or when one sorts before what was read)."""
        on_disk = committed_chunks(self.root)
        names = {p.name for _, _, p in on_disk}
        loaded = {name for _, _, name in self._loaded}
        new = [c for c in on_disk if c[2].name not in loaded]
        last = max(((n, r) for n, r, _ in self._loaded), default=None)
        if not loaded <= names or (new and last is not None and (new[0][0], new[0][1]) < last):
            self._load_shards()
            return
        try:
            for number, rank, path in new:
                self._add_chunk(number, rank, path.name, *_read_chunk(path))
        except FileNotFoundError:
            self._load_shards()

    @contextlib.contextmanager
    def writing(self) -> Iterator["FeatureStore"]:
        """Hold the store's lock for a whole run of commits (an `embed`): a second writer waits, says so once,
        then sees what the first committed (so it embeds only what is still lacking)."""
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(locked(self.root, f"waiting for another painterid process writing the store "
                                                      f"{self.root} (it holds {self.root / LOCK_FILE}); continuing "
                                                      "when it finishes", quiet_s=0.0))
            except OSError as exc:  # a read-only store: fine while nothing is lacking (a commit would say why)
                if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise
            self.refresh()
            yield self

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
    def append(self, rows: list[Row], vectors: np.ndarray) -> int:
        """Commit one chunk of rows atomically under the store's lock; returns how many rows were new.

        Rows the store already holds (committed meanwhile by another process too) are not written again."""
        if len(rows) != len(vectors):
            raise ValueError("rows and vectors differ in length")
        if not rows:
            return 0
        with locked(self.root, f"waiting for the lock of the store {self.root}", NOTICE_AFTER_S):
            self.refresh()
            keep, batch = [], set()
            for i, r in enumerate(rows):
                k = self._key(r)
                if k not in self._seen and k not in batch:
                    batch.add(k)
                    keep.append(i)
            if not keep:
                return 0
            rows = [rows[i] for i in keep]
            vectors = np.ascontiguousarray(np.asarray(vectors)[keep], dtype=np.float32)
            on_disk = committed_chunks(self.root)
            if self.rank is None:
                rank, tag = -1, ""
                number = max([self._next_shard] + [n + 1 for n, _, _ in on_disk])
            else:
                rank, tag = self.rank, f"r{self.rank}-"
                number = max([self._next_shard] + [n + 1 for n, r, _ in on_disk if r == self.rank])
            stem = self.root / f"shard-{tag}{number:05d}"
            _write_chunk(stem, rows, vectors, durable=self.unique != "sha256",
                         metadata={"runtime": self.runtime} if self.runtime else None)
            self._add_chunk(number, rank, stem.name + ".safetensors", rows, vectors)
            self._next_shard = number + 1
            if len(on_disk) + 1 > COMPACT_AT:
                self._compact_locked()
        return len(rows)

    def compact(self) -> dict:
        """Merge every chunk into one, atomically, under the store's lock; returns what it did."""
        with locked(self.root, f"waiting for the writer of the store {self.root} to finish before compacting it",
                    quiet_s=0.0):
            return self._compact_locked()

    def _compact_locked(self) -> dict:
        """(lock held) Write all rows as one new chunk, then remove the chunks it replaces and leftovers of
        killed writers. A reader meanwhile sees either the old chunks, or both (rows load once), or the new."""
        self._load_shards()
        before = len(self._loaded)
        removed = 0
        if before > 1:
            number = max(n for n, _, _ in self._loaded) + 1
            stem = self.root / f"shard-{number:05d}"
            old = list(self._loaded)
            vectors = self.vectors
            counts = self.runtimes()  # the merged chunk keeps what embedded its rows
            _write_chunk(stem, self._rows, vectors, metadata={"runtimes": json.dumps(counts, sort_keys=True)})
            # Last chunk first, so that what a reader lists meanwhile is always a prefix of the old chunks plus
            # the merged one (rows then load in the same order); vectors before tables, so a visible chunk
            # never lacks its table.
            for _, _, name in reversed(old):
                (self.root / name).unlink(missing_ok=True)
                (self.root / name).with_suffix(".csv").unlink(missing_ok=True)
            removed = len(old)
            self._rows, self._chunks, self._vectors = list(self._rows), [vectors], vectors
            self._loaded = [(number, -1, stem.name + ".safetensors")]
            self._next_shard = number + 1
        removed += self._remove_leftovers()
        return {"store": str(self.root), "chunks_before": before, "chunks_after": len(self._loaded),
                "rows": len(self._rows), "files_removed": removed}

    def _remove_leftovers(self) -> int:
        """(lock held) Tables whose vectors never arrived, and temporary files of processes that are gone."""
        n = 0
        for p in self.root.iterdir():
            m = _TMP.search(p.name)
            orphan = p.name.startswith("shard-") and p.suffix == ".csv" and not p.with_suffix(".safetensors").exists()
            if orphan or (m and p.is_file() and not pid_alive(int(m.group(1)))):
                p.unlink(missing_ok=True)
                n += 1
        return n

    def runtimes(self) -> dict[str, int]:
        """Rows per runtime that embedded them ("torch 2.x", "onnxruntime 1.x"; "unrecorded" for older chunks).

        Informational: the runtime is not part of the embedding fingerprint, vectors of both runtimes mix."""
        from safetensors import safe_open

        counts: dict[str, int] = {}
        for path in sorted(p for p in self.root.iterdir() if _SHARD.match(p.name)):
            with safe_open(str(path), framework="numpy") as fh:
                meta = fh.metadata() or {}
                n = fh.get_slice("vectors").get_shape()[0]
            merged = json.loads(meta["runtimes"]) if "runtimes" in meta else {meta.get("runtime", "unrecorded"): n}
            for name, k in merged.items():  # a compacted chunk records the counts of the chunks it merged
                counts[name] = counts.get(name, 0) + int(k)
        return counts

    def select(self, paths: list[str]) -> np.ndarray:
        """Row index of each path (the last row recorded for it); -1 where absent."""
        where = {r.path: i for i, r in enumerate(self._rows)}
        return np.array([where.get(p, -1) for p in paths], dtype=np.int64)


def _foreign(root: Path) -> bool:
    """Whether ROOT holds anything but a store's lock file or a temporary config of a killed creator."""
    return any(p.name != LOCK_FILE and not p.name.startswith(".config.json.tmp") for p in root.iterdir())


def store_info(root: str | Path) -> dict:
    """Rows, chunks and bytes of one store (for `painterid cache info`)."""
    store = FeatureStore.open(root)
    size = sum(p.stat().st_size for p in Path(root).iterdir() if p.is_file())
    return {"store": str(root), "backbone": store.embedding.get("backbone"), "rows": len(store),
            "chunks": len(store._loaded), "bytes": size}
