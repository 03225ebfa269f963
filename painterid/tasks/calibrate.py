"""Refit a model's probability and threshold on a user's own labelled pairs (`painterid calibrate`).

A model's p(same artist) (Platt scaling) and threshold are fitted on its validation artists' pairs; on another
collection they do not carry (docs/RESULTS.md, "Calibration"). Here the model is kept as it is (embedding, head,
normaliser chain, cohort: so its scores and their AUC are unchanged) and only the calibrator and the threshold are
refitted on pairs of the user's collection, by the same rules as training (`Calibrator.fit`, the accuracy-best
`best_threshold`). The pairs come from a CSV `image1,image2,same` (paths relative to the CSV's folder, or absolute)
or are drawn from a labelled DATA folder or feature STORE (`pairs.balanced_pairs`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from painterid.core.errors import DataError

#: fewest pairs of each class (same artist / different artists) a refit accepts
MIN_PAIRS = 10
#: at most this many same-artist pairs are drawn from a DATA folder (and as many different-artist ones)
MAX_POSITIVES = 50_000


class _PathIndex(Mapping):
    """Any image name of a pairs CSV → a row number, the name resolved against the CSV's folder (absolute names as
    they are): lets `pairs.read_pairs_csv` read a CSV of file paths, as `compare --pairs` takes them."""

    def __init__(self, root: Path):
        self.root, self.paths, self._rows = root, [], {}

    def __contains__(self, name) -> bool:
        return bool(str(name).strip())

    def __getitem__(self, name) -> int:
        path = self.root / str(name).strip()
        if path not in self._rows:
            self._rows[path] = len(self.paths)
            self.paths.append(path)
        return self._rows[path]

    def __iter__(self):
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)


def csv_pairs(model, path: str | Path, device=None, runtime: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, int64 rows (i, j, same)) of a labelled pairs CSV, embedded with `model`'s embedding(s); a file
    that cannot be read refuses the whole CSV (as `compare --pairs` does)."""
    from painterid.data.pairs import read_pairs_csv
    from painterid.scoring.fusion import members_of, side_by_side
    from painterid.tasks.compare import embed_paths

    path = Path(path)
    index = _PathIndex(path.parent)
    rows = read_pairs_csv(path, index)
    if len(rows) and (rows[:, 2] < 0).any():
        raise DataError(f"{path}: every pair needs a label: a 'same' column of 1/0 (true/false) on every row")
    vectors = side_by_side([embed_paths(index.paths, m.embedding, device=device, base_dir=m.root, runtime=runtime)
                            for m in members_of(model)])
    return vectors, rows


def data_pairs(model, data: str | Path, store_dir=None, progress=None, device=None,
               seed: int = 0, runtime: str | None = None) -> tuple[np.ndarray, np.ndarray, dict, list]:
    """(vectors, balanced pairs, what was left out, unreadable images) of a labelled DATA folder or STORE.

    Paintings without an artist, and those the model was trained on (their scores are those of seen paintings),
    are left out before the pairs are drawn."""
    from painterid.data.pairs import balanced_pairs
    from painterid.embedding.pipeline import model_labelled

    lab = model_labelled(data, model, store_dir=store_dir, progress=progress, device=device, runtime=runtime)
    trained = set(model.train_hashes)
    keep = [i for i, (a, h) in enumerate(zip(lab.artists, lab.hashes)) if a and h not in trained]
    left = {"unlabelled_paintings": sum(1 for a in lab.artists if not a),
            "training_paintings": sum(1 for a, h in zip(lab.artists, lab.hashes) if a and h in trained)}
    if len({lab.artists[i] for i in keep}) < 2:
        raise DataError(f"{data}: pairs need paintings by two or more artists (after leaving out "
                        f"{left['training_paintings']} the model was trained on)")
    pairs = balanced_pairs([lab.artists[i] for i in keep], seed=seed, max_pos=MAX_POSITIVES)
    return lab.vectors[keep], pairs, left, lab.failures


def check_pairs(labels: np.ndarray, where: str, min_pairs: int = MIN_PAIRS) -> None:
    """Refuse (DataError) unless there are `min_pairs` pairs of each class."""
    labels = np.asarray(labels)
    n_same, n_diff = int((labels == 1).sum()), int((labels == 0).sum())
    if min(n_same, n_diff) < min_pairs:
        raise DataError(f"{where}: {n_same} same-artist and {n_diff} different-artist pairs; refitting the "
                        f"calibration needs at least {min_pairs} of each")


