"""Kaggle "Painter by Numbers" submissions: p(same artist) of every pair of `submission_info.csv`, at full scale.

The pairs file (``index,image1,image2``; about 22 million rows) is streamed twice — once for the image names, once
to score block by block — so memory holds one block of pairs and the vectors of the listed images, never the whole
file. Images are embedded once into a cached feature store (a second run embeds nothing), looked up under
``DIR/test/`` then ``DIR/train/`` then ``DIR/``. A pair with a missing or unreadable image gets the prior 0.5.
"""

from __future__ import annotations

import csv
import itertools
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from painterid.core.errors import DataError
from painterid.core.io import atomic_file, check_columns

PRIOR = 0.5
IMAGE_DIRS = ("test", "train", "")


@dataclass
class SubmitSummary:
    """What `submit` wrote and what it could not score."""

    out: Path
    n_pairs: int
    n_images: int
    n_missing_pairs: int
    missing_images: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (file, message) of unreadable images


def _open_pairs(path: Path):
    """(file handle, csv reader, column of index or None, column of image1, column of image2)."""
    if not path.is_file():
        raise DataError(f"{path}: no such pairs file (a Kaggle submission folder holds submission_info.csv)")
    fh = open(path, newline="", encoding="utf-8-sig")
    reader = csv.reader(fh)
    try:
        header = check_columns(path, next(reader, []), ("image1", "image2"), expected="index,image1,image2")
    except DataError:
        fh.close()
        raise
    return fh, reader, header.index("index") if "index" in header else None, header.index("image1"), \
        header.index("image2")


def iter_pair_blocks(path: str | Path, block: int) -> Iterator[tuple[list[str], list[str], list[str]]]:
    """Yield (indices, image1 names, image2 names) of up to `block` rows at a time, in file order.

    Without an `index` column the index is the row number (0-based)."""
    path = Path(path)
    fh, reader, ci, c1, c2 = _open_pairs(path)
    need = max(c1, c2, -1 if ci is None else ci)
    row_no = 0
    try:
        while True:
            rows = list(itertools.islice(reader, block))
            if not rows:
                return
            for k, r in enumerate(rows):
                if len(r) <= need:
                    raise DataError(f"{path}: line {row_no + k + 2} has {len(r)} column(s), expected {need + 1}")
            idx = [str(row_no + k) for k in range(len(rows))] if ci is None else [r[ci].strip() for r in rows]
            yield idx, [r[c1].strip() for r in rows], [r[c2].strip() for r in rows]
            row_no += len(rows)
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV near line {row_no + 2} ({exc})") from None
    finally:
        fh.close()


def pair_image_names(path: str | Path, block: int = 1_000_000) -> tuple[list[str], int]:
    """The distinct image names of a pairs file (in order of first appearance) and its number of rows."""
    names: dict[str, None] = {}
    n = 0
    for _, a, b in iter_pair_blocks(path, block):
        names.update(dict.fromkeys(a))
        names.update(dict.fromkeys(b))
        n += len(a)
    return list(names), n


def resolve_images(root: str | Path, names: list[str]) -> dict[str, Path]:
    """The file of each name that exists under ROOT/test, ROOT/train or ROOT (Kaggle layout), or as given."""
    root = Path(root)
    out: dict[str, Path] = {}
    for name in names:
        for sub in IMAGE_DIRS:
            p = root / sub / name if sub else root / name
            if p.is_file():
                out[name] = p
                break
        else:
            if Path(name).is_absolute() and Path(name).is_file():
                out[name] = Path(name)
    return out


def embed_images(files: dict[str, Path], embedding: dict, store_dir: str | Path, device=None,
                 progress: Callable[[int, int], None] | None = None, batch_size: int = 16,
                 num_workers: int | None = None, base_dir: str | Path | None = None
                 ) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """Vectors of `files` (name → path) from a feature store, embedding only what it lacks.

    Returns ({name: vector}, failures); the backbone is loaded only when something is missing. `base_dir` is the
    model directory (a relative weights file of `embedding` lives there)."""
    from painterid.embedding.embedder import embed_dataset, embedder_for
    from painterid.store.feature_store import FeatureStore

    store = FeatureStore.create_or_open(store_dir, embedding)
    names = list(files)
    paths = [str(Path(files[n])) for n in names]
    failures: list[tuple[str, str]] = []
    with store.writing():  # a second `submit` over these images waits, then finds them embedded
        todo = [k for k, w in enumerate(store.select(paths)) if w < 0]
        if todo:
            embedder = embedder_for(embedding, base_dir, device=device, batch_size=batch_size,
                                    num_workers=num_workers)
            failures = embed_dataset(store, [paths[k] for k in todo], embedder,
                                     names=[names[k] for k in todo], progress=progress)
    where = store.select(paths)
    vectors = store.vectors
    return {n: vectors[w] for n, w in zip(names, where) if w >= 0}, failures


