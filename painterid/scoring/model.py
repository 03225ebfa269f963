"""PairModel: the artefact `compare`, `evaluate` and `submit` load: scorer + normaliser + calibration + threshold.

Directory layout::

    MODEL/config.json          method, embedding fingerprint, head params, normaliser, calibration, threshold,
                               train / validation / test artists, measured figures
    MODEL/model.safetensors    head weights (`head.*`; none for cosine) (older models: also `cohort`)
    MODEL/normalise.safetensors the fitted arrays of the normaliser chain (config.json "chain"), when any
    MODEL/cohort.safetensors   the reference cohort: embeddings of a few hundred paintings of other artists
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

from painterid.core.errors import ArtefactError
from painterid.core.io import atomic_dir, check_kind, check_replaceable, read_json, read_stable, write_json
from painterid.core.version import __version__
from painterid.scoring.calibration import Calibrator
from painterid.scoring.indexed import indexed_dots, rows_per_block
from painterid.scoring.normalise import Chain, csls, legacy_chain, neighbourhood

FORMAT_VERSION = 1
KIND = "painterid.pair-model"
FUSED_KIND = "painterid.fused-model"  # scoring.fusion.FusedModel: several PairModels (load returns one)
NORMALISE_FILE = "normalise.safetensors"  # fitted arrays of the normaliser chain
COHORT_FILE = "cohort.safetensors"  # the reference cohort: raw embeddings of other paintings
BACKBONE_FILE = "backbone.safetensors"  # a backbone trained by painterid (finetune, cnn), inside the model directory
#: the files `PairModel.save` writes itself
SAVED_FILES = frozenset({"config.json", "model.safetensors", NORMALISE_FILE, COHORT_FILE, "training_set.csv"})


def carried_files(model_dir: str | Path, written=SAVED_FILES) -> dict[str, bytes]:
    """The files of a model directory that its `save` does not write (a card, curves, a trained backbone, ...):
    what a command rewriting the model (`cohort set`, `calibrate`) passes back as `extra_files`."""
    return {p.name: p.read_bytes() for p in sorted(Path(model_dir).iterdir()) if p.is_file() and p.name not in written}
#: Methods whose pair score is the cosine of the two embeddings (no head weights): scored with numpy, so loading
#: and using such a model (the shipped default) never imports torch; their torch head is built only when asked for.
COSINE_METHODS = ("cosine", "finetune")
#: Methods scored with numpy when loaded from a directory (no torch): the cosine ones and the siamese MLP.
NUMPY_METHODS = COSINE_METHODS + ("siamese",)

if TYPE_CHECKING:  # pragma: no cover
    import torch


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows divided by max(norm, 1e-12), as torch.nn.functional.normalize."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), np.float32(1e-12))


def _siamese_numpy(w: dict[str, np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The siamese head's forward pass (heads.SiameseHead in eval mode) in numpy: Linear-ReLU-Linear-ReLU-Linear
    over |a - b| and a * b (dropout is the identity at inference)."""
    d = a.shape[1]
    w0 = w["net.0.weight"]
    z = np.abs(a - b) @ w0[:, :d].T + (a * b) @ w0[:, d:].T + w["net.0.bias"]
    z = np.maximum(z, 0) @ w["net.3.weight"].T + w["net.3.bias"]
    return (np.maximum(z, 0) @ w["net.6.weight"].T + w["net.6.bias"])[:, 0].astype(np.float32)


