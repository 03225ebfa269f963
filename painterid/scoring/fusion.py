"""Fusion of several embeddings: a weighted sum of their members' standardised pair scores.

Each member is an ordinary PairModel over its own embedding (backbone, view, pooling). On the validation artists'
pairs every member's score is standardised (its mean and standard deviation there), and the weights (summing to
1, on a grid of step 1/(grid-1)) are those with the best validation AUC::

    fused(a, b) = sum_i w_i * (score_i(a_i, b_i) - mean_i) / std_i

A fused model's vectors are its members' embeddings side by side (member 0's columns first), so one matrix of
vectors per painting serves `evaluate` and `compare` as for a single model.

Directory layout (written atomically, like every artefact)::

    FUSED/config.json     kind painterid.fused-model; members [{name, embedding, weight, mean, std, validation
                          AUC, embedding seconds per image}]; calibration, threshold, validation AUC of the fusion
    FUSED/<member name>/  an ordinary model directory (config.json + *.safetensors; `PairModel.load` reads it)

`painterid.scoring.loading.load_model` (the one loader every command uses) returns a FusedModel for such a directory.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from painterid.core.errors import ArtefactError, PainterIDError
from painterid.core.io import atomic_dir, check_kind, check_replaceable, write_json
from painterid.core.version import __version__
from painterid.scoring.calibration import Calibrator
from painterid.scoring.model import FUSED_KIND as KIND
from painterid.scoring.model import KIND as PAIR_KIND
from painterid.scoring.model import PairModel

FORMAT_VERSION = 1
REPLACEABLE_KINDS = (KIND, PAIR_KIND)  # what `train --out` may overwrite with a fused model


# -- the rule ----------------------------------------------------------------------------------------------
def weight_grid(n: int, grid: int = 11) -> np.ndarray:
    """Every weight vector of `n` members on the simplex with step 1/(grid-1), member 0's weight ascending first
    (for two members: (0, 1), (0.1, 0.9), ..., (1, 0))."""
    if n < 2:
        raise ValueError("fusion needs two or more members")
    steps = grid - 1
    rows = [(*head, steps - sum(head)) for head in itertools.product(range(steps + 1), repeat=n - 1)
            if sum(head) <= steps]
    return np.array(rows, dtype=np.float64) / steps


def standardisers(val_scores: Sequence[np.ndarray]) -> list[tuple[float, float]]:
    """(mean, std) of each member's validation scores (std 1 where the scores are constant)."""
    return [(float(np.mean(v)), float(np.std(v)) or 1.0) for v in val_scores]


def fused_scores(scores: Sequence[np.ndarray], weights: Sequence[float],
                 stats: Sequence[tuple[float, float]]) -> np.ndarray:
    """sum_i w_i * (s_i - mean_i) / std_i, in float64 (member scores are float32)."""
    out = np.zeros(len(scores[0]), dtype=np.float64)
    for s, w, (m, sd) in zip(scores, weights, stats):
        out += float(w) * (np.asarray(s, dtype=np.float64) - m) / sd
    return out


def choose_weights(val_scores: Sequence[np.ndarray], labels: np.ndarray,
                   grid: int = 11) -> tuple[np.ndarray, list[tuple[float, float]], float]:
    """(weights, standardisers, fused validation AUC): the grid point with the best AUC on validation pairs
    (the first of equals)."""
    from painterid.scoring.metrics import roc_auc

    stats = standardisers(val_scores)
    best, best_w = -1.0, None
    for w in weight_grid(len(val_scores), grid):
        auc = roc_auc(fused_scores(val_scores, w, stats), labels)
        if auc > best + 1e-9:
            best, best_w = auc, w
    return best_w, stats, float(best)


