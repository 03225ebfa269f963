"""Which runtime embeds images: ONNX Runtime on CPU (numpy + Pillow, torch never imported) or torch.

``make_embedder(...)`` is what every embedding command calls (`compare`, `identify`, `embed`, and through
:func:`painterid.embedding.pipeline.data_embedder` `index build`, `evaluate`, `train`, `cohort set`, `calibrate`).
``runtime``:

* ``torch``: :class:`painterid.embedding.embedder.Embedder` (training, CUDA, any backbone);
* ``onnx``: :class:`OnnxEmbedder`: the backbone plus pooling exported once to ONNX
  (:mod:`painterid.embedding.onnx_export`, which needs torch that one time), then run by ONNX Runtime with the views made
  by :class:`painterid.embedding.arrayviews.ArrayViews`; an error when onnxruntime is missing or the backbone does not export;
* ``auto`` (the default, or ``$PAINTERID_RUNTIME``): ``onnx`` on CPU when onnxruntime is installed
  (``pip install 'painterid[fast]'``) and the export exists or can be made, else ``torch``.  On a machine with an
  NVIDIA GPU and no explicit ``device="cpu"``, auto keeps torch (CUDA).

Exports live in ``<cache>/onnx/<key>.onnx`` with a ``<key>.json`` record, the key a hash of what makes the
vectors (backbone, this machine's weights id, which for a weights file is its sha256, view, pooling, patches,
input size) and of the export format; an export that failed leaves ``<key>.failed.json`` so that ``auto`` does
not retry it on every call.  The vectors agree with torch's within :data:`VECTOR_TOLERANCE` (tests and
docs/PERFORMANCE.md give the measured figures), so stores and caches made by either runtime mix; each store chunk
records the runtime that made it (``FeatureStore.runtimes()``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from painterid.core.errors import ImageError, PainterIDError
from painterid.embedding.base import EmbedsFiles

RUNTIMES = ("auto", "onnx", "torch")
EXPORT_FORMAT = 1
#: Largest |onnx - torch| of an L2-normalised embedding component the tests accept (measured: docs/PERFORMANCE.md).
VECTOR_TOLERANCE = 1e-5


class OnnxUnavailable(PainterIDError):
    """The ONNX path cannot run here (no onnxruntime, a GPU was asked for, the backbone does not export)."""


def runtime_choice(runtime: str | None) -> str:
    """``runtime`` or ``$PAINTERID_RUNTIME`` or ``auto``, checked."""
    name = (runtime or os.environ.get("PAINTERID_RUNTIME") or "auto").strip().lower()
    if name not in RUNTIMES:
        raise PainterIDError(f"unknown runtime '{name}'; choose one of: {', '.join(RUNTIMES)}")
    return name


def onnxruntime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def _nvidia_gpu_present() -> bool:
    """Whether torch would pick CUDA, judged without importing torch (the driver lists its GPUs in /proc)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    try:
        return gpus.is_dir() and any(gpus.iterdir())
    except OSError:
        return False


def onnx_unusable_reason(device: str | None, explicit: bool) -> str | None:
    """Why the ONNX path cannot serve this call, or None when it can."""
    if device and not str(device).lower().startswith("cpu"):
        return f"ONNX Runtime runs on the CPU here; device '{device}' needs --runtime torch"
    if not onnxruntime_installed():
        return "onnxruntime is not installed (pip install 'painterid[fast]')"
    if not explicit and not device and _nvidia_gpu_present():
        return "a GPU is present: torch (CUDA) embeds faster"
    return None


# --------------------------------------------------------------------------------------------- exports


def export_dir() -> Path:
    from painterid.core.locations import cache_dir

    return cache_dir() / "onnx"


def export_request(backbone: str, view: str, pool: str, n_patches: int | None, weights: str | None,
                   input_size: int | None) -> dict:
    """What an export is made from: the fields of an EmbeddingConfig (the weights id is added by export_key)."""
    return {"backbone": backbone, "view": view, "pool": pool,
            "n_patches": int(n_patches or 8) if view == "patches" else None,
            "weights": str(weights) if weights else None, "input_size": int(input_size) if input_size else None}


def request_from_fingerprint(fp: dict, base_dir: str | os.PathLike | None = None) -> dict:
    """The export request that reproduces a fingerprint (as embedding.config_from_fingerprint, without torch)."""
    weights = fp.get("weights_file")
    if weights and base_dir is not None and not Path(weights).is_absolute() and (Path(base_dir) / weights).exists():
        weights = str(Path(base_dir) / weights)
    size = fp.get("input_size") or []
    square = int(size[1]) if len(size) == 3 and size[1] == size[2] else None
    return export_request(fp["backbone"], fp["view"], fp["pool"], fp.get("n_patches"), weights, square)


