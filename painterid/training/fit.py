"""Training the pair scorers over frozen embeddings; imported only by `painterid train`.

Every method is early-stopped and tuned on VALIDATION artists (never the test artists), then calibrated on
them: the threshold and the probability mapping come from pairs of artists the head never saw.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn

from painterid.core.defaults import DEFAULT_CALIBRATION, DEFAULT_CHAIN, DEFAULT_METHOD
from painterid.core.errors import DataError, PainterIDError
from painterid.data.pairs import balanced_pairs
from painterid.scoring.calibration import CALIBRATIONS, Calibrator
from painterid.scoring.methods import LOSS_REGISTRY, METHOD_REGISTRY
from painterid.scoring.metrics import best_threshold, roc_auc
from painterid.scoring.model import PairModel
from painterid.scoring.normalise import AUTO_CHAINS, Chain
from painterid.training.trainer import Trainer, optimiser_step, seed_everything


@dataclass
class TrainOptions:
    """Hyper-parameters of `painterid train` (defaults measured on ../shared/paintings, see docs/RESULTS.md)."""

    method: str = DEFAULT_METHOD  # best mean over both protocols (docs/RESULTS.md, "Which default, and why")
    max_pairs: int = 200_000
    epochs: int = 40
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    patience: int = 8
    hidden: int = 256
    dropout: float = 0.3
    out_dim: int = 128
    loss: str = "supcon"
    m_per_class: int = 2
    normaliser: str = DEFAULT_CHAIN  # a chain (scoring.normalise), several joined by "|", or auto (best on validation)
    csls_k: int = 10
    cohort_size: int = 4096
    calibration: str = DEFAULT_CALIBRATION  # scoring.calibration.CALIBRATIONS (docs/RESULTS.md, "Calibration")
    calibration_folds: int = 4
    seed: int = 0




def _artist_codes(artists: list[str]) -> tuple[np.ndarray, list[str]]:
    names = sorted(set(artists))
    lookup = {a: i for i, a in enumerate(names)}
    return np.array([lookup[a] for a in artists], dtype=np.int64), names


def _val_scores(head: nn.Module, xv: torch.Tensor, vpairs: np.ndarray) -> np.ndarray:
    head.eval()
    with torch.inference_mode():
        return head(xv[vpairs[:, 0]], xv[vpairs[:, 1]]).float().numpy()


def _bce_val_loss(scores: np.ndarray, labels: np.ndarray) -> float:
    t = torch.from_numpy(scores.astype(np.float32))
    return float(nn.functional.binary_cross_entropy_with_logits(t, torch.from_numpy(labels.astype(np.float32))))


@dataclass
class HeadData:
    """What a head recipe trains from: training vectors and artist codes, validation vectors and pairs."""

    xt: torch.Tensor
    codes: np.ndarray
    names: list[str]
    train_artists: list[str]
    xv: torch.Tensor
    vpairs: np.ndarray
    opts: TrainOptions
    gen: torch.Generator

    @property
    def dim(self) -> int:
        return int(self.xt.shape[1])


@dataclass
class HeadRecipe:
    """A head to train: the module, its constructor params, and one epoch of training (None: nothing to train)."""

    head: nn.Module
    params: dict
    step_epoch: Callable[[int], float] | None = None
    val_loss: bool = False  # record the validation BCE (heads whose score is a logit)


def _batches(n: int, size: int, order: torch.Tensor):
    for s in range(0, n, size):
        yield order[s:s + size]


def cosine_recipe(d: HeadData) -> HeadRecipe:
    return HeadRecipe(METHOD_REGISTRY.get("cosine").head(d.dim), {})


def siamese_recipe(d: HeadData) -> HeadRecipe:
    opts = d.opts
    params = {"hidden": opts.hidden, "dropout": opts.dropout}
    head = METHOD_REGISTRY.get("siamese").head(d.dim, **params)
    optim = torch.optim.AdamW(head.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    lossf = nn.BCEWithLogitsLoss()

    def step(epoch: int) -> float:  # negatives re-drawn every epoch
        trip = torch.from_numpy(balanced_pairs(d.train_artists, seed=opts.seed * 1000 + epoch,
                                               max_pos=opts.max_pairs // 2))
        total = 0.0
        for idx in _batches(len(trip), opts.batch_size, torch.randperm(len(trip), generator=d.gen)):
            b = trip[idx]
            loss = lossf(head(d.xt[b[:, 0]], d.xt[b[:, 1]]), b[:, 2].float())
            optimiser_step(loss, optim)
            total += loss.item() * len(b)
        return total / max(1, len(trip))

    return HeadRecipe(head, params, step, val_loss=True)


def metric_recipe(d: HeadData) -> HeadRecipe:
    from pytorch_metric_learning.samplers import MPerClassSampler

    opts, codes = d.opts, d.codes
    params = {"out_dim": opts.out_dim, "hidden": opts.hidden * 2}
    head = METHOD_REGISTRY.get("metric").head(d.dim, **params)
    loss_fn, miner = LOSS_REGISTRY.get(opts.loss).make(len(d.names), opts.out_dim)
    groups = [{"params": head.parameters()}]
    if any(True for _ in loss_fn.parameters()):
        groups.append({"params": loss_fn.parameters(), "lr": opts.lr * 10})
    optim = torch.optim.AdamW(groups, lr=opts.lr, weight_decay=opts.weight_decay)
    labels = torch.from_numpy(codes)
    keep = np.flatnonzero(np.bincount(codes)[codes] >= 2)
    n_multi = len(np.unique(codes[keep]))
    batch = min(opts.batch_size, len(keep), opts.m_per_class * n_multi)
    batch = max(opts.m_per_class * 2, batch // opts.m_per_class * opts.m_per_class)

    def step(epoch: int) -> float:
        torch.manual_seed(opts.seed * 1000 + epoch)
        sampler = MPerClassSampler(labels[keep].tolist(), m=opts.m_per_class, batch_size=batch,
                                   length_before_new_iter=max(batch, len(keep)))
        idx = torch.from_numpy(keep)[torch.tensor(list(iter(sampler)))]
        total, n = 0.0, 0
        for b in _batches(len(idx), batch, idx):
            z, y = head.space(d.xt[b]), labels[b]
            loss = loss_fn(z, y, miner(z, y)) if miner is not None else loss_fn(z, y)
            optimiser_step(loss, optim)
            total += loss.item() * len(b)
            n += len(b)
        return total / max(1, n)

    return HeadRecipe(head, params, step)


def classifier_recipe(d: HeadData) -> HeadRecipe:
    opts = d.opts
    params = {"n_classes": len(d.names), "hidden": opts.hidden * 2, "dropout": opts.dropout}
    head = METHOD_REGISTRY.get("classifier").head(d.dim, **params)
    optim = torch.optim.AdamW(head.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    labels = torch.from_numpy(d.codes)
    lossf = nn.CrossEntropyLoss(label_smoothing=0.1)

    def step(epoch: int) -> float:
        total = 0.0
        for b in _batches(len(d.xt), opts.batch_size, torch.randperm(len(d.xt), generator=d.gen)):
            loss = lossf(head.logits(d.xt[b]), labels[b])
            optimiser_step(loss, optim)
            total += loss.item() * len(b)
        return total / max(1, len(d.xt))

    return HeadRecipe(head, params, step)


def train_head(d: HeadData, log=None) -> tuple[nn.Module, dict, list[dict]]:
    """Look up `d.opts.method`'s recipe, train its head with early stopping; returns (head, params, history)."""
    method = METHOD_REGISTRY.get(d.opts.method)
    if method.from_images:
        raise PainterIDError(f"--method {method.name} trains from image files (training.train_from_images)")
    recipe = method.load_recipe()(d)
    if recipe.step_epoch is None:
        return recipe.head, recipe.params, []
    head = recipe.head

    def step(epoch: int) -> float:
        head.train()
        return recipe.step_epoch(epoch)

    def validate() -> dict:
        vs = _val_scores(head, d.xv, d.vpairs)
        rec = {"val_auc": roc_auc(vs, d.vpairs[:, 2])}
        if recipe.val_loss:
            rec["val_loss"] = _bce_val_loss(vs, d.vpairs[:, 2])
        return rec

    history = Trainer(d.opts.epochs, d.opts.patience, log).run(step, validate, (head,))
    return head.eval(), recipe.params, history