# -- the artefact ------------------------------------------------------------------------------------------
class FusedModel:
    """Several PairModels, each over its own embedding, whose standardised scores are summed with weights."""

    method = "fused"

    def __init__(self, members: Sequence, names: Sequence[str], weights: Sequence[float],
                 stats: Sequence[tuple[float, float]], calibrator: Calibrator | None = None, threshold: float = 0.0,
                 info: dict | None = None):
        if len(members) < 2 or not (len(members) == len(names) == len(weights) == len(stats)):
            raise ValueError("a fused model needs two or more members, each with a name, a weight and a standardiser")
        if len(set(names)) != len(names):
            raise ValueError(f"member names must differ: {list(names)}")
        if any(m.artists != members[0].artists for m in members[1:]):
            raise ValueError("the members were trained on different artist splits")
        self.members = list(members)
        self.names = [str(n) for n in names]
        self.weights = np.asarray(weights, dtype=np.float64)
        self.stats = [(float(m), float(s)) for m, s in stats]
        self.calibrator = calibrator or Calibrator()
        self.threshold = float(threshold)
        self.info = info or {}
        self.root: Path | None = None

    # the split is the members' (they are trained on one split)
    @property
    def artists(self) -> dict:
        return self.members[0].artists

    @property
    def train_artists(self) -> set[str]:
        return self.members[0].train_artists

    @property
    def train_hashes(self) -> list[str]:
        return self.members[0].train_hashes

    @property
    def embeddings(self) -> list[dict]:
        return [m.embedding for m in self.members]

    @property
    def dims(self) -> list[int]:
        return [int(m.embedding["dim"]) for m in self.members]

    def split(self, x: np.ndarray) -> list[np.ndarray]:
        """The members' blocks of columns of side-by-side vectors [N, sum of dims]."""
        x = np.asarray(x)
        if x.shape[-1] != sum(self.dims):
            raise ValueError(f"fused vectors have {x.shape[-1]} columns, the members {self.dims}")
        cuts = np.cumsum(self.dims)[:-1]
        return np.split(x, cuts, axis=-1)

    # -- scoring
    def member_scores(self, a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
        """Each member's normalised score of each pair (a[i], b[i]) (side-by-side vectors)."""
        return [m.scores(xa, xb) for m, xa, xb in zip(self.members, self.split(a), self.split(b))]

    def scores(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Fused score of each pair; higher = more likely the same artist."""
        return self.fuse(self.member_scores(a, b))

    def fuse(self, member_scores: Sequence[np.ndarray]) -> np.ndarray:
        return fused_scores(member_scores, self.weights, self.stats).astype(np.float32)

    def score_pairs(self, vectors: np.ndarray, pairs: np.ndarray, chunk: int = 1_000_000,
                    progress=None, prepared=None) -> np.ndarray:
        """Scores of index pairs (i, j) into one matrix of side-by-side vectors (each member chunked)."""
        blocks = self.split(vectors)
        return self.fuse([m.score_pairs(x, pairs, chunk=chunk) for m, x in zip(self.members, blocks)])

    def space(self, x: np.ndarray) -> np.ndarray | None:
        """Side-by-side member spaces scaled by sqrt(w_i / std_i): their dot product is the fused score before
        CSLS up to a constant (None when a member has no dot-product space, e.g. the siamese head)."""
        spaces = [m.space(xi) for m, xi in zip(self.members, self.split(x))]
        if any(s is None for s in spaces):
            return None
        return np.hstack([s * np.float32(np.sqrt(w / sd)) for s, w, (_, sd) in zip(spaces, self.weights, self.stats)])

    def probability(self, scores: np.ndarray) -> np.ndarray:
        return self.calibrator(scores)

    # -- artefact
    def config(self) -> dict:
        costs = self.info.get("embedding_seconds_per_image", {})
        aucs = self.info.get("validation", {}).get("auc_by_member", {})
        members = [{"name": n, "embedding": m.embedding, "method": m.method, "normaliser": m.normaliser,
                    "weight": float(w), "mean": s[0], "std": s[1], "validation_auc": aucs.get(n),
                    "embedding_seconds_per_image": costs.get(n)}
                   for n, m, w, s in zip(self.names, self.members, self.weights, self.stats)]
        return {"kind": KIND, "format_version": FORMAT_VERSION, "painterid_version": __version__,
                "method": self.method, "members": members, "calibration": self.calibrator.to_dict(),
                "threshold": self.threshold,
                "threshold_probability": float(self.calibrator(np.array([self.threshold]))[0]),
                "artists": self.artists, "info": self.info}

    def save(self, out: str | Path, extra_files: dict[str, bytes] | None = None,
             member_files: dict[str, dict[str, bytes]] | None = None) -> Path:
        """Write the directory atomically: config.json and one ordinary model directory per member."""
        out = Path(out)
        _check_replaceable(out)
        with atomic_dir(out) as tmp:
            for name, member in zip(self.names, self.members):
                member.save(tmp / name, extra_files=(member_files or {}).get(name))
            write_json(tmp / "config.json", self.config())
            for name, data in (extra_files or {}).items():
                (tmp / name).write_bytes(data)
        return out

    @classmethod
    def load(cls, path: str | Path) -> "FusedModel":
        """Load a fused model directory."""
        from painterid.core.io import read_json, read_stable

        model = read_stable(path, lambda: cls.from_config(Path(path), read_json(Path(path) / "config.json",
                                                                                 "painterid model")))
        if not isinstance(model, cls):
            raise ArtefactError(f"{path}: a single model, not a fused one")
        return model

    @classmethod
    def from_config(cls, path: Path, cfg: dict) -> "FusedModel":
        """The model of a directory whose config.json (`cfg`, kind checked here) is a fused model's."""
        check_kind(cfg, path, KIND, FORMAT_VERSION, "a painterid fused model")
        try:
            entries = list(cfg["members"])
            names = [str(e["name"]) for e in entries]
            if any(Path(n).name != n or n in ("", ".", "..") for n in names):
                raise ValueError(f"bad member name in {names}")
            members = [PairModel.load(path / n) for n in names]
            model = cls(members, names, [float(e["weight"]) for e in entries],
                        [(float(e["mean"]), float(e["std"])) for e in entries],
                        Calibrator(**cfg.get("calibration", {})), float(cfg.get("threshold", 0.0)),
                        cfg.get("info", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtefactError(f"{path}: bad fused model config.json ({exc})") from None
        if any(isinstance(m, cls) for m in members):
            raise ArtefactError(f"{path}: a member of a fused model is itself fused")
        model.root = path
        return model


def _check_replaceable(out: Path) -> None:
    """`out` may be absent, empty, a fused model or a single model (train --out reused); else refused."""
    last = None
    for kind in REPLACEABLE_KINDS:
        try:
            return check_replaceable(out, "kind", kind, "a painterid model")
        except ArtefactError as exc:
            last = exc
    raise last


def members_of(model) -> list:
    """The PairModels whose embeddings a model needs: its members (fused) or itself."""
    return list(getattr(model, "members", None) or [model])


def refuse_fused(model, command: str) -> None:
    """One clear line where a command does not take a fused model (its members are ordinary models)."""
    if isinstance(model, FusedModel):
        where = model.root or Path("MODEL")
        raise PainterIDError(f"{command} does not support a fused model ({where}); use one of its members, "
                             + " or ".join(str(where / n) for n in model.names))


def side_by_side(blocks: Sequence[np.ndarray]) -> np.ndarray:
    """One matrix of a fused model's vectors from its members' (a single block is returned as it is)."""
    return blocks[0] if len(blocks) == 1 else np.hstack([np.asarray(b, dtype=np.float32) for b in blocks])


# -- backbone lists and cost -------------------------------------------------------------------------------
def parse_backbones(value: str | None) -> list[str]:
    """`--backbone a,b[,c]`: the names, each checked against the backbone registry, no name twice ([] for None)."""
    from painterid.embedding.backbones import get_spec

    if value is None:
        return []
    names = [get_spec(v.strip()).name for v in str(value).split(",")]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise PainterIDError(f"--backbone names {twice[0]} twice; a fused model's members need different backbones")
    return names


def single_backbone(value: str | None, command: str) -> str | None:
    """A command that takes one backbone: a comma list is refused with one line; the name is checked."""
    names = parse_backbones(value)
    if len(names) > 1:
        raise PainterIDError(f"{command} takes one backbone, not a fused model's list ({value}); run it once per "
                             "backbone")
    return names[0] if names else None


def embedding_cost(fingerprint: dict, paths: Sequence[str | Path], n: int = 8, rounds: int = 3, device=None,
                   runtime: str | None = None, base_dir: Path | None = None) -> dict | None:
    """Seconds per image of embedding with `fingerprint` on this machine, as `compare` does (decoding included;
    runtime auto: ONNX Runtime when installed): one image to warm up, then `n` images timed `rounds` times; the
    fastest round counts (the least disturbed by other work on the machine). None without readable images."""
    files = [Path(p) for p in paths if Path(p).is_file()][: n + 1]
    if len(files) < 2:
        return None
    from painterid.embedding.runtime import make_embedder, request_from_fingerprint

    embedder = make_embedder(request_from_fingerprint(fingerprint, base_dir), device=device, runtime=runtime,
                             num_workers=0, batch_size=min(16, n))
    embedder.embed_files(files[:1])
    times = []
    for _ in range(max(1, rounds)):
        t0 = time.perf_counter()
        _, failures = embedder.embed_files(files[1:])
        times.append(time.perf_counter() - t0)
        if failures:
            return None
    per_image = [t / (len(files) - 1) for t in times]
    return {"seconds_per_image": min(per_image), "median_seconds_per_image": float(np.median(per_image)),
            "images": len(files) - 1, "rounds": len(times), "runtime": getattr(embedder, "runtime", None)}