def pair_metrics(scores: np.ndarray, labels: np.ndarray, calibrator, threshold: float) -> dict:
    """Accuracy at `threshold`, Brier score, log loss and mean p(same) of scored pairs under a calibration."""
    from painterid.scoring.metrics import probability_metrics

    y = np.asarray(labels, dtype=int)
    m = probability_metrics(calibrator(scores), y, eps=1e-12)
    return {"accuracy": float(np.mean((np.asarray(scores) >= threshold) == (y == 1))),
            **{k: m[k] for k in ("brier", "log_loss", "mean_p")}}


def refit(model, scores: np.ndarray, labels: np.ndarray) -> dict:
    """Refit `model`'s calibrator and threshold on scored pairs, by training's rules; returns what changed.

    Platt scaling (`Calibrator.fit`) and the accuracy-best threshold (`evaluation.metrics.best_threshold`), as
    `training.fit._calibrate` fits them on the validation artists. "before"/"after" are measured on these same
    pairs (after: in-sample)."""
    from painterid.scoring.calibration import Calibrator
    from painterid.scoring.metrics import best_threshold, roc_auc

    labels = np.asarray(labels, dtype=int)
    before = pair_metrics(scores, labels, model.calibrator, model.threshold)
    old = {"calibration": model.calibrator.to_dict(), "threshold": float(model.threshold)}
    model.calibrator = Calibrator.fit(scores, labels)
    model.threshold = best_threshold(scores, labels, criterion="accuracy")
    return {"pairs": {"same": int(labels.sum()), "different": int((labels == 0).sum())},
            "base_rate": float(labels.mean()), "auc": float(roc_auc(scores, labels)),
            "old": old, "new": {"calibration": model.calibrator.to_dict(), "threshold": float(model.threshold)},
            "before": before, "after": pair_metrics(scores, labels, model.calibrator, model.threshold)}


def _kept_files(model_dir: Path, model) -> tuple[dict[str, bytes], dict[str, dict[str, bytes]]]:
    """The files of a model directory its `save` does not write itself (a card, curves, ...), to carry over:
    top-level ones, and for a fused model those of each member's directory."""
    from painterid.scoring.model import carried_files

    names = getattr(model, "names", None)
    if names:
        return carried_files(model_dir, {"config.json"}), {n: carried_files(model_dir / n) for n in names}
    return carried_files(model_dir), {}


def calibrate(model_dir: str | Path, pairs_or_data: str | Path, out: str | Path | None = None, store_dir=None,
              progress=None, device=None, seed: int = 0, runtime: str | None = None):
    """Refit the probability and threshold of the model in `model_dir` on labelled pairs; save it atomically.

    `pairs_or_data`: a pairs CSV (`image1,image2,same`) or a labelled DATA folder / feature STORE (balanced pairs
    drawn with `seed`). Written to `out` (a copy, every other file of the model carried over) or, by default, over
    `model_dir`. A fused model's fused score is recalibrated the same way. Returns (model, record, failures), the
    record being what `model.info["recalibrations"]` gained."""
    from painterid.scoring.loading import load_model

    model_dir, source = Path(model_dir), Path(pairs_or_data)
    model = load_model(model_dir)  # or a FusedModel: its members' embeddings side by side
    if source.is_file():
        vectors, rows = csv_pairs(model, source, device=device, runtime=runtime)
        left, failures = {}, []
    elif source.is_dir():
        vectors, rows, left, failures = data_pairs(model, source, store_dir, progress, device, seed, runtime)
    else:
        raise DataError(f"{source}: no such pairs CSV or DATA folder")
    check_pairs(rows[:, 2], str(source))
    scores = model.scores(vectors[rows[:, 0]], vectors[rows[:, 1]])
    record = {"source": str(source), "kind": "csv" if source.is_file() else "data", **refit(model, scores, rows[:, 2])}
    if left:
        record["left_out"], record["seed"] = left, seed
    model.info = copy.deepcopy(model.info)
    model.info["recalibrations"] = list(model.info.get("recalibrations", [])) + [record]
    extra, members = _kept_files(model_dir, model)
    target = Path(out) if out is not None else model_dir
    if getattr(model, "names", None):
        model.save(target, extra_files=extra, member_files=members)
    else:
        model.save(target, extra_files=extra)
    return model, record, failures