def _check_trainable(opts: TrainOptions, codes: np.ndarray, vpairs: np.ndarray) -> None:
    if len(vpairs) == 0:
        raise DataError("the validation artists have no same-artist pairs (every one has a single painting); "
                        "use artists with two or more paintings, or a larger --val-artists")
    n_multi = int((np.bincount(codes) >= 2).sum()) if len(codes) else 0
    if opts.method in ("siamese", "metric") and n_multi < 2:  # else: no pairs to learn from (or a sampler crash)
        raise DataError(f"{opts.method} training needs two or more training artists with at least two paintings "
                        f"each (found {n_multi}); use more paintings per artist, or --method cosine")


def normaliser_candidates(spec: str) -> list[str]:
    """The chains `fit` tries: "auto" = normalise.AUTO_CHAINS; several chains joined by "|" (e.g.
    "none|csls"); else the one chain `spec`."""
    if spec == "auto":
        return list(AUTO_CHAINS)
    return [c.strip() for c in spec.split("|") if c.strip()] or ["none"]


def _candidate_groups(spec: str, n_cohort: int, head_is_trained: bool) -> dict[str, list[Chain]]:
    """The candidate chains, grouped by their vector steps (one head is trained per group)."""
    groups: dict[str, list[Chain]] = {}
    for one in normaliser_candidates(spec):
        try:
            chain = Chain.parse(one)
        except ValueError as exc:
            raise DataError(str(exc)) from None
        if head_is_trained:  # a head trained on raw vectors elsewhere: no vector steps before it
            chain = Chain([chain.score_step] if chain.score_step is not None else [])
        if chain.score_step is not None and n_cohort <= chain.score_step.params["k"]:
            continue  # too small a cohort for CSLS
        if all(c.spec != chain.spec for cs in groups.values() for c in cs):
            groups.setdefault(Chain(chain.vector_steps).spec, []).append(chain)
    return groups or {"none": [Chain([])]}


