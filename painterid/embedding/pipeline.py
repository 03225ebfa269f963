"""The one path every command walks: data → FeatureStore → vectors with artists → scores.

Library users call these directly; the CLI only adds options and Rich output.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from painterid.core.errors import DataError
from painterid.core.io import check_config_match
from painterid.core.locations import cache_dir  # noqa: F401 (re-exported: painterid.embedding.pipeline.cache_dir)
from painterid.data.datasets import Dataset, discover
from painterid.embedding.embedder import Embedder, EmbeddingConfig, embed_dataset
from painterid.store.feature_store import FeatureStore

#: Not part of a cache store's name: the version, the dimension, and what the backbone name and weights id already
#: imply (recorded since "bring your own encoder"; left out so that stores made before stay found).
_NOT_IN_STORE_KEY = ("dim", "painterid_version", "timm_name", "pretrained_tag", "weights_sha256", "crop_mode")


def default_store_dir(data: Path, fingerprint: dict) -> Path:
    """A cache store path unique to this data folder and embedding."""
    key = "|".join([str(Path(data).resolve())] + [f"{k}={fingerprint.get(k)}" for k in sorted(fingerprint)
                                                  if k not in _NOT_IN_STORE_KEY])
    return cache_dir() / "stores" / hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass
class Labelled:
    """Vectors of paintings with their artists (from a store, optionally restricted to one data set)."""

    vectors: np.ndarray
    artists: list[str]
    names: list[str]
    hashes: list[str]
    sources: list[str] | None
    embedding: dict
    failures: list[tuple[str, str]] = field(default_factory=list)
    paths: list[str] | None = None  # the image file of each painting (as recorded in the store)


def embed_data(data: str | Path, embedder: Embedder, store_dir: str | Path | None = None,
               progress=None, commit_every: int = 256) -> tuple[FeatureStore, Dataset, list[tuple[str, str]]]:
    """Embed a data set into a (new or resumed) store, committing a shard every `commit_every` images;
    returns the store, the data set and the failures."""
    dataset = discover(data)
    store_dir = Path(store_dir) if store_dir else default_store_dir(Path(data), embedder.fingerprint)
    store = FeatureStore.create_or_open(store_dir, embedder.fingerprint)
    with store.writing():  # a second `embed` into this store waits, then embeds only what is still lacking
        failures = embed_dataset(store, dataset.files, embedder, artists=dataset.artists, names=dataset.names,
                                 sources=dataset.sources, progress=progress, commit_every=commit_every)
    return store, dataset, failures


def data_embedder(embedding: dict | EmbeddingConfig | None = None, base_dir: str | Path | None = None, device=None,
                  runtime: str | None = None, batch_size: int = 16, num_workers: int | None = None):
    """The embedder of an EmbeddingConfig or of an artefact's fingerprint dict on ``runtime`` (auto | onnx | torch:
    painterid.embedding.runtime.make_embedder, the choice `compare` makes too); a fingerprint this machine's backbone
    would not reproduce is refused."""
    from painterid.embedding.runtime import export_request, make_embedder, request_from_fingerprint

    if isinstance(embedding, dict):
        request = request_from_fingerprint(embedding, base_dir)
    else:
        c = embedding or EmbeddingConfig()
        request = export_request(c.backbone, c.view, c.pool, c.n_patches, c.weights, c.input_size)
    embedder = make_embedder(request, device=device, runtime=runtime, batch_size=batch_size, num_workers=num_workers)
    if isinstance(embedding, dict):
        check_config_match(embedder.fingerprint, embedding, what="this machine's backbone",
                           fix="install the weights the model was made with")
    return embedder


def labelled(data_or_store: str | Path, embedding: dict | EmbeddingConfig | Embedder | None = None,
             store_dir: str | Path | None = None, progress=None, device=None, batch_size: int = 16,
             num_workers: int | None = None, base_dir: str | Path | None = None,
             runtime: str | None = None, embedder=None) -> Labelled:
    """Vectors and artists of DATA (embedding what is missing, on ``runtime``: `data_embedder`) or of an existing
    STORE.

    ``base_dir``: the model directory a dict ``embedding`` came from (its relative weights file lives there).
    ``embedder``: what embeds the missing paintings (default: `data_embedder` of ``embedding`` on ``runtime``).
    """
    path = Path(data_or_store)
    if FeatureStore.is_store(path):
        store = FeatureStore.open(path)
        if isinstance(embedding, dict):
            check_config_match(store.embedding, embedding, what=f"feature store {path}",
                               fix="re-embed the data with the model's backbone (painterid embed --backbone ...)")
        rows = store.rows
        if not rows:
            raise DataError(f"{path}: the feature store is empty")
        return Labelled(store.vectors, [r.artist for r in rows], [r.name for r in rows], [r.sha256 for r in rows],
                        [r.source for r in rows] if any(r.source for r in rows) else None, store.embedding,
                        paths=[r.path for r in rows])
    if embedder is None and hasattr(embedding, "embed_files"):  # one already built (the benchmark times it)
        embedder = embedding
    if embedder is None:  # else the caller's (e.g. patches.CapturingEmbedder over the model's own embedding)
        embedder = data_embedder(embedding, base_dir, device, runtime, batch_size, num_workers)
    store, dataset, failures = embed_data(path, embedder, store_dir, progress=progress)
    where = store.select([str(f) for f in dataset.files])
    ok = where >= 0
    rows = [store.rows[i] for i in where[ok]]
    sources = [s for s, k in zip(dataset.sources, ok) if k] if dataset.sources else None
    return Labelled(store.vectors[where[ok]], [r.artist for r in rows], [r.name for r in rows],
                    [r.sha256 for r in rows], sources, store.embedding, failures, paths=[r.path for r in rows])


def aligned(labs: list[Labelled]) -> list[Labelled]:
    """The same paintings, in the same order, in each of several Labelled of one data set (a fused model's
    embeddings of DATA): those every embedding could read, in the first one's order."""
    if len(labs) < 2:
        return list(labs)
    keys = [lab.paths or lab.hashes for lab in labs]
    common = set(keys[0]).intersection(*map(set, keys[1:]))
    out = []
    for lab, key in zip(labs, keys):
        where = {k: i for i, k in enumerate(key)}
        idx = np.array([where[k] for k in keys[0] if k in common], dtype=np.int64)
        out.append(Labelled(lab.vectors[idx], [lab.artists[i] for i in idx], [lab.names[i] for i in idx],
                            [lab.hashes[i] for i in idx], None if lab.sources is None else
                            [lab.sources[i] for i in idx], lab.embedding, lab.failures,
                            paths=None if lab.paths is None else [lab.paths[i] for i in idx]))
    return out


