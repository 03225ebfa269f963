"""compare: is each image by the artist of the reference? Light imports only (no training code)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from painterid.core.errors import ImageError, PainterIDError


def embedding_cache(fingerprint: dict):
    """The FeatureStore that caches embeddings of compared files by content hash (None when disabled): the one
    content cache every embedding command shares (painterid.store.cache.content_cache)."""
    from painterid.store.cache import content_cache

    return content_cache(fingerprint)


def embed_paths(paths: list[Path], fingerprint: dict, device=None, base_dir: Path | None = None,
                runtime: str | None = None) -> np.ndarray:
    """Vectors of image files for a model's embedding, from the cache where possible; a bad file raises.

    ``base_dir``: the model directory, against which a relative weights file of the fingerprint is resolved.
    ``runtime``: auto | onnx | torch (painterid.embedding.runtime; auto: ONNX Runtime on CPU when it is installed)."""
    from painterid.store.feature_store import Row, file_sha256

    for p in paths:
        if not p.exists():
            raise ImageError(f"{p}: no such file")
        if p.is_dir():
            raise ImageError(f"{p}: is a directory, not an image")
    hashes = []
    for p in paths:
        try:
            hashes.append(file_sha256(p))
        except OSError as exc:
            raise ImageError(f"{p}: cannot read ({exc.strerror or exc})") from None
    cache = embedding_cache(fingerprint)
    vectors = np.zeros((len(paths), int(fingerprint["dim"])), dtype=np.float32)
    where = cache.lookup(hashes) if cache is not None else np.full(len(paths), -1)
    if (where >= 0).all():
        return cache.vectors[where]
    for i in np.flatnonzero(where >= 0):
        vectors[i] = cache.vectors[where[i]]
    missing = [i for i in range(len(paths)) if where[i] < 0]
    new, used = embed_files([paths[i] for i in missing], fingerprint, device=device, base_dir=base_dir,
                            runtime=runtime)
    for k, i in enumerate(missing):
        vectors[i] = new[k]
    if cache is not None:
        fresh = {}
        for k, i in enumerate(missing):
            fresh.setdefault(hashes[i], (str(paths[i]), new[k]))
        cache.runtime = used
        try:  # under the cache's lock; rows another process added meanwhile are not added twice
            cache.append([Row(p, h) for h, (p, _) in fresh.items()], np.stack([v for _, v in fresh.values()]))
        except (OSError, PainterIDError):
            pass  # a full disk or a read-only cache costs the cache entry, never the answer
    return vectors


def embed_files(paths: list[Path], fingerprint: dict, device=None, base_dir: Path | None = None,
                runtime: str | None = None) -> tuple[np.ndarray, str | None]:
    """Embed image files with the backbone a fingerprint names (no cache); a bad file raises.

    Returns the vectors and the runtime that made them (recorded in the cache's chunk)."""
    from painterid.core.io import check_config_match
    from painterid.embedding.runtime import make_embedder, request_from_fingerprint

    embedder = make_embedder(request_from_fingerprint(fingerprint, base_dir), device=device, runtime=runtime,
                             num_workers=0, batch_size=min(16, len(paths)))
    check_config_match(embedder.fingerprint, fingerprint, what="this machine's backbone",
                       fix="install the weights the model was made with")
    new, failures = embedder.embed_files(paths)
    if failures:
        raise ImageError(failures[0][1])
    return new, getattr(embedder, "runtime", None)


def expand_images(paths: list[Path], recursive: bool = False) -> list[Path]:
    """Each folder among ``paths`` replaced by its image files, sorted (its subfolders too when ``recursive``);
    files are kept as given (a bad one fails later, with its name).  A folder without images is an error."""
    from painterid.data.datasets import is_image

    out: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            out.append(p)
            continue
        found = sorted(f for f in (p.rglob("*") if recursive else p.iterdir())
                       if is_image(f) and f.is_file() and not any(part.startswith(".") for part in
                                                                    f.relative_to(p).parts))
        if not found:
            raise ImageError(f"{p}: folder holds no images{'' if recursive else ' (subfolders: --recursive)'}")
        out.extend(found)
    return out


def compare_files(reference: Path, others: list[Path], model_dir: Path, threshold: float | None = None,
                  device=None, runtime: str | None = None) -> list[dict]:
    """Score the reference against each other image with a PairModel; one dict per pair."""
    return compare_pairs([(Path(reference), Path(o)) for o in others], model_dir, threshold, device, runtime)


def compare_pairs(pairs: list[tuple[Path, Path]], model_dir: Path, threshold: float | None = None,
                  device=None, runtime: str | None = None) -> list[dict]:
    """Score each (image_a, image_b) pair with a PairModel or a FusedModel; every distinct file is embedded once
    (per member embedding of a fused model)."""
    from painterid.scoring.fusion import members_of, side_by_side
    from painterid.scoring.loading import load_model

    model = load_model(model_dir)  # or a FusedModel: each file embedded once per member, side by side
    paths = list(dict.fromkeys(Path(p) for pair in pairs for p in pair))
    row = {p: i for i, p in enumerate(paths)}
    vecs = side_by_side([embed_paths(paths, m.embedding, device=device, base_dir=m.root, runtime=runtime)
                         for m in members_of(model)])
    ia = np.array([row[Path(a)] for a, _ in pairs])
    ib = np.array([row[Path(b)] for _, b in pairs])
    scores = model.scores(vecs[ia], vecs[ib])
    probs = model.probability(scores)
    thr = model.threshold if threshold is None else float(threshold)
    return [
        {"image_a": str(a), "image_b": str(b), "score": round(float(s), 6), "probability": round(float(q), 6),
         "threshold": thr, "same_artist": bool(s >= thr), "method": model.method}
        for (a, b), s, q in zip(pairs, scores, probs)
    ]


def read_pair_list(path: Path) -> list[tuple[Path, Path]]:
    """Pairs from a CSV with columns image1,image2 (paths relative to the CSV's folder or absolute)."""
    import csv

    from painterid.core.errors import DataError
    from painterid.core.io import check_columns

    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            reader.fieldnames = check_columns(path, reader.fieldnames, ("image1", "image2"), expected="image1,image2")
            pairs = [(path.parent / r["image1"].strip(), path.parent / r["image2"].strip()) for r in reader
                     if r.get("image1") and r.get("image2")]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the pairs CSV ({exc})") from None
    if not pairs:
        raise DataError(f"{path}: no pairs listed")
    return pairs