@dataclass
class SubmissionInputs:
    """Everything scoring needs, gathered in one pass over the pairs file: the model and the image vectors."""

    model: object  # PairModel
    pairs_path: Path
    n_pairs: int
    names: list[str]  # distinct image names of the pairs file
    vectors: np.ndarray  # one row per usable image
    lookup: dict[str, int]  # name -> row of `vectors`
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [n for n in self.names if n not in self.lookup]


def prepare_submission(data: str | Path, model, pairs: str | Path | None = None,
                       store_dir: str | Path | None = None, device=None,
                       progress: Callable[[int, int], None] | None = None, block: int = 100_000,
                       num_workers: int | None = None) -> SubmissionInputs:
    """Read the image names of the pairs file and embed those images (cached); `model` is a PairModel or a path.

    `data` is the Kaggle folder (images in test/ and train/); `pairs` defaults to DATA/submission_info.csv."""
    from painterid.embedding.pipeline import default_store_dir
    from painterid.scoring.loading import single_model

    data = Path(data)
    if not data.is_dir():
        raise DataError(f"{data}: no such data folder")
    pm = single_model(model, "submit")  # a fused model: refused in one line
    pairs_path = Path(pairs) if pairs is not None else data / "submission_info.csv"
    names, n_pairs = pair_image_names(pairs_path, block=block)
    files = resolve_images(data, names)
    store_dir = Path(store_dir) if store_dir else default_store_dir(data, pm.embedding)
    found, failures = embed_images(files, pm.embedding, store_dir, device=device, progress=progress,
                                   num_workers=num_workers, base_dir=getattr(pm, "root", None))
    usable = [n for n in names if n in found]
    dim = int(pm.embedding.get("dim", 0))
    vectors = np.stack([found[n] for n in usable]) if usable else np.zeros((0, dim), np.float32)
    return SubmissionInputs(pm, pairs_path, n_pairs, names, vectors, {n: k for k, n in enumerate(usable)},
                            failures)


def write_submission(inputs: SubmissionInputs, out: str | Path, chunk: int = 1_000_000,
                     progress: Callable[[int, int], None] | None = None) -> SubmitSummary:
    """Score the pairs file block by block and write `out` (index,sameArtist, one row per input row, in order).

    sameArtist is the model's calibrated probability; a pair with a missing image gets the prior 0.5."""
    if chunk < 1:
        raise DataError(f"--chunk must be at least 1, got {chunk}")
    pm, vectors, lookup = inputs.model, inputs.vectors, inputs.lookup
    prepared = pm.prepare(vectors) if len(vectors) else None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = n_missing = 0
    if progress:
        progress(0, inputs.n_pairs)
    with atomic_file(out, "w", newline="") as fh:
        fh.write("index,sameArtist\n")
        for idx, a_names, b_names in iter_pair_blocks(inputs.pairs_path, chunk):
            a = np.fromiter((lookup.get(n, -1) for n in a_names), np.int64, len(a_names))
            b = np.fromiter((lookup.get(n, -1) for n in b_names), np.int64, len(b_names))
            ok = (a >= 0) & (b >= 0)
            prob = np.full(len(a), PRIOR, dtype=np.float64)
            if ok.any():
                scores = pm.score_pairs(vectors, np.column_stack([a[ok], b[ok]]), chunk=chunk,
                                        prepared=prepared)
                prob[ok] = pm.probability(scores)
            n_missing += int((~ok).sum())
            fh.write("".join(f"{i},{p:.7g}\n" for i, p in zip(idx, prob.tolist())))
            done += len(idx)
            if progress:
                progress(done, inputs.n_pairs)
    missing = inputs.missing
    if n_missing:
        warnings.warn(f"{n_missing} pair(s) have a missing or unreadable image ({len(missing)} image(s), e.g. "
                      f"{', '.join(missing[:3])}); they get the prior {PRIOR}", stacklevel=2)
    return SubmitSummary(out, done, len(lookup), n_missing, missing, inputs.failures)


def submit(data: str | Path, model, out: str | Path, pairs: str | Path | None = None, chunk: int = 1_000_000,
           store_dir: str | Path | None = None, device=None, progress: Callable[[int, int], None] | None = None,
           embed_progress: Callable[[int, int], None] | None = None, num_workers: int | None = None
           ) -> SubmitSummary:
    """prepare_submission then write_submission: DATA's pairs file scored by `model` into `out`."""
    if chunk < 1:
        raise DataError(f"--chunk must be at least 1, got {chunk}")
    inputs = prepare_submission(data, model, pairs=pairs, store_dir=store_dir, device=device,
                                progress=embed_progress, num_workers=num_workers)
    return write_submission(inputs, out, chunk=chunk, progress=progress)