def fit(train_x: np.ndarray, train_artists: list[str], val_x: np.ndarray, val_artists: list[str],
        embedding: dict, opts: TrainOptions, artists_split: dict[str, list[str]] | None = None,
        train_hashes: list[str] | None = None, log=None, cohort: np.ndarray | None = None,
        trained_head: tuple[nn.Module, dict] | None = None, cohort_info: dict | None = None,
        patches=None, cohort_hashes: list[str] | None = None,
        val_hashes: list[str] | None = None) -> tuple[PairModel, list[dict]]:
    """Train one method on the training paintings, stop and calibrate on the validation artists.

    The normaliser chain (`opts.normaliser`: one spec, several joined by "|", or "auto") is fitted first (its
    unsupervised steps on `cohort`, default a sample of the training paintings; wccn / lda on the training
    artists); the head is trained on the vectors it maps. With several candidate chains, one head is trained
    per distinct set of vector steps and the chain with the best validation-artist AUC is kept.
    `trained_head` = (head, constructor params): a head already trained elsewhere (finetune, cnn: training.finetune,
    end to end from pixels); it is not trained again, only given its normaliser (the score step of the chain:
    CSLS or none), calibration and threshold.
    `patches` (a painterid.embedding.patches.PatchSource: sha256s -> per-patch vectors) is what a `selfsup` step is trained
    on: the patches of the cohort (`cohort_hashes`, default the training paintings picked as the cohort).
    """
    vpairs = balanced_pairs(list(val_artists), seed=opts.seed)
    if len(vpairs) == 0:
        raise DataError("the validation artists have no same-artist pairs (every one has a single painting); "
                        "use artists with two or more paintings, or a larger --val-artists")
    if cohort is None:
        cohort_idx = np.sort(np.random.default_rng(opts.seed).permutation(len(train_x))[: opts.cohort_size])
        cohort = train_x[cohort_idx]
        cohort_info = {"source": "training paintings", **(cohort_info or {})}
        cohort_hashes = [train_hashes[i] for i in cohort_idx] if train_hashes else None
    cohort = np.ascontiguousarray(cohort, dtype=np.float32)
    groups = _candidate_groups(opts.normaliser, len(cohort), trained_head is not None)
    cohort_patches = _cohort_patches(patches, cohort_hashes)
    tried: list[tuple[float, PairModel, list[dict]]] = []
    aucs: dict[str, float] = {}
    val_a, val_b, labels_v = val_x[vpairs[:, 0]], val_x[vpairs[:, 1]], vpairs[:, 2]
    for vector_spec, chains in groups.items():
        try:
            prefix = Chain.parse(vector_spec).fit(cohort, train_x, list(train_artists), patches=cohort_patches,
                                                  validation=(val_x, vpairs))
        except ValueError as exc:
            raise DataError(f"normaliser {vector_spec}: {exc}") from None
        model, history = _fit_head(prefix.apply(train_x), train_artists, prefix.apply(val_x), val_artists,
                                   embedding, opts, artists_split, train_hashes, log, trained_head)
        for chain in chains:
            model.chain = prefix.with_score_step(chain.score_step, cohort)
            aucs[chain.spec] = auc = roc_auc(model.scores(val_a, val_b), labels_v)
            tried.append((auc, copy.copy(model), history))
    _, model, history = max(tried, key=lambda t: t[0])
    model.cohort, model.cohort_info = cohort, dict(cohort_info or {"source": "given"})
    vscores = model.scores(val_a, val_b)
    hashes = (list(train_hashes) + list(val_hashes)) if train_hashes and val_hashes else None
    calibration = _calibrate(model, vscores, labels_v, train_x, train_artists, val_x, val_artists, embedding, opts,
                             trained_head is not None, patches if hashes else None, hashes)
    model.info = {
        "options": asdict(opts),
        "validation": {"pairs": int(len(vpairs)), "auc": float(roc_auc(vscores, labels_v)),
                       "auc_by_normaliser": {k: float(v) for k, v in aucs.items()}},
        "epochs_run": len(history),
        "n_train_paintings": int(len(train_x)), "n_train_artists": len(set(train_artists)),
        "calibration": calibration,
    }
    return model, history


