"""From image files to one vector per painting: views, backbone, pooling, batching, device handling."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from painterid.core.defaults import DEFAULT_BACKBONE, DEFAULT_VIEW  # noqa: F401 (re-exported)
from painterid.core.errors import ImageError
from painterid.core.version import __version__
from painterid.embedding.base import EmbedsFiles

if TYPE_CHECKING:  # pragma: no cover
    import torch

# torch is imported inside the functions that run it: this module (EmbeddingConfig, embed_dataset) also serves
# the ONNX Runtime path (painterid.embedding.runtime), which must not import torch.


def default_backbone() -> str:
    """The default backbone name (one whose weights install offline with painterid)."""
    return DEFAULT_BACKBONE


@dataclass(frozen=True)
class EmbeddingConfig:
    """What turns an image into a vector: backbone (and weights), view, pooling."""

    backbone: str = DEFAULT_BACKBONE
    view: str = DEFAULT_VIEW
    pool: str | None = None  # None: the backbone's default pooling (backbones.default_pool: stage for Lite1)
    n_patches: int = 8
    weights: str | None = None  # a user-supplied weights file; None = the registry's source
    input_size: int | None = None  # square input side in pixels; None = the backbone's own (CNNs run at any size)

    def __post_init__(self):
        if self.pool is None:
            from painterid.embedding.backbones import default_pool

            object.__setattr__(self, "pool", default_pool(self.backbone))


@dataclass(frozen=True, eq=False)
class EmbeddingFingerprint(Mapping):
    """What made a vector, as artefacts record it (a store's, a model's, an index's ``embedding``).

    Frozen and typed; it reads like the JSON dict it is saved as (same keys, ``fp["backbone"]``, ``dict(fp)``),
    so stores and models written before it still load and match.  ``as_dict()`` is its JSON form."""

    backbone: str
    weights_id: str | None
    weights_file: str | None
    view: str
    pool: str
    n_patches: int | None
    input_size: list
    mean: list
    std: list
    interpolation: str | None
    crop_pct: float | None
    dim: int
    # Recorded since "bring your own encoder" (None in older artefacts, which still load): the timm model with
    # its pretrained tag, the full SHA-256 of the weight file, timm's crop mode.
    timm_name: str | None = None
    pretrained_tag: str | None = None
    weights_sha256: str | None = None
    crop_mode: str | None = None
    painterid_version: str = __version__

    def as_dict(self) -> dict:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), (list, tuple)) else v)
                for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "EmbeddingFingerprint":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def __getitem__(self, key: str):
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(self.__dataclass_fields__)

    def __len__(self) -> int:
        return len(self.__dataclass_fields__)


def pick_device(name: str | None = None) -> torch.device:
    """The device to run on: `name` if given, else CUDA when present, else CPU."""
    import torch

    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class _FileViews:
    """Decodes one file into its views; a bad file yields its error message instead of a tensor (a map-style
    data set for torch's DataLoader)."""

    def __init__(self, paths: Sequence[str | os.PathLike], transform: Callable):
        self.paths = list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from painterid.embedding.images import load_image

        try:
            return i, self.transform(load_image(self.paths[i])), ""
        except ImageError as exc:
            return i, None, str(exc)
        except Exception as exc:  # a transform failing on a decodable but odd image
            return i, None, f"{self.paths[i]}: {type(exc).__name__}: {exc}"


def _collate(items):
    import torch

    good = [(i, t) for i, t, _ in items if t is not None]
    bad = [(i, msg) for i, t, msg in items if t is None]
    idx = [i for i, _ in good]
    views = torch.stack([t for _, t in good]) if good else None
    return idx, views, bad


class Embedder(EmbedsFiles):
    """Embeds images with one backbone, view and pooling; the vectors are L2-normalised."""

    def __init__(self, config: EmbeddingConfig = EmbeddingConfig(), device: str | torch.device | None = None,
                 batch_size: int = 16, num_workers: int | None = None):
        import torch

        from painterid.embedding.backbones import get_spec
        from painterid.embedding.factory import create_backbone_at, timm_record
        from painterid.embedding.features import FeatureExtractor
        from painterid.embedding.images import VIEW_COMBINE, ViewTransform
        from painterid.embedding.weights import weights_id, weights_sha256

        self.config = config
        self.device = pick_device(str(device) if device else None)
        self.runtime = f"torch {torch.__version__}"  # recorded by the stores it fills (informational)
        self.batch_size = batch_size
        cpus = os.cpu_count() or 1
        # CPU with <= 2 cores: a decoding worker only takes cores from the forward pass (docs/PERFORMANCE.md)
        auto = 0 if self.device.type == "cpu" and cpus <= 2 else min(4, max(0, cpus - 1))
        self.num_workers = auto if num_workers is None else num_workers
        model, data_config = create_backbone_at(config.backbone, config.weights, config.input_size)
        if config.input_size:
            data_config = {**data_config, "input_size": (3, int(config.input_size), int(config.input_size))}
        self.data_config = data_config
        self.extractor = FeatureExtractor(model, config.pool).eval().to(self.device)
        if self.device.type == "cuda":
            self.extractor = self.extractor.to(memory_format=torch.channels_last)
        self.transform = ViewTransform(config.view, data_config, n_patches=config.n_patches)
        self.combine = VIEW_COMBINE[config.view]
        n_views = self.transform.n_views
        dim = self.extractor.dim * (n_views if self.combine == "concat" else 1)
        self.fingerprint = EmbeddingFingerprint(
            backbone=config.backbone,
            weights_id=weights_id(config.backbone, config.weights),
            weights_file=str(config.weights) if config.weights else None,
            view=config.view,
            pool=config.pool,
            n_patches=config.n_patches if config.view == "patches" else None,
            input_size=list(data_config["input_size"]),
            mean=list(data_config["mean"]),
            std=list(data_config["std"]),
            interpolation=data_config.get("interpolation"),
            crop_pct=data_config.get("crop_pct"),
            dim=int(dim),
            **timm_record(model, get_spec(config.backbone)),
            weights_sha256=weights_sha256(config.backbone, config.weights),
            crop_mode=data_config.get("crop_mode"),
        )

    @property
    def dim(self) -> int:
        return self.fingerprint["dim"]

    def embed_views(self, views: torch.Tensor) -> np.ndarray:
        """[B, V, 3, H, W] views → [B, D] normalised vectors."""
        import torch

        with torch.inference_mode():
            return self._embed_views(views)

    def _embed_views(self, views: torch.Tensor) -> np.ndarray:
        import torch

        b, v = views.shape[:2]
        x = views.flatten(0, 1).to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.float16):
                feats = self.extractor(x)
        else:  # a few images at a time stay in cache: 2-3x the images/s of 16 at once (docs/PERFORMANCE.md)
            feats = torch.cat([self.extractor(c) for c in x.split(max(4, torch.get_num_threads()))])
        feats = torch.nn.functional.normalize(feats.float(), dim=-1).view(b, v, -1)
        if self.combine == "single":
            out = feats[:, 0]
        elif self.combine == "concat":
            out = feats.flatten(1)
        else:
            out = feats.mean(1)
        return torch.nn.functional.normalize(out, dim=-1).cpu().numpy().astype(np.float32)

    def view_vectors(self, flat) -> np.ndarray:
        """[N, 3, H, W] crops (array or tensor) → [N, D'] L2-normalised per-crop vectors (before a view's combine)."""
        import torch

        x = torch.as_tensor(np.asarray(flat, dtype=np.float32) if isinstance(flat, np.ndarray) else flat)
        with torch.inference_mode():
            feats = torch.cat([self.extractor(c.to(self.device)) for c in x.split(8)])
        return torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy().astype(np.float32)

    def embed_images(self, images: Sequence) -> np.ndarray:
        """Embed PIL images already in memory."""
        import torch

        views = torch.stack([self.transform(im) for im in images])
        return self.embed_views(views)

    def iter_files(self, paths: Sequence[str | os.PathLike], progress: Callable[[int], None] | None = None):
        """Yield (indices, vectors, failures) batch by batch; failures are (index, message)."""
        import torch

        paths = list(paths)
        workers = self.num_workers if len(paths) > self.batch_size else 0
        loader = torch.utils.data.DataLoader(
            _FileViews(paths, self.transform), batch_size=self.batch_size, shuffle=False,
            num_workers=workers, collate_fn=_collate, pin_memory=self.device.type == "cuda",
            persistent_workers=False, prefetch_factor=4 if workers else None,
        )
        for idx, views, bad in loader:
            vecs = self.embed_views(views) if views is not None else np.zeros((0, self.dim), np.float32)
            if progress:
                progress(len(idx) + len(bad))
            yield idx, vecs, bad


def config_from_fingerprint(fp: dict, base_dir: str | os.PathLike | None = None) -> EmbeddingConfig:
    """The EmbeddingConfig that reproduces a stored fingerprint (a model's or a store's).

    A relative ``weights_file`` (a fine-tuned model's ``backbone.safetensors``) is resolved against ``base_dir``,
    the directory of the artefact that holds the fingerprint, so the artefact can be moved.  The recorded input
    size is kept (a model trained at another size than the backbone's own embeds at the size it was made with).
    """
    weights = fp.get("weights_file")
    if weights and base_dir is not None and not Path(weights).is_absolute() and (Path(base_dir) / weights).exists():
        weights = str(Path(base_dir) / weights)
    size = fp.get("input_size") or []
    square = int(size[1]) if len(size) == 3 and size[1] == size[2] else None
    return EmbeddingConfig(backbone=fp["backbone"], view=fp["view"], pool=fp["pool"],
                           n_patches=fp.get("n_patches") or 8, weights=weights, input_size=square)


def embedder_for(artefact, base_dir: str | os.PathLike | None = None, device=None, batch_size: int = 16,
                 num_workers: int | None = None) -> Embedder:
    """The Embedder that reproduces an artefact's embedding: a PairModel (its fingerprint, its directory for a
    trained backbone file) or a fingerprint dict (a store's, an index's; `base_dir` its directory).  Refuses a
    backbone on this machine that would give other vectors than the artefact was made with."""
    fingerprint = getattr(artefact, "embedding", artefact)
    if base_dir is None:
        base_dir = getattr(artefact, "root", None)
    from painterid.core.io import check_config_match

    embedder = Embedder(config_from_fingerprint(fingerprint, base_dir), device=device, batch_size=batch_size,
                        num_workers=num_workers)
    check_config_match(embedder.fingerprint, fingerprint, what="this machine's backbone",
                       fix="install the weights the model was made with")
    return embedder


def _hash_new_files(files: list[str], have_paths: set[str]) -> tuple[list[int], dict[int, str], list]:
    """(indices of files not yet in the store, their sha256, (file, message) of those that cannot be read)."""
    from painterid.store.feature_store import file_sha256

    failures: list[tuple[str, str]] = []
    todo, hashes = [], {}
    for i, f in enumerate(files):
        if f in have_paths:
            continue
        try:
            hashes[i] = file_sha256(f)
        except OSError as exc:
            failures.append((f, f"{f}: cannot read ({exc.strerror or exc})"))
            continue
        todo.append(i)
    return todo, hashes, failures


def _reuse(store, files, hashes, todo, artists, names, sources, cache) -> list[int]:
    """Copy into the store the vectors of content it (or the shared content cache) already holds; returns the
    indices of ``todo`` still to embed."""
    from painterid.store.feature_store import Row

    known = store.by_hash()
    own = [i for i in todo if hashes[i] in known]
    if own:
        store.append([Row(files[i], hashes[i], artists[i], names[i], sources[i]) for i in own],
                     store.vectors[[known[hashes[i]] for i in own]])
    todo = [i for i in todo if hashes[i] not in known]
    where = cache.lookup([hashes[i] for i in todo]) if cache is not None and todo else np.full(len(todo), -1)
    hit = [(i, w) for i, w in zip(todo, where) if w >= 0]
    if hit:
        store.append([Row(files[i], hashes[i], artists[i], names[i], sources[i]) for i, _ in hit],
                     cache.vectors[[w for _, w in hit]])
    return [i for i, w in zip(todo, where) if w < 0]


def _share(cache, rows, vectors) -> None:
    """Add freshly embedded vectors to the shared content cache (a failure costs the cache entry, nothing else)."""
    from painterid.core.errors import PainterIDError
    from painterid.store.feature_store import Row

    if cache is None or not rows:
        return
    try:
        cache.append([Row(r.path, r.sha256) for r in rows], vectors)
    except (OSError, PainterIDError):
        pass


def embed_dataset(store, files: Sequence[str | os.PathLike], embedder: Embedder, artists: Sequence[str] | None = None,
                  names: Sequence[str] | None = None, sources: Sequence[str] | None = None,
                  commit_every: int = 256, progress: Callable[[int, int], None] | None = None,
                  shared: bool = True):
    """Embed the files the store lacks, committing every `commit_every`; returns the failures.

    A file whose content is already in the store, or (``shared``) in the content cache every command shares
    (painterid.store.cache.content_cache), is not recomputed: its vector is reused; what is embedded is added to
    that cache.  Only the files left are given to the embedder.
    """
    from painterid.store.cache import content_cache
    from painterid.store.feature_store import Row

    store.runtime = getattr(embedder, "runtime", None)
    files = [str(Path(f)) for f in files]
    n = len(files)
    artists = list(artists) if artists is not None else [""] * n
    names = list(names) if names is not None else [Path(f).name for f in files]
    sources = list(sources) if sources is not None else [""] * n

    todo, hashes, failures = _hash_new_files(files, {r.path for r in store.rows})
    cache = content_cache(embedder.fingerprint) if shared else None
    if cache is not None:
        cache.runtime = store.runtime
    todo = _reuse(store, files, hashes, todo, artists, names, sources, cache)
    done = n - len(todo) - len(failures)
    if progress:
        progress(done, n)
    pend_rows, pend_vecs = [], []

    def flush():
        if pend_rows:
            vecs = np.concatenate(pend_vecs)
            store.append(list(pend_rows), vecs)
            _share(cache, pend_rows, vecs)
            pend_rows.clear()
            pend_vecs.clear()

    for idx, vecs, bad in embedder.iter_files([files[i] for i in todo]):
        for j, v in zip(idx, vecs):
            i = todo[j]
            pend_rows.append(Row(files[i], hashes[i], artists[i], names[i], sources[i]))
            pend_vecs.append(v[None])
        failures.extend((files[todo[j]], msg) for j, msg in bad)
        done += len(idx) + len(bad)
        if progress:
            progress(done, n)
        if len(pend_rows) >= commit_every:
            flush()
    flush()
    return failures