def member_labelled(data: str | Path, embeddings: list, store_dir: str | Path | None = None, progress=None,
                    device=None, base_dirs: list | None = None, names: list[str] | None = None,
                    runtime: str | None = None) -> list[Labelled]:
    """Labelled of DATA under each of a fused model's embeddings, aligned (`aligned`); each embedding keeps its
    own store (`store_dir`/NAME when given, else the cache). A feature store holds one embedding: refused."""
    if FeatureStore.is_store(Path(data)):
        raise DataError(f"{data}: a feature store holds one embedding; a fused model needs the DATA folder")
    names = names or [str(i) for i in range(len(embeddings))]
    labs = [labelled(data, emb, store_dir=None if store_dir is None else Path(store_dir) / name,
                     progress=progress, device=device, base_dir=None if base_dirs is None else base_dirs[i],
                     runtime=runtime)
            for i, (emb, name) in enumerate(zip(embeddings, names))]
    failures = [f for lab in labs for f in lab.failures]
    labs = aligned(labs)
    labs[0].failures = list(dict.fromkeys(failures))
    return labs


def model_labelled(data: str | Path, model, store_dir: str | Path | None = None, progress=None,
                   device=None, runtime: str | None = None) -> Labelled:
    """Vectors of DATA for a model: its embedding's, or for a fused model (scoring.fusion) its members'
    embeddings side by side (member 0's columns first), over the paintings every member could read."""
    members = getattr(model, "members", None)
    if not members:
        return labelled(data, model.embedding, store_dir=store_dir, progress=progress, device=device,
                        base_dir=model.root, runtime=runtime)
    labs = member_labelled(data, [m.embedding for m in members], store_dir, progress, device,
                           [m.root for m in members], list(model.names), runtime=runtime)
    first = labs[0]
    return Labelled(np.hstack([lab.vectors for lab in labs]).astype(np.float32), first.artists, first.names,
                    first.hashes, first.sources, {"fused": [lab.embedding for lab in labs]}, first.failures,
                    paths=first.paths)
