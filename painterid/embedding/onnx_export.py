"""Export a backbone plus its pooling to ONNX, once, for the fast CPU path (:mod:`painterid.embedding.runtime`).

This is the one place that needs torch for ONNX: it builds the same :class:`~painterid.embedding.embedder.Embedder` the
torch path uses, traces its ``FeatureExtractor`` (backbone + pooling, ``[N, 3, H, W] -> [N, dim]``, N dynamic,
H x W the embedding's fixed input size) with torch's TorchScript-based exporter, which needs only the ``onnx``
package (the newer ``dynamo=True`` exporter also needs ``onnxscript``), then checks the exported graph under
ONNX Runtime against torch on a batch of random inputs and real-looking views.  An export whose features differ
by more than :data:`EXPORT_TOLERANCE` is refused (the backbone "does not export"; the torch path stays).

The ``.onnx`` file and its ``.json`` record are written under temporary names and renamed into place, the record
last: a record exists only next to a complete, checked graph.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from painterid.core.errors import PainterIDError
from painterid.core.version import __version__

#: Largest |torch - onnxruntime| allowed on the raw pooled features, relative to max(1, max |feature|).
EXPORT_TOLERANCE = 1e-3
OPSET = 17


class ExportError(PainterIDError):
    """A backbone (or pooling) that does not export to ONNX faithfully."""


def export(fingerprint: dict, base_dir: str | os.PathLike | None, onnx_path: Path, record_path: Path,
           record: dict, announce=None) -> dict:
    """Export the embedding ``config_from_fingerprint(fingerprint, base_dir)`` to ``onnx_path``; returns the record
    written to ``record_path``: ``record`` plus the torch embedder's fingerprint, data config and the check's figure.
    ``announce()`` is called once the backbone has loaded (bad weights fail before anything is said)."""
    import torch

    from painterid.core.io import atomic_write_text
    from painterid.embedding.embedder import Embedder, config_from_fingerprint

    embedder = Embedder(config_from_fingerprint(fingerprint, base_dir), device="cpu", num_workers=0)
    if announce is not None:
        announce()
    extractor = embedder.extractor.eval()
    _, h, w = (int(v) for v in embedder.data_config["input_size"])
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = onnx_path.with_name(f".{onnx_path.name}.tmp-{os.getpid()}")
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings (shape arithmetic becomes constants: H x W is fixed)
            torch.onnx.export(extractor, (torch.zeros(2, 3, h, w),), str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=["views"], output_names=["features"],
                              dynamic_axes={"views": {0: "n"}, "features": {0: "n"}})
        diff = _check(extractor, tmp, h, w)
    except ExportError:
        tmp.unlink(missing_ok=True)
        raise
    except Exception as exc:  # noqa: BLE001 - any exporter failure means "does not export"
        tmp.unlink(missing_ok=True)
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ExportError(f"backbone '{fingerprint.get('backbone')}' with pool '{fingerprint.get('pool')}' does not "
                          f"export to ONNX ({type(exc).__name__}: {first[:200]})") from None
    os.replace(tmp, onnx_path)
    import timm.data

    native = list(timm.data.resolve_model_data_config(extractor.model)["input_size"])
    full = {**record, "fingerprint": dict(embedder.fingerprint), "native_input_size": native, "data_config": _jsonable(embedder.data_config),
            "combine": embedder.combine, "export_max_abs_diff": diff, "torch": torch.__version__,
            "painterid_version": __version__, "opset": OPSET, "onnx_file": onnx_path.name,
            "onnx_bytes": onnx_path.stat().st_size}
    atomic_write_text(record_path, json.dumps(full, indent=2, sort_keys=True))
    return full


def _check(extractor, path: Path, h: int, w: int) -> float:
    """Max |torch - onnxruntime| of the features on random inputs; raises ExportError above the tolerance."""
    import onnxruntime as ort
    import torch

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, h, w, generator=gen)
    with torch.no_grad():
        want = extractor(x).float().numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"views": x.numpy()})[0]
    if got.shape != want.shape:
        raise ExportError(f"the ONNX graph gives features of shape {got.shape}, torch {want.shape}")
    diff = float(np.abs(got - want).max())
    if not diff <= EXPORT_TOLERANCE * max(1.0, float(np.abs(want).max())):
        raise ExportError(f"the ONNX graph's features differ from torch's by {diff:.2e}; the torch path stays")
    return diff


def _jsonable(cfg: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()
            if isinstance(v, (str, int, float, bool, list, tuple)) or v is None}
