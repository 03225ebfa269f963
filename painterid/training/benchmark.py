"""`painterid benchmark`: which encoder serves this collection best? Each backbone embeds the user's labelled
paintings (cached feature stores, so a second run only scores), then is scored under the unseen-artist protocols
of :mod:`painterid.evaluation.protocols` (artist-disjoint random folds, and leave-one-source-out when the data set
has sources.csv), with the default scoring (``train``'s default method and normaliser chain) and with a trained
head; with the seconds per image, the dimension and the memory of each.  The table, the bar chart and the choice
are :mod:`painterid.evaluation.benchmark_report`.

bench/backbones.py is a thin caller of :func:`run_benchmark` (one implementation).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from painterid.core.defaults import DEFAULT_VIEW
from painterid.core.errors import PainterIDError
from painterid.embedding.embedder import EmbeddingConfig
from painterid.embedding.pipeline import data_embedder
from painterid.embedding.pipeline import labelled
from painterid.embedding.weights import ensure_weights
from painterid.evaluation.protocols import folds, mean_std, metrics, test_pairs
from painterid.training.fit import TrainOptions, fit

#: The trained head the benchmark puts beside the default scoring (scoring.methods).
DEFAULT_HEAD = "siamese"


@dataclass(frozen=True)
class BenchmarkOptions:
    """What `painterid benchmark` runs: the view, the folds, the head and its epochs."""

    view: str = DEFAULT_VIEW
    pool: str | None = None  # None: each backbone's own default pooling
    seeds: tuple[int, ...] = (0, 1, 2)
    protocols: tuple[str, ...] = ("random", "loso")
    head: str = DEFAULT_HEAD
    epochs: int = 40
    timing_images: int = 8
    batch_size: int = 16
    runtime: str | None = None  # auto | onnx | torch (embedding.runtime.make_embedder), as every command
    device: str | None = None


def parse_weights(items: list[str] | None, backbones: list[str]) -> dict[str, str]:
    """``--weights BACKBONE=FILE`` (repeatable) → {backbone: file}; a backbone not benchmarked is refused."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, path = str(item).rpartition("=")
        if not sep or name not in backbones:
            raise PainterIDError(f"--weights takes BACKBONE=FILE with BACKBONE one of the --backbone names, got "
                                 f"'{item}'")
        out[name] = path
    return out


def set_auc_hook():
    """The "set AUC at K = 3" column: the default set score of `painterid verify` (evaluation.sets)."""
    from painterid.evaluation.sets import benchmark_set_auc

    return benchmark_set_auc


def _rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def _weights_mb(embedder) -> float | None:
    """MiB of the encoder's weights: its parameters (torch) or its ONNX file."""
    extractor = getattr(embedder, "extractor", None)
    if extractor is not None:
        return round(sum(p.numel() * p.element_size() for p in extractor.parameters()) / 2**20, 1)
    size = (getattr(embedder, "record", None) or {}).get("onnx_bytes")
    return round(size / 2**20, 1) if size else None


def measure_encoder(embedder, files: list, n: int) -> dict:
    """Seconds per image (one image to warm up, then ``n`` images embedded from their files, decoding included),
    dimension, float32 weights in MiB and the process's resident memory after it."""
    files = [f for f in files if Path(f).is_file()][: n + 1]
    if files:
        embedder.embed_files(files[:1])
    t0 = time.perf_counter()
    if len(files) > 1:
        embedder.embed_files(files[1:])
    secs = (time.perf_counter() - t0) / max(1, len(files) - 1)
    return {"dim": int(embedder.dim), "s_per_image": round(secs, 4) if len(files) > 1 else None,
            "runtime": getattr(embedder, "runtime", "torch"), "weights_mb": _weights_mb(embedder), "rss_mb": None if (r := _rss_mb()) is None else round(r, 1)}


def _scorings(opts: BenchmarkOptions, seed: int) -> dict[str, TrainOptions]:
    return {"default": TrainOptions(seed=seed, epochs=opts.epochs),
            "head": TrainOptions(method=opts.head, seed=seed, epochs=opts.epochs)}