def _cohort_patches(patches, hashes: list[str] | None):
    """A function returning the cohort's per-patch vectors once (selfsup), or None when they cannot be had."""
    if patches is None or not hashes:
        return None
    return functools.cache(lambda: patches(hashes))


def _calibrate(model: PairModel, vscores: np.ndarray, labels_v: np.ndarray, train_x, train_artists, val_x,
               val_artists, embedding: dict, opts: TrainOptions, head_is_trained: bool, patches=None,
               hashes: list[str] | None = None) -> dict:
    """Fit the model's calibrator and threshold (opts.calibration); returns what was done, for model.info.

    Both start from the validation artists' pairs (Platt scaling, the accuracy-best threshold). "crossfit" then
    recalibrates the probabilities: how the validation-calibrated logits of the same procedure fare on artists
    left out of it (crossfit_logits) gives a second logistic fit, composed with the first; the threshold stays."""
    if opts.calibration not in CALIBRATIONS:
        raise PainterIDError(f"unknown calibration '{opts.calibration}'; choose one of: {', '.join(CALIBRATIONS)}")
    model.calibrator = Calibrator.fit(vscores, labels_v)
    model.threshold = best_threshold(vscores, labels_v, criterion="accuracy")
    info = {"kind": "validation", "pairs": int(len(labels_v))}
    if opts.calibration == "crossfit" and head_is_trained:
        info["crossfit_skipped"] = "the head was trained from images; refitting it per fold is not done"
    elif opts.calibration == "crossfit" and model.chain.needs_patches and not hashes:
        info["crossfit_skipped"] = "selfsup needs the paintings' patches and their hashes were not given"
    elif opts.calibration == "crossfit":
        x = np.concatenate([train_x, val_x])
        z, y, folds = crossfit_logits(x, list(train_artists) + list(val_artists), embedding,
                                      replace(opts, normaliser=model.normaliser), opts.calibration_folds,
                                      patches, hashes)
        if folds >= 2 and len(np.unique(y)) == 2:
            recal = Calibrator.fit(z, y)
            model.calibrator = model.calibrator.then(recal)
            info = {"kind": "crossfit", "validation_pairs": info["pairs"], "folds": folds, "pairs": int(len(y)),
                    "auc": roc_auc(z, y), "recalibration": recal.to_dict()}
        else:
            info["crossfit_skipped"] = f"only {folds} usable artist folds"
    return info