def export_key(request: dict, weights_id: str) -> str:
    """Hash of what makes the vectors (with this machine's weights id) and of the export format."""
    from painterid.embedding.onnx_export import OPSET

    fields = {k: request[k] for k in ("backbone", "view", "pool", "n_patches", "input_size")}
    blob = json.dumps({**fields, "weights_id": weights_id, "format": EXPORT_FORMAT, "opset": OPSET}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _say(msg: str) -> None:
    print(f"painterid: {msg}", file=sys.stderr, flush=True)


def ensure_export(request: dict, export: bool = True) -> tuple[Path, dict]:
    """(onnx file, record) of an export for ``request``, exporting it now (with torch) when it is missing."""
    from painterid.core.io import atomic_write_text
    from painterid.embedding.onnx_export import ExportError
    from painterid.embedding.weights import weights_id

    wid = weights_id(request["backbone"], request["weights"])
    key = export_key(request, wid)
    root = export_dir()
    onnx_path, record_path, failed = root / f"{key}.onnx", root / f"{key}.json", root / f"{key}.failed.json"
    record = _read_record(record_path)
    if record is not None and (root / record.get("onnx_file", "")).is_file():
        return root / record["onnx_file"], record
    if failed.is_file():
        try:
            reason = json.loads(failed.read_text()).get("reason", "")
        except (OSError, ValueError):
            reason = ""
        raise OnnxUnavailable(reason or f"the ONNX export of '{request['backbone']}' failed earlier")
    if not export:
        raise OnnxUnavailable(f"no ONNX export of '{request['backbone']}' yet (run once with torch installed)")
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("onnx") is None:
        raise OnnxUnavailable("the first use exports the backbone to ONNX, which needs torch and onnx installed")
    root.mkdir(parents=True, exist_ok=True)
    try:
        from painterid.embedding.onnx_export import export

        record = export(_fingerprint_stub(request), None, onnx_path, record_path,
                        {"key": key, "request": request, "weights_id": wid, "format": EXPORT_FORMAT},
                        announce=lambda: _say(
                            f"exporting {request['backbone']} ({request['view']}, {request['pool']}) to ONNX for the "
                            f"fast CPU path; this once needs torch and takes a few seconds, then it is cached in {root}"))
    except ExportError as exc:
        atomic_write_text(failed, json.dumps({"reason": str(exc), "request": request, "weights_id": wid}))
        # Said once: later calls find the .failed.json and fall back to torch without a word.
        _say(f"{exc}; torch embeds it instead (not tried again: {failed})")
        raise OnnxUnavailable(str(exc)) from None
    # The same export answers the request spelled with the input size made explicit (a model's fingerprint) and,
    # when that is the backbone's own size, spelled without it (`painterid embed`'s default).
    size = list(record["fingerprint"]["input_size"])
    spellings = [int(size[1])] + ([None] if size == record.get("native_input_size") else [])
    for alias in (export_key({**request, "input_size": s}, wid) for s in spellings):
        if alias != key and not (root / f"{alias}.json").is_file():
            atomic_write_text(root / f"{alias}.json", json.dumps({**record, "key": alias}, indent=2, sort_keys=True))
    return onnx_path, record


def _fingerprint_stub(request: dict) -> dict:
    """A fingerprint dict that embedding.config_from_fingerprint turns back into the request's config."""
    size = request["input_size"]
    return {"backbone": request["backbone"], "view": request["view"], "pool": request["pool"],
            "n_patches": request["n_patches"], "weights_file": request["weights"],
            "input_size": [3, size, size] if size else None}


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "fingerprint" in record else None


# --------------------------------------------------------------------------------------------- the embedder


class OnnxEmbedder(EmbedsFiles):
    """Embeds image files with an exported backbone under ONNX Runtime; the interface of ``Embedder``'s
    inference side (``fingerprint``, ``dim``, ``embed_files``, ``iter_files``, ``embed_images``, ``embed_views``)."""

    device = "cpu"
    num_workers = 0

    def __init__(self, onnx_path: Path, record: dict, batch_size: int = 16, threads: int | None = None):
        import onnxruntime as ort

        from painterid.embedding.arrayviews import ArrayViews

        self.record = record
        self.fingerprint = dict(record["fingerprint"])
        fp = self.fingerprint
        self.views = ArrayViews(fp["view"], record["data_config"], n_patches=fp.get("n_patches") or 8)
        self.combine = self.views.combine
        self.batch_size = int(batch_size)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self.runtime = f"onnxruntime {ort.__version__}"
        # Views per forward call: a few at a time stay in cache (as the torch path's chunks do).
        self.chunk = 4

    @property
    def dim(self) -> int:
        return int(self.fingerprint["dim"])

    def view_vectors(self, flat: np.ndarray) -> np.ndarray:
        """[N, 3, H, W] float32 crops → [N, D'] L2-normalised per-crop vectors (before a view's combine)."""
        flat = np.ascontiguousarray(flat, dtype=np.float32)
        feats = np.concatenate([self.session.run(None, {"views": flat[s:s + self.chunk]})[0]
                                for s in range(0, len(flat), self.chunk)]).astype(np.float32, copy=False)
        return _normalise(feats)

    def embed_views(self, views: np.ndarray) -> np.ndarray:
        """[B, V, 3, H, W] float32 views → [B, D] L2-normalised vectors (the torch path's arithmetic)."""
        b, v = views.shape[:2]
        feats = self.view_vectors(views.reshape(b * v, *views.shape[2:])).reshape(b, v, -1)
        if self.combine == "single":
            out = feats[:, 0]
        elif self.combine == "concat":
            out = feats.reshape(b, -1)
        else:
            out = feats.mean(1)
        return _normalise(out).astype(np.float32)

    def embed_images(self, images: Sequence) -> np.ndarray:
        """Embed PIL images already in memory."""
        return self.embed_views(np.stack([self.views(im) for im in images]))

    def _decode(self, path) -> tuple[np.ndarray | None, str]:
        from painterid.embedding.images import load_image

        try:
            return self.views(load_image(path)), ""
        except ImageError as exc:
            return None, str(exc)
        except Exception as exc:  # noqa: BLE001 - a view failing on a decodable but odd image
            return None, f"{path}: {type(exc).__name__}: {exc}"

    def _decode_batch(self, paths: Sequence, start: int) -> tuple[list[int], list[np.ndarray], list[tuple[int, str]]]:
        idx, good, bad = [], [], []
        for i in range(start, min(start + self.batch_size, len(paths))):
            views, msg = self._decode(paths[i])
            if views is None:
                bad.append((i, msg))
            else:
                idx.append(i)
                good.append(views)
        return idx, good, bad

    def iter_files(self, paths: Sequence[str | os.PathLike], progress: Callable[[int], None] | None = None):
        """Yield (indices, vectors, failures) batch by batch; failures are (index, message).

        One thread decodes the next batch while ONNX Runtime runs this one (Pillow and ORT release the GIL), so
        reading files costs little beyond the forward pass (docs/PERFORMANCE.md, embed over files vs bare forward).
        """
        from concurrent.futures import ThreadPoolExecutor

        paths = list(paths)
        starts = list(range(0, len(paths), self.batch_size))
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="painterid-decode") as pool:
            pending = pool.submit(self._decode_batch, paths, starts[0]) if starts else None
            for k in range(len(starts)):
                idx, good, bad = pending.result()
                if k + 1 < len(starts):
                    pending = pool.submit(self._decode_batch, paths, starts[k + 1])
                vecs = self.embed_views(np.stack(good)) if good else np.zeros((0, self.dim), np.float32)
                if progress:
                    progress(len(idx) + len(bad))
                yield idx, vecs, bad


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), np.float32(1e-12))