def score_encoder(lab, opts: BenchmarkOptions, log=None) -> dict:
    """Unseen-artist AUC of one embedding under each protocol (and fold) with the default scoring and the head:
    ``{"auc": {"random.default": {mean, std, n}, ...}, "set_auc_k3": {...} (with the hook), "folds": [...]}``."""
    protocols = [p for p in opts.protocols if p != "loso" or lab.sources]
    hook = set_auc_hook()
    rows = []
    for proto, fold, tr, va, test, split, seed in folds(lab, protocols, opts.seeds):
        for scoring, topts in _scorings(opts, seed).items():
            model, _ = fit(lab.vectors[tr], [lab.artists[i] for i in tr], lab.vectors[va],
                           [lab.artists[i] for i in va], lab.embedding, topts, artists_split=split,
                           train_hashes=[lab.hashes[i] for i in tr], val_hashes=[lab.hashes[i] for i in va])
            pairs, within = test_pairs(proto, model, lab, test, seed)
            row = {"protocol": proto, "fold": fold, "scoring": scoring,
                   **metrics(model.score_pairs(lab.vectors, pairs), pairs, within, model.threshold)}
            if hook is not None:
                row["set_auc_k3"] = hook(model, lab, np.unique(pairs[:, :2]), k=3)
            rows.append(row)
            if log:
                log(f"{proto} {fold} {scoring}: unseen AUC {row['unseen.auc']:.3f}")
    out: dict = {"auc": {}, "folds": rows}
    for key in dict.fromkeys((r["protocol"], r["scoring"]) for r in rows):
        sel = [r for r in rows if (r["protocol"], r["scoring"]) == key]
        out["auc"][".".join(key)] = mean_std(r["unseen.auc"] for r in sel)
        if hook is not None:
            out.setdefault("set_auc_k3", {})[".".join(key)] = mean_std(r.get("set_auc_k3") for r in sel)
    return out


def benchmark_encoder(data: str | Path, backbone: str, opts: BenchmarkOptions, weights: str | None = None,
                      progress=None, log=None) -> dict:
    """One encoder: embedded into its cached store, measured, scored (:func:`score_encoder`)."""
    config = EmbeddingConfig(backbone=backbone, view=opts.view, pool=opts.pool, weights=weights)
    embedder = data_embedder(config, device=opts.device, runtime=opts.runtime, batch_size=opts.batch_size)
    lab = labelled(data, embedder, progress=progress)
    if len(set(lab.artists)) < 6:
        raise PainterIDError(f"{data}: {len(set(lab.artists))} artists; the benchmark's artist-disjoint folds need "
                             "at least 6")
    cost = measure_encoder(embedder, list(lab.paths or []), opts.timing_images)
    fp = embedder.fingerprint
    row = {"backbone": backbone, "timm_name": fp["timm_name"], "weights_id": fp["weights_id"],
           "weights_file": fp["weights_file"], "view": fp["view"],
           "pool": fp["pool"], "input_size": list(fp["input_size"]), "images": len(lab.artists),
           "artists": len(set(lab.artists)), "failures": len(lab.failures), **cost}
    row.update(score_encoder(lab, opts, log=log))
    return row


def run_benchmark(data: str | Path, backbones: list[str], opts: BenchmarkOptions = BenchmarkOptions(),
                  weights: dict[str, str] | None = None, progress=None, log=None) -> dict:
    """Every encoder of ``backbones`` on DATA (:func:`benchmark_encoder`), and the best choice with the commands
    that make a model of it (:func:`painterid.evaluation.benchmark_report.best_choice`)."""
    from painterid.evaluation.benchmark_report import best_choice
    from painterid.scoring.fusion import parse_backbones

    names = parse_backbones(",".join(backbones)) if backbones else []
    if not names:
        raise PainterIDError("benchmark needs at least one --backbone")
    weights = weights or {}
    for name in names:  # missing weights: one line (or a download) before any work
        ensure_weights(name, weights.get(name))
    rows = [benchmark_encoder(data, name, opts, weights.get(name), progress=progress, log=log) for name in names]
    result = {"data": str(data), "view": opts.view, "seeds": list(opts.seeds), "head": opts.head,
              "epochs": opts.epochs, "cpus": os.cpu_count(), "encoders": rows}
    result["best"] = best_choice(result)
    return result