def crossfit_logits(x: np.ndarray, artists: list[str], embedding: dict, opts: TrainOptions,
                    folds: int = 4, patches=None, hashes: list[str] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, int]:
    """Out-of-fold logits of the whole training procedure: (calibrated logits, labels, folds used).

    The artists are cut into `folds` groups (sklearn GroupKFold); for each, `fit` runs on the other artists
    (their own 25% validation artists for early stopping and its calibration, their paintings as the cohort) with
    `opts`, and scores balanced pairs of the held-out artists, whom that model never saw, as logits of its own
    validation calibration (so that folds' scores are on one scale). A fold whose artists form no same-artist
    pair, or whose rest cannot be trained, is skipped."""
    from sklearn.model_selection import GroupKFold

    from painterid.data.splits import split_paintings

    inner = replace(opts, calibration="validation")
    scores, labels, used = [], [], 0
    n_groups = len(set(artists))
    for rest, held in GroupKFold(n_splits=max(2, min(folds, n_groups))).split(x, groups=artists):
        pairs = balanced_pairs([artists[i] for i in held], seed=opts.seed)
        rest_artists = [artists[i] for i in rest]
        sp = split_paintings(rest_artists, val=0.25, test=0.0, holdout=0.0, seed=opts.seed)["indices"]
        if len(pairs) == 0 or not len(sp["val"]):
            continue
        tr, va = rest[sp["train"]], rest[sp["val"]]
        try:
            model, _ = fit(x[tr], [artists[i] for i in tr], x[va], [artists[i] for i in va], embedding, inner,
                           train_hashes=[hashes[i] for i in tr] if hashes else None, patches=patches)
        except PainterIDError:
            continue
        xh = x[held]
        scores.append(model.calibrator.logit(model.scores(xh[pairs[:, 0]], xh[pairs[:, 1]])))
        labels.append(pairs[:, 2])
        used += 1
    if not used:
        return np.zeros(0, np.float32), np.zeros(0, np.int64), 0
    return np.concatenate(scores), np.concatenate(labels), used


def _fit_head(train_x, train_artists, val_x, val_artists, embedding, opts, artists_split, train_hashes, log,
              trained_head) -> tuple[PairModel, list[dict]]:
    """Train the head of `opts.method` on (already normalised) vectors, early-stopped on validation artists."""
    seed_everything(opts.seed)
    codes, names = _artist_codes(list(train_artists))
    vpairs = balanced_pairs(list(val_artists), seed=opts.seed)
    _check_trainable(opts, codes, vpairs)
    history: list[dict] = []
    if trained_head is not None:
        head, params = trained_head[0].eval(), dict(trained_head[1])
    else:
        data = HeadData(torch.from_numpy(np.ascontiguousarray(train_x, dtype=np.float32)), codes, names,
                        list(train_artists), torch.from_numpy(np.ascontiguousarray(val_x, dtype=np.float32)),
                        vpairs, opts, torch.Generator().manual_seed(opts.seed))
        head, params, history = train_head(data, log)
    model = PairModel(opts.method, embedding, head, params, artists=artists_split, train_hashes=train_hashes or [])
    return model, history