def make_embedder(request: dict, device: str | None = None, runtime: str | None = None, batch_size: int = 16,
                  num_workers: int | None = None):
    """The embedder for an export request (see export_request / request_from_fingerprint) on ``runtime``.

    ``auto`` falls back to torch when the ONNX path cannot serve (the reason is kept in ``fallback_reason``);
    ``onnx`` raises :class:`OnnxUnavailable` instead."""
    choice = runtime_choice(runtime)
    reason = None
    if choice != "torch":
        reason = onnx_unusable_reason(device, explicit=choice == "onnx")
        if reason is None:
            try:
                path, record = ensure_export(request)
                return OnnxEmbedder(path, record, batch_size=batch_size)
            except OnnxUnavailable as exc:
                reason = str(exc)
        if choice == "onnx":
            raise OnnxUnavailable(f"--runtime onnx: {reason}")
    from painterid.embedding.embedder import Embedder, EmbeddingConfig

    config = EmbeddingConfig(backbone=request["backbone"], view=request["view"], pool=request["pool"],
                             n_patches=request["n_patches"] or 8, weights=request["weights"],
                             input_size=request["input_size"])
    embedder = Embedder(config, device=device, batch_size=batch_size, num_workers=num_workers)
    embedder.fallback_reason = reason
    return embedder


def default_request() -> dict:
    """The export request of the shipped default embedding."""
    from painterid.core.defaults import DEFAULT_BACKBONE, DEFAULT_VIEW
    from painterid.embedding.backbones import default_pool

    return export_request(DEFAULT_BACKBONE, DEFAULT_VIEW, default_pool(DEFAULT_BACKBONE), 8, None, None)


if __name__ == "__main__":  # `python -m painterid.embedding.runtime`: export the default now (make setup does)
    try:
        path, rec = ensure_export(default_request())
    except PainterIDError as exc:
        _say(f"no ONNX export: {exc}; compare will use torch")
        raise SystemExit(1) from None
    _say(f"ONNX export of the default embedding: {path} ({rec['onnx_bytes'] / 2**20:.1f} MiB, max |onnx - torch| "
         f"{rec['export_max_abs_diff']:.1e} on the check batch)")