def _inference(fn):
    """torch.inference_mode around a scoring method, for heads that are torch modules (torch imported then only)."""
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        if self._numpy:
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
                 info: dict | None = None, chain: Chain | None = None, cohort_info: dict | None = None,
                 head_weights: dict[str, np.ndarray] | None = None):
        self.method = method
        self.embedding = dict(embedding)  # the JSON form (an EmbeddingFingerprint or a loaded config)
        if head is None and method not in COSINE_METHODS and head_weights is None:
            raise ValueError(f"a {method} model needs its head")
        self._head = head.eval() if head is not None else None  # None: built from head_params when first used
        # Loaded without a torch head (cosine, or siamese weights as arrays): scored with numpy, no torch import.
        self._numpy_cosine = head is None and method in COSINE_METHODS
        self._numpy_weights = None if head is not None else head_weights
        self.head_params = head_params or {}
        self.cohort = None if cohort is None else np.asarray(cohort, dtype=np.float32)
        self.cohort_info = cohort_info or {}
        if chain is None:
            chain = legacy_chain(normaliser, csls_k, self.cohort)
        self.chain = chain
        self.calibrator = calibrator or Calibrator()
        self.threshold = float(threshold)
        self.artists = artists or {"train": [], "val": [], "test": []}
        self.train_hashes = list(train_hashes)
        self.info = info or {}
        self.root: Path | None = None  # the directory it was loaded from (relative weights files live there)
        self._cohort_space: np.ndarray | None = None

    @property
    def chain(self) -> Chain:
        return self._chain

    @chain.setter
    def chain(self, chain: Chain) -> None:
        self._chain = chain
        self._cohort_space = None

    @property
    def normaliser(self) -> str:
        """The chain as a spec ("none", "csls:10", "power,center,l2,csls:10", ...)."""
        return self.chain.spec

    @property
    def csls_k(self) -> int | None:
        step = self.chain.score_step
        return None if step is None else int(step.params["k"])

    @property
    def _numpy(self) -> bool:
        """Scored with numpy only (no torch module built)."""
        return self._numpy_cosine or (self._head is None and self._numpy_weights is not None)

    # -- scoring ---------------------------------------------------------------------------------
    @property
    def head(self) -> torch.nn.Module:
        """The torch scorer (built on first use for a model loaded without one: cosine methods need none)."""
        if self._head is None:
            from painterid.scoring.methods import build_head

            head = build_head(self.method, self.head_dim, self.head_params).eval()
            if self._numpy_weights:
                import torch

                head.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self._numpy_weights.items()})
            self._head = head
        return self._head

    @property
    def train_artists(self) -> set[str]:
        return set(self.artists.get("train", []))

    def transform(self, x: np.ndarray) -> np.ndarray:
        """The chain's vector steps applied to raw embeddings (what the head sees)."""
        return self.chain.apply(x) if self.chain.vector_steps else np.asarray(x, dtype=np.float32)

    @_inference
    def _space_t(self, xt: np.ndarray) -> np.ndarray | None:
        if self._numpy_cosine:
            return _l2_normalise(xt)
        if self._numpy:
            return None  # the siamese head: no dot-product space
        import torch

        if not hasattr(self.head, "space"):
            return None
        return self.head.space(torch.from_numpy(np.ascontiguousarray(xt, dtype=np.float32))).numpy()

    def space(self, x: np.ndarray) -> np.ndarray | None:
        """Vectors in the space where the head's score is a dot product (None for the siamese head)."""
        return self._space_t(self.transform(x))

    @_inference
    def _raw_t(self, a: np.ndarray, b: np.ndarray, chunk: int = 65536) -> np.ndarray:
        out = np.empty(len(a), dtype=np.float32)
        if self._numpy:
            for s in range(0, len(a), chunk):
                sa, sb = np.asarray(a[s:s + chunk], np.float32), np.asarray(b[s:s + chunk], np.float32)
                out[s:s + chunk] = (np.einsum("nd,nd->n", _l2_normalise(sa), _l2_normalise(sb)) if self._numpy_cosine
                                    else _siamese_numpy(self._numpy_weights, sa, sb))
            return out
        import torch

        for s in range(0, len(a), chunk):
            ta = torch.from_numpy(np.ascontiguousarray(a[s:s + chunk], dtype=np.float32))
            tb = torch.from_numpy(np.ascontiguousarray(b[s:s + chunk], dtype=np.float32))
            out[s:s + chunk] = self.head(ta, tb).float().numpy()
        return out

    def raw_scores(self, a: np.ndarray, b: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """Head score of each pair (a[i], b[i]) after the chain's vector steps, before CSLS."""
        return self._raw_t(self.transform(a), self.transform(b), chunk)

    def _matrix_t(self, xt: np.ndarray, yt: np.ndarray, y_space: np.ndarray | None = None) -> np.ndarray:
        sx = self._space_t(xt)
        if sx is not None:
            return sx @ (self._space_t(yt) if y_space is None else y_space).T
        rows = [self._raw_t(np.repeat(row[None], len(yt), 0), yt) for row in np.asarray(xt, dtype=np.float32)]
        return np.stack(rows) if rows else np.zeros((0, len(yt)), np.float32)

    def score_matrix(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Head score of every (x[i], y[j]) (after the vector steps, before CSLS)."""
        return self._matrix_t(self.transform(x), self.transform(y))

    def _neighbourhood_t(self, xt: np.ndarray) -> np.ndarray | None:
        step = self.chain.score_step
        if step is None:
            return None
        cohort = step.cohort
        if self._cohort_space is None:
            self._cohort_space = self._space_t(cohort)  # None for the siamese head (no dot-product space)
        cs = self._cohort_space
        if cs is not None:
            skip = 1.0 - 1e-5 if step.params.get("skip_self", True) else None
            return neighbourhood(lambda q: self._space_t(q) @ cs.T, xt, step.params["k"], exclude_self=skip)
        return neighbourhood(lambda q: self._matrix_t(q, cohort), xt, step.params["k"])

    def neighbourhood(self, x: np.ndarray) -> np.ndarray:
        """r(x): mean of the k best scores of each vector against the cohort (CSLS)."""
        r = self._neighbourhood_t(self.transform(x))
        return np.zeros(len(x), np.float32) if r is None else r

    def scores(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Normalised score of each pair; higher = more likely the same artist. Depends on (a[i], b[i]), the
        model and its cohort only, never on the other pairs."""
        ta, tb = self.transform(a), self.transform(b)
        raw = self._raw_t(ta, tb)
        if self.chain.score_step is None:
            return raw
        return csls(raw, self._neighbourhood_t(ta), self._neighbourhood_t(tb))

    def prepare(self, vectors: np.ndarray) -> tuple:
        """What score_pairs computes once per matrix of vectors: (scoring space or None, CSLS r(x) or None,
        the vectors after the chain). Pass it back as `score_pairs(..., prepared=...)`."""
        xt = self.transform(vectors)
        return self._space_t(xt), self._neighbourhood_t(xt), xt

    def score_pairs(self, vectors: np.ndarray, pairs: np.ndarray, chunk: int = 1_000_000,
                    progress=None, prepared: tuple | None = None) -> np.ndarray:
        """Scores of index pairs (i, j) into one matrix of vectors, chunked so memory stays flat."""
        pairs = np.asarray(pairs)
        out = np.empty(len(pairs), dtype=np.float32)
        space, r, xt = prepared if prepared is not None else self.prepare(vectors)
        for s in range(0, len(pairs), chunk):
            i, j = pairs[s:s + chunk, 0], pairs[s:s + chunk, 1]
            if space is not None:
                raw = indexed_dots(space, i, j)  # no gathered copies: memory stays flat at any chunk size
            else:  # the head needs the rows: gather them a bounded block at a time
                raw = np.empty(len(i), dtype=np.float32)
                step = rows_per_block(xt.shape[1])
                for t in range(0, len(i), step):
                    raw[t:t + step] = self._raw_t(xt[i[t:t + step]], xt[j[t:t + step]])
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
            "head_dim": self.head_dim, "normaliser": self.normaliser, "csls_k": self.csls_k,
            "chain": self.chain.to_config(), "cohort": self.cohort_summary(),
            "calibration": self.calibrator.to_dict(), "threshold": self.threshold,
            "threshold_probability": float(self.calibrator(np.array([self.threshold]))[0]),
            "artists": self.artists, "info": self.info,
        }

    @property
    def head_dim(self) -> int:
        """The dimension the head sees: the embedding's, or the last projection's of the chain."""
        return int(self.chain.out_dim or self.embedding.get("dim", 0))

    def cohort_summary(self) -> dict:
        return {"n": 0 if self.cohort is None else int(len(self.cohort)), **self.cohort_info}

    @property
    def refits_selfsup(self) -> bool:
        """Whether a new cohort retrains the chain's selfsup step: only when nothing was fitted on its output
        with artist labels (a cosine model without wccn / lda); otherwise the step is kept as trained."""
        return self.method == "cosine" and not self.chain.supervised

    def set_cohort(self, cohort: np.ndarray, info: dict | None = None, patches=None) -> None:
        """Replace the reference cohort and refit the chain's unsupervised steps on it (centre, whitening, CSLS;
        selfsup on `patches`, the new cohort's per-patch vectors, when `refits_selfsup`); steps learned from the
        training artists (wccn, lda) are kept. The threshold and calibration are kept."""
        cohort = np.ascontiguousarray(cohort, dtype=np.float32)
        if cohort.ndim != 2 or cohort.shape[1] != int(self.embedding["dim"]):
            raise ArtefactError(f"the cohort has dimension {cohort.shape[-1]}, the model's embedding "
                                f"{self.embedding['dim']}")
        chain = Chain.from_config(self.chain.to_config(), self.chain.arrays(), require_fitted=False)
        refit = patches is not None and self.refits_selfsup
        try:
            chain.fit(cohort, refit_supervised=False, patches=patches, refit_selfsup=refit)
        except ValueError as exc:
            raise ArtefactError(f"cannot fit the normaliser chain on this cohort: {exc}") from None
        if chain.out_dim != self.chain.out_dim:
            raise ArtefactError(f"refitting {chain.spec} on {len(cohort)} paintings changes its output dimension "
                                f"({self.chain.out_dim} → {chain.out_dim}); use a larger cohort")
        info = dict(info or {})
        if chain.needs_patches:
            info["selfsup"] = "refitted on this cohort" if refit else "kept as trained"
        self.cohort, self.cohort_info, self.chain = cohort, info, chain

    def _head_arrays(self) -> dict[str, np.ndarray]:
        if self._head is None:
            return {k: np.ascontiguousarray(v) for k, v in (self._numpy_weights or {}).items()}
        return {k: v.detach().contiguous().cpu().numpy() for k, v in self._head.state_dict().items()}

    def save(self, out: str | Path, extra_files: dict[str, bytes] | None = None) -> Path:
        """Write the model directory atomically (a crash leaves the previous one, or none)."""
        from safetensors.numpy import save_file

        out = Path(out)
        check_replaceable(out, "kind", KIND, "a painterid model")
        with atomic_dir(out) as tmp:
            write_json(tmp / "config.json", self.config())
            # written even when empty (cosine): a stable layout
            save_file({f"head.{k}": v for k, v in self._head_arrays().items()}, str(tmp / "model.safetensors"))
            arrays = self.chain.arrays()
            if arrays:
                save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp / NORMALISE_FILE))
            if self.cohort is not None and len(self.cohort):
                save_file({"cohort": np.ascontiguousarray(self.cohort)}, str(tmp / COHORT_FILE))
            with open(tmp / "training_set.csv", "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["sha256"])
                w.writerows([h] for h in self.train_hashes)
            for name, data in (extra_files or {}).items():
                (tmp / name).write_bytes(data)
        return out

    @classmethod
    def load(cls, path: str | Path) -> "PairModel":
        """Load a single model directory (JSON and safetensors only, never pickle); a fused model's directory is
        refused: `painterid.scoring.loading.load_model` reads either kind."""
        return read_stable(path, lambda: cls._load_once(Path(path)))

    @classmethod
    def load_single(cls, path: str | Path) -> "PairModel":
        """`load` without the re-read on a concurrent replace (the caller does that)."""
        return cls._load_once(Path(path))

    @classmethod
    def _load_once(cls, path: Path) -> "PairModel":
        if not path.is_dir():
            raise ArtefactError(f"{path}: no such model directory")
        cfg = read_json(path / "config.json", "painterid model")
        if isinstance(cfg, dict) and cfg.get("kind") == FUSED_KIND:
            raise ArtefactError(f"{path}: a fused model; load it with painterid.scoring.loading.load_model")
        check_kind(cfg, path, KIND, FORMAT_VERSION, "a painterid model")
        dim = int(cfg.get("head_dim") or cfg["embedding"]["dim"])
        tensors = _read_safetensors(path / "model.safetensors")
        state = {k[5:]: v for k, v in tensors.items() if k.startswith("head.")}
        cohort = tensors.get("cohort")  # models saved before cohort.safetensors kept it here
        if (path / COHORT_FILE).is_file():
            cohort = _read_safetensors(path / COHORT_FILE).get("cohort")
        head, weights = _load_head(path, cfg["method"], dim, cfg.get("head_params", {}), state)
        try:
            if "chain" in cfg:
                chain = Chain.from_config(cfg["chain"], _read_safetensors(path / NORMALISE_FILE), cohort)
            else:
                chain = legacy_chain(cfg.get("normaliser", "none"), cfg.get("csls_k", 10), cohort)
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtefactError(f"{path}: bad normaliser chain ({exc})") from None
        _check_backbone_file(path, cfg["embedding"])
        hashes: list[str] = []
        ts = path / "training_set.csv"
        if ts.is_file():
            with open(ts, newline="") as fh:
                hashes = [r["sha256"] for r in csv.DictReader(fh)]
        cohort_info = {k: v for k, v in (cfg.get("cohort") or {}).items() if k != "n"}
        model = cls(cfg["method"], cfg["embedding"], head, cfg.get("head_params", {}), cohort=cohort,
                    head_weights=weights,
                    calibrator=Calibrator(**cfg.get("calibration", {})), threshold=cfg.get("threshold", 0.5),
                    artists=cfg.get("artists"), train_hashes=hashes, info=cfg.get("info", {}), chain=chain,
                    cohort_info=cohort_info)
        model.root = path
        return model


SIAMESE_KEYS = ("net.0.weight", "net.0.bias", "net.3.weight", "net.3.bias", "net.6.weight", "net.6.bias")


def _load_head(path: Path, method: str, dim: int, params: dict, state: dict):
    """(torch head or None, numpy weights or None) of a model directory; cosine and siamese need no torch."""
    if method in COSINE_METHODS or method == "siamese":
        expected = set() if method in COSINE_METHODS else set(SIAMESE_KEYS)
        if set(state) != expected:
            raise ArtefactError(f"{path}: model.safetensors does not hold the weights of a {method} head "
                                f"(missing: {sorted(expected - set(state))[:3]})")
        if method == "siamese":
            hidden = int(params.get("hidden", 256))
            shapes = {"net.0.weight": (hidden, 2 * dim), "net.3.weight": (hidden // 2, hidden),
                      "net.6.weight": (1, hidden // 2)}
            bad = [k for k, v in shapes.items() if tuple(state[k].shape) != v]
            if bad:
                raise ArtefactError(f"{path}: weights do not fit the head ({bad[0]} is {tuple(state[bad[0]].shape)}, "
                                    f"expected {shapes[bad[0]]})")
            return None, {k: np.asarray(v, dtype=np.float32) for k, v in state.items()}
        return None, None
    from painterid.scoring.methods import build_head

    try:
        head = build_head(method, dim, params)
    except (TypeError, ValueError) as exc:
        raise ArtefactError(f"{path}: bad head in config.json ({exc})") from None
    expected = set(head.state_dict().keys())
    if set(state) != expected:
        raise ArtefactError(f"{path}: model.safetensors does not hold the weights of a {method} head "
                            f"(missing: {sorted(expected - set(state))[:3]})")
    if state:
        import torch

        try:
            head.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
        except RuntimeError as exc:
            raise ArtefactError(f"{path}: weights do not fit the head ({str(exc).splitlines()[0]})") from None
    return head, None


def _read_safetensors(file: Path) -> dict[str, np.ndarray]:
    """All arrays of a safetensors file ({} when absent); anything else under the name is refused, not run."""
    if not file.is_file():
        return {}
    from safetensors.numpy import load_file

    try:
        return load_file(str(file))
    except Exception as exc:  # not a safetensors file (e.g. a pickle renamed): refuse, don't execute
        raise ArtefactError(f"{file}: not a valid safetensors file ({exc})") from None


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
