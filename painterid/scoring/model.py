"""PairModel: the artefact `compare`, `evaluate` and `submit` load: scorer + normaliser + calibration + threshold.

Directory layout::

    MODEL/config.json          method, embedding fingerprint, head params, normaliser, calibration, threshold,
                               train / validation / test artists, measured figures
    MODEL/model.safetensors    head weights (`head.*`) and the normalisation cohort (`cohort`); absent when empty
    MODEL/training_set.csv     sha256 of every painting trained on (evaluate leaves them out)
    MODEL/backbone.safetensors finetune / cnn only: the trained backbone; the embedding's `weights_file` names it
                               relative to MODEL, so the directory can be moved
    MODEL/curves.png, MODEL/MODEL_CARD.md
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import __version__
from ..errors import ArtefactError, PainterIDError
from ..io import atomic_dir, check_kind, check_replaceable, read_json, read_stable, write_json
from .calibration import Calibrator
from .indexed import indexed_dots, rows_per_block
from .normalise import csls, neighbourhood

FORMAT_VERSION = 1
KIND = "painterid.pair-model"
BACKBONE_FILE = "backbone.safetensors"  # a backbone trained by painterid (finetune, cnn), inside the model directory
#: Methods whose pair score is the cosine of the two embeddings (no head weights): scored with numpy, so loading
#: and using such a model (the shipped default) never imports torch; their torch head is built only when asked for.
COSINE_METHODS = ("cosine", "finetune")

if TYPE_CHECKING:  # pragma: no cover
    import torch


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows divided by max(norm, 1e-12), as torch.nn.functional.normalize."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), np.float32(1e-12))


def _inference(fn):
    """torch.inference_mode around a scoring method, for heads that are torch modules (torch imported then only)."""
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        if self._numpy_cosine:
            return fn(self, *args, **kwargs)
        import torch

        with torch.inference_mode():
            return fn(self, *args, **kwargs)
    return wrapper


class PairModel:
    """Scores pairs of embeddings: raw head score → (CSLS) → probability and verdict at the threshold."""

    def __init__(self, method: str, embedding: dict, head: torch.nn.Module | None, head_params: dict | None = None,
                 normaliser: str = "none", csls_k: int = 10, cohort: np.ndarray | None = None,
                 calibrator: Calibrator | None = None, threshold: float = 0.5,
                 artists: dict[str, list[str]] | None = None, train_hashes: Sequence[str] = (),
                 info: dict | None = None):
        self.method = method
        self.embedding = dict(embedding)  # the JSON form (an EmbeddingFingerprint or a loaded config)
        if head is None and method not in COSINE_METHODS:
            raise ValueError(f"a {method} model needs its head")
        self._head = head.eval() if head is not None else None  # None: built from head_params when first used
        # Loaded without a head (a cosine method): scored with numpy, torch never imported.
        self._numpy_cosine = head is None
        self.head_params = head_params or {}
        self.normaliser = normaliser
        self.csls_k = csls_k
        self.cohort = None if cohort is None else np.asarray(cohort, dtype=np.float32)
        self.calibrator = calibrator or Calibrator()
        self.threshold = float(threshold)
        self.artists = artists or {"train": [], "val": [], "test": []}
        self.train_hashes = list(train_hashes)
        self.info = info or {}
        self.root: Path | None = None  # the directory it was loaded from (relative weights files live there)

    # -- scoring ---------------------------------------------------------------------------------
    @property
    def head(self) -> torch.nn.Module:
        """The torch scorer (built on first use for a model loaded without one: cosine methods need none)."""
        if self._head is None:
            from .methods import build_head

            self._head = build_head(self.method, int(self.embedding["dim"]), self.head_params).eval()
        return self._head

    @property
    def train_artists(self) -> set[str]:
        return set(self.artists.get("train", []))

    @_inference
    def space(self, x: np.ndarray) -> np.ndarray | None:
        """Vectors in the space where the head's score is a dot product (None for the siamese head)."""
        if self._numpy_cosine:
            return _l2_normalise(x)
        import torch

        if not hasattr(self.head, "space"):
            return None
        return self.head.space(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    @_inference
    def raw_scores(self, a: np.ndarray, b: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """Head score of each pair (a[i], b[i])."""
        out = np.empty(len(a), dtype=np.float32)
        if self._numpy_cosine:
            for s in range(0, len(a), chunk):
                out[s:s + chunk] = np.einsum("nd,nd->n", _l2_normalise(a[s:s + chunk]), _l2_normalise(b[s:s + chunk]))
            return out
        import torch

        for s in range(0, len(a), chunk):
            ta = torch.from_numpy(np.ascontiguousarray(a[s:s + chunk], dtype=np.float32))
            tb = torch.from_numpy(np.ascontiguousarray(b[s:s + chunk], dtype=np.float32))
            out[s:s + chunk] = self.head(ta, tb).float().numpy()
        return out

    @_inference
    def score_matrix(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Head score of every (x[i], y[j])."""
        sx, sy = self.space(x), self.space(y)
        if sx is not None:
            return sx @ sy.T
        import torch

        ty = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
        rows = [self.head(torch.from_numpy(row[None]).expand(len(y), -1), ty).numpy() for row in
                np.ascontiguousarray(x, dtype=np.float32)]
        return np.stack(rows) if rows else np.zeros((0, len(y)), np.float32)

    def neighbourhood(self, x: np.ndarray) -> np.ndarray:
        """r(x): mean of the k best scores of each vector against the cohort."""
        return neighbourhood(lambda q: self.score_matrix(q, self.cohort), x, self.csls_k)

    def scores(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Normalised score of each pair; higher = more likely the same artist."""
        raw = self.raw_scores(a, b)
        if self.normaliser == "csls" and self.cohort is not None and len(self.cohort):
            return csls(raw, self.neighbourhood(a), self.neighbourhood(b))
        return raw

    def prepare(self, vectors: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """What score_pairs computes once per matrix of vectors: (scoring space or None, CSLS r(x) or None).

        Pass it back as `score_pairs(..., prepared=...)` to score many blocks of pairs over the same vectors."""
        r = None
        if self.normaliser == "csls" and self.cohort is not None and len(self.cohort):
            r = self.neighbourhood(vectors)
        return self.space(vectors), r

    def score_pairs(self, vectors: np.ndarray, pairs: np.ndarray, chunk: int = 1_000_000,
                    progress=None, prepared: tuple | None = None) -> np.ndarray:
        """Scores of index pairs (i, j) into one matrix of vectors, chunked so memory stays flat."""
        pairs = np.asarray(pairs)
        out = np.empty(len(pairs), dtype=np.float32)
        space, r = prepared if prepared is not None else self.prepare(vectors)
        for s in range(0, len(pairs), chunk):
            i, j = pairs[s:s + chunk, 0], pairs[s:s + chunk, 1]
            if space is not None:
                raw = indexed_dots(space, i, j)  # no gathered copies: memory stays flat at any chunk size
            else:  # the head needs the rows: gather them a bounded block at a time
                raw = np.empty(len(i), dtype=np.float32)
                step = rows_per_block(vectors.shape[1])
                for t in range(0, len(i), step):
                    raw[t:t + step] = self.raw_scores(vectors[i[t:t + step]], vectors[j[t:t + step]])
            out[s:s + chunk] = raw if r is None else csls(raw, r[i], r[j])
            if progress:
                progress(min(s + chunk, len(pairs)))
        return out

    def probability(self, scores: np.ndarray) -> np.ndarray:
        return self.calibrator(scores)

    # -- artefact --------------------------------------------------------------------------------
    def config(self) -> dict:
        return {
            "kind": KIND, "format_version": FORMAT_VERSION, "painterid_version": __version__,
            "method": self.method, "embedding": self.embedding, "head_params": self.head_params,
            "normaliser": self.normaliser, "csls_k": self.csls_k,
            "calibration": self.calibrator.to_dict(), "threshold": self.threshold,
            "threshold_probability": float(self.calibrator(np.array([self.threshold]))[0]),
            "artists": self.artists, "info": self.info,
        }

    def save(self, out: str | Path, extra_files: dict[str, bytes] | None = None) -> Path:
        """Write the model directory atomically (a crash leaves the previous one, or none)."""
        import torch
        from safetensors.torch import save_file

        out = Path(out)
        check_replaceable(out, "kind", KIND, "a painterid model")
        with atomic_dir(out) as tmp:
            write_json(tmp / "config.json", self.config())
            tensors = {f"head.{k}": v.detach().contiguous().cpu() for k, v in self.head.state_dict().items()}
            if self.cohort is not None:
                tensors["cohort"] = torch.from_numpy(self.cohort)
            if tensors:
                save_file(tensors, str(tmp / "model.safetensors"))
            with open(tmp / "training_set.csv", "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["sha256"])
                w.writerows([h] for h in self.train_hashes)
            for name, data in (extra_files or {}).items():
                (tmp / name).write_bytes(data)
        return out

    @classmethod
    def load(cls, path: str | Path) -> "PairModel":
        """Load a model directory: JSON and safetensors only, never pickle."""
        return read_stable(path, lambda: cls._load_once(Path(path)))

    @classmethod
    def _load_once(cls, path: Path) -> "PairModel":
        if not path.is_dir():
            raise ArtefactError(f"{path}: no such model directory")
        cfg = read_json(path / "config.json", "painterid model")
        check_kind(cfg, path, KIND, FORMAT_VERSION, "a painterid model")
        dim = int(cfg["embedding"]["dim"])
        head = None  # cosine methods: numpy scores, no torch (the head is built if someone asks for it)
        if cfg.get("method") not in COSINE_METHODS:
            from .methods import build_head

            try:
                head = build_head(cfg["method"], dim, cfg.get("head_params", {}))
            except (TypeError, ValueError, PainterIDError) as exc:
                raise ArtefactError(f"{path}: bad head in config.json ({exc})") from None
        cohort = None
        weights = path / "model.safetensors"
        state = {}
        if weights.is_file():
            from safetensors.numpy import load_file

            try:
                arrays = load_file(str(weights))
            except Exception as exc:  # not a safetensors file (e.g. a pickle renamed): refuse, don't execute
                raise ArtefactError(f"{weights}: not a valid safetensors file ({exc})") from None
            state = {k[5:]: v for k, v in arrays.items() if k.startswith("head.")}
            if "cohort" in arrays:
                cohort = arrays["cohort"]
        expected = set(head.state_dict().keys()) if head is not None else set()
        if set(state) != expected:
            raise ArtefactError(f"{path}: model.safetensors does not hold the weights of a {cfg['method']} head "
                                f"(missing: {sorted(expected - set(state))[:3]})")
        if state:
            import torch

            try:
                head.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
            except RuntimeError as exc:
                raise ArtefactError(f"{path}: weights do not fit the head ({str(exc).splitlines()[0]})") from None
        _check_backbone_file(path, cfg["embedding"])
        hashes: list[str] = []
        ts = path / "training_set.csv"
        if ts.is_file():
            with open(ts, newline="") as fh:
                hashes = [r["sha256"] for r in csv.DictReader(fh)]
        model = cls(cfg["method"], cfg["embedding"], head, cfg.get("head_params", {}),
                    normaliser=cfg.get("normaliser", "none"), csls_k=cfg.get("csls_k", 10), cohort=cohort,
                    calibrator=Calibrator(**cfg.get("calibration", {})), threshold=cfg.get("threshold", 0.5),
                    artists=cfg.get("artists"), train_hashes=hashes, info=cfg.get("info", {}))
        model.root = path
        return model


def _check_backbone_file(path: Path, embedding: dict) -> None:
    """A backbone trained into the model directory (finetune, cnn: BACKBONE_FILE) must be there, as safetensors."""
    weights = embedding.get("weights_file")
    if not weights or Path(weights).is_absolute():
        return
    file = path / weights
    if not file.is_file():
        if weights == BACKBONE_FILE:
            raise ArtefactError(f"{path}: the model's trained backbone {BACKBONE_FILE} is missing")
        return  # an older model naming a weights file relative to where it was trained
    if file.suffix != ".safetensors":
        raise ArtefactError(f"{file}: a model's own backbone weights must be .safetensors")
    from safetensors import safe_open

    try:  # reads the header only; a pickle (or anything else) under this name is refused, never unpickled
        with safe_open(str(file), framework="numpy") as fh:
            fh.keys()
    except Exception as exc:  # noqa: BLE001
        raise ArtefactError(f"{file}: not a valid safetensors file ({exc})") from None
