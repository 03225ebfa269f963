"""Per-patch vectors of paintings, before the `patches` view averages them: what the self-supervised normaliser
step (`selfsup`, scoring.normalise) is trained on, with no artist label.

For each painting: the `n_patches` grid patches of the model's own `patches` view, plus `extra` crops of the same
size at random positions of the same resized image (positions drawn from the painting's sha256 and `seed`, so a
painting always gets the same crops whatever it is fitted with), each through the backbone and pooling and
L2-normalised as the Embedder does. The mean of the grid patches is the painting's stored vector (to float
rounding; tests/test_selfsup.py checks it).

They cost `1 + extra / n_patches` times the embedding of the painting (4x with `EXTRA_PATCHES`, 1.5x with
`COHORT_EXTRA_PATCHES`, what `cohort set` uses: 1.5x) and are cached per painting under $PAINTERID_CACHE/patches/KEY/
(float16), so `train`, `cohort set` and bench runs embed each once. They are embedded on the fast path (ONNX
Runtime on CPU where it serves, runtime.make_embedder), all of a painting's crops in one forward pass; a
`CapturingEmbedder` fills a feature store from the same pass (the painting vector is the mean of its grid
patches), so `cohort set` reads each image once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from painterid.core.errors import DataError

#: random crops per painting beside the grid patches, as measured in docs/RESULTS.md, "Which default, and why"
EXTRA_PATCHES = 24
#: random crops per painting when `cohort set` refits selfsup on an archive: with the 8 grid patches, one pass of
#: 12 crops a painting, 1.5x the forward passes of embedding the archive, so that the whole fit stays within
#: twice the embedding (docs/results/archive-cost.json; what it does to AUC: docs/results/evidence.md)
COHORT_EXTRA_PATCHES = 4


def random_crops(view, img, n: int, rng: np.random.Generator):
    """[n, 3, H, W]: crops of the `patches` view's size at random positions of the image the view crops from
    (the same downscale cap and upscale-if-smaller as ViewTransform._patches), normalised like the view."""
    from torchvision.transforms.v2 import functional as F

    if max(img.size) > view.patch_max_side:
        img = F.resize(img, None, interpolation=view.interpolation, max_size=view.patch_max_side, antialias=True)
    img = view._at_least_input_size(img)
    tops = rng.integers(0, img.height - view.height + 1, n)
    lefts = rng.integers(0, img.width - view.width + 1, n)
    return view._to_tensor([F.crop(img, int(t), int(lf), view.height, view.width) for t, lf in zip(tops, lefts)])


def cut_patches(views, img, extra: int, rng: np.random.Generator) -> np.ndarray:
    """[n_patches + extra, 3, H, W] float32: the grid patches of the `patches` view (an ArrayViews) of one image,
    then `extra` crops of the same size at random positions of the same resized image (drawn from `rng` as
    `random_crops` draws them)."""
    resized, grid = views.patch_layout(img)
    tops = rng.integers(0, resized.height - views.height + 1, extra)
    lefts = rng.integers(0, resized.width - views.width + 1, extra)
    corners = [(left, top) for top, left in grid] + [(int(lf), int(t)) for t, lf in zip(tops, lefts)]
    return views._to_array([resized.crop((lf, t, lf + views.width, t + views.height)) for lf, t in corners])


def patch_vectors(embedder, path: str | os.PathLike, extra: int, rng: np.random.Generator,
                  fingerprint: Mapping | None = None) -> np.ndarray:
    """[n_patches + extra, D] L2-normalised vectors of one painting: its grid patches first, then random crops, in
    one forward pass of `embedder` (torch or ONNX Runtime: anything with `view_vectors`)."""
    from painterid.embedding.arrayviews import ArrayViews
    from painterid.embedding.images import load_image

    fp = fingerprint or embedder.fingerprint
    views = ArrayViews("patches", data_config_of(fp), n_patches=fp.get("n_patches") or 8)
    return np.asarray(embedder.view_vectors(cut_patches(views, load_image(path), extra, rng)), np.float32)


class PatchSource:
    """Per-patch vectors by painting sha256: `source(hashes) -> [N, n_patches + extra, D]` float32.

    `paths` maps a sha256 to the image file it was embedded from (a Labelled's `hashes` / `paths`). The backbone
    is only built when a painting is not cached yet."""

    def __init__(self, embedding: Mapping, paths: Mapping[str, str], base_dir: str | os.PathLike | None = None,
                 extra: int = EXTRA_PATCHES, seed: int = 0, cache: str | os.PathLike | None = None,
                 device=None, progress: Callable[[int], None] | None = None):
        from painterid.core.locations import cache_dir

        if embedding.get("view") != "patches":
            raise DataError(f"selfsup is trained on the patches of the `patches` view; this embedding's view is "
                            f"{embedding.get('view')!r} (embed with --view patches)")
        self.embedding, self.paths, self.base_dir = dict(embedding), dict(paths), base_dir
        self.extra, self.seed, self.device, self.progress = int(extra), int(seed), device, progress
        fp = {k: v for k, v in sorted(self.embedding.items()) if k != "weights_file"}
        key = hashlib.sha256(json.dumps([fp, self.extra, self.seed], default=str).encode()).hexdigest()[:16]
        self.dir = Path(cache) if cache is not None else cache_dir() / "patches" / key
        self._embedder = None

    @classmethod
    def of(cls, *labs, **kwargs) -> "PatchSource":
        """A source for the paintings of one or more pipeline.Labelled (the first one's embedding)."""
        paths = {h: p for lab in labs for h, p in zip(lab.hashes, lab.paths or []) if p}
        return cls(labs[0].embedding, paths, **kwargs)

    def __call__(self, hashes: Sequence[str]) -> np.ndarray:
        out = [self._one(h) for h in hashes]
        return np.stack(out) if out else np.zeros((0, 0, 0), np.float32)

    def _one(self, sha: str) -> np.ndarray:
        cached = self.dir / f"{sha}.npy"
        if cached.is_file():
            return np.load(cached).astype(np.float32)
        path = self.paths.get(sha)
        if not path or not Path(path).is_file():
            raise DataError(f"selfsup needs the image of painting {sha[:12]} to cut its patches, and it is not "
                            f"found ({path or 'no path recorded'}); embed from the image folder, not a moved store")
        return self.compute(sha, path).astype(np.float16).astype(np.float32)  # as the cache rounds them

    def compute(self, sha: str, path: str | os.PathLike, embedder=None) -> np.ndarray:
        """Embed the patches of one painting (one forward pass), cache them (float16), return them (float32)."""
        return self.store(sha, patch_vectors(embedder or self._get_embedder(), path, self.extra,
                                             np.random.default_rng([self.seed, int(sha[:12], 16)]), self.embedding))

    def store(self, sha: str, vecs: np.ndarray) -> np.ndarray:
        """Cache one painting's patch vectors (float16, atomically); return them as given (float32)."""
        vecs = np.asarray(vecs, np.float32)
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{sha}.{os.getpid()}.tmp.npy"
        np.save(tmp, vecs.astype(np.float16))
        os.replace(tmp, self.dir / f"{sha}.npy")
        if self.progress:
            self.progress(1)
        return vecs

    def _get_embedder(self):
        """The fast path: ONNX Runtime on CPU where it serves (runtime.make_embedder), else torch."""
        if self._embedder is None:
            from painterid.embedding.runtime import make_embedder, request_from_fingerprint

            self._embedder = make_embedder(request_from_fingerprint(self.embedding, self.base_dir),
                                           device=self.device)
        return self._embedder

    def capturing(self, batch_size: int = 8) -> "CapturingEmbedder":
        """An embedder for pipeline.labelled that caches each painting's patch vectors as it embeds it."""
        return CapturingEmbedder(self, self._get_embedder(), batch_size)


class CapturingEmbedder:
    """Embeds image files for a feature store (`iter_files`, as Embedder / OnnxEmbedder) by cutting each
    painting's patches once: grid patches and the source's random crops in one forward pass, cached for the
    PatchSource; the painting's vector is the L2 of the mean of its grid patch vectors (the `patches` view's
    combine, the same arithmetic as the embedders). So a `cohort set` that refits selfsup embeds each painting
    once, at (n_patches + extra) / n_patches times the cost of embedding it alone."""

    num_workers = 0

    def __init__(self, source: PatchSource, base, batch_size: int = 8):
        self.source, self.base, self.batch_size = source, base, int(batch_size)
        self.fingerprint = base.fingerprint
        self.runtime = getattr(base, "runtime", None)
        self.device = getattr(base, "device", "cpu")
        self.n_grid = int(self.source.embedding.get("n_patches") or 8)
        from painterid.embedding.arrayviews import ArrayViews

        self.views = ArrayViews("patches", data_config_of(source.embedding), n_patches=self.n_grid)

    @property
    def dim(self) -> int:
        return int(self.fingerprint["dim"])

    def _cut(self, path: str):
        """(sha256, crops [n + extra, 3, H, W]) of one file, or (None, message) when it cannot be read."""
        from painterid.core.errors import ImageError
        from painterid.embedding.images import load_image
        from painterid.store.feature_store import file_sha256

        try:
            sha = file_sha256(path)
            rng = np.random.default_rng([self.source.seed, int(sha[:12], 16)])
            return sha, cut_patches(self.views, load_image(path), self.source.extra, rng)
        except ImageError as exc:
            return None, str(exc)
        except OSError as exc:
            return None, f"{path}: cannot read ({exc.strerror or exc})"

    def iter_files(self, paths: Sequence[str | os.PathLike], progress: Callable[[int], None] | None = None):
        """Yield (indices, vectors, failures) batch by batch; failures are (index, message). One thread decodes
        and cuts the next painting while the backbone runs on this one (as OnnxEmbedder.iter_files)."""
        from concurrent.futures import ThreadPoolExecutor

        paths = [str(p) for p in paths]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="painterid-patches") as pool:
            pending = pool.submit(self._cut, paths[0]) if paths else None
            idx, vecs, bad = [], [], []
            for i in range(len(paths)):
                sha, crops = pending.result()
                if i + 1 < len(paths):
                    pending = pool.submit(self._cut, paths[i + 1])
                if sha is None:
                    bad.append((i, crops))
                else:
                    v = self.source.store(sha, self.base.view_vectors(crops))
                    mean = v[:self.n_grid].mean(0)
                    idx.append(i)
                    vecs.append((mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32))
                if len(idx) + len(bad) == self.batch_size or i + 1 == len(paths):
                    if progress:
                        progress(len(idx) + len(bad))
                    yield idx, np.stack(vecs) if vecs else np.zeros((0, self.dim), np.float32), bad
                    idx, vecs, bad = [], [], []


def data_config_of(fingerprint: Mapping) -> dict:
    """The view settings an embedding fingerprint records (input size, mean, std, interpolation, crop_pct)."""
    return {k: fingerprint.get(k) for k in ("input_size", "mean", "std", "interpolation", "crop_pct")}


def grid_patches(embedder, fingerprint: Mapping, img):
    """The `patches` view of one image as the model sees it: (the resized image the patches are cut from,
    [(top, left)] of each grid patch, [n_patches, D] L2-normalised patch vectors). The L2 of the mean of the
    vectors is the painting's embedding (the `patches` view's combine). Either runtime (torch or ONNX)."""
    from painterid.embedding.arrayviews import ArrayViews

    if fingerprint.get("view") != "patches":
        raise DataError(f"the patches a model compared exist for the `patches` view only; this model's view is "
                        f"{fingerprint.get('view')!r}")
    views = ArrayViews("patches", data_config_of(fingerprint), n_patches=fingerprint.get("n_patches") or 8)
    resized, grid = views.patch_layout(img)
    return resized, grid, embedder.view_vectors(views(img))
