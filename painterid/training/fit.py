"""Training the pair scorers over frozen embeddings; imported only by `painterid train`.

Every method is early-stopped and tuned on VALIDATION artists (never the test artists), then calibrated on
them: the threshold and the probability mapping come from pairs of artists the head never saw.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ..errors import DataError
from ..evaluation.metrics import best_threshold, roc_auc
from ..evaluation.pairs import balanced_pairs
from ..scoring.calibration import Calibrator
from ..scoring.heads import ClassifierHead, CosineScorer, MetricHead, SiameseHead
from ..scoring.model import PairModel
from ..defaults import DEFAULT_CHAIN, DEFAULT_METHOD
from ..scoring.normalise import AUTO_CHAINS, Chain

METRIC_LOSSES = ("supcon", "contrastive", "triplet", "multisimilarity", "arcface", "subcenter_arcface")


@dataclass
class TrainOptions:
    """Hyper-parameters of `painterid train` (defaults measured on ../shared/paintings, see docs/RESULTS.md)."""

    method: str = DEFAULT_METHOD  # best mean over both protocols (docs/RESULTS.md section 7)
    pairs: str = "all"  # siamese: "all" = every same-artist pair + as many different (the report); "triples"
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
    seed: int = 0
    extra: dict = field(default_factory=dict)


def _seed_everything(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return np.random.default_rng(seed)


def _artist_codes(artists: list[str]) -> tuple[np.ndarray, list[str]]:
    names = sorted(set(artists))
    lookup = {a: i for i, a in enumerate(names)}
    return np.array([lookup[a] for a in artists], dtype=np.int64), names


def report_triples(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The report's training pairs: each painting with ≥1 same-artist partner is a reference; it is paired with
    a random painting of the same artist (label 1) and a random painting of another artist (label 0)."""
    by_artist: dict[int, np.ndarray] = {}
    for c in np.unique(codes):
        by_artist[int(c)] = np.flatnonzero(codes == c)
    rows = []
    n = len(codes)
    for ref in rng.permutation(n):
        same = by_artist[int(codes[ref])]
        if len(same) < 2:
            continue
        partner = ref
        while partner == ref:
            partner = int(rng.choice(same))
        other = int(rng.integers(n))
        while codes[other] == codes[ref]:
            other = int(rng.integers(n))
        rows.append((ref, partner, 1))
        rows.append((ref, other, 0))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def _val_scores(head: nn.Module, xv: torch.Tensor, vpairs: np.ndarray) -> np.ndarray:
    head.eval()
    with torch.inference_mode():
        return head(xv[vpairs[:, 0]], xv[vpairs[:, 1]]).float().numpy()


def _bce_val_loss(scores: np.ndarray, labels: np.ndarray) -> float:
    t = torch.from_numpy(scores.astype(np.float32))
    return float(nn.functional.binary_cross_entropy_with_logits(t, torch.from_numpy(labels.astype(np.float32))))


def _metric_loss(name: str, n_classes: int, dim: int):
    from pytorch_metric_learning import distances, losses, miners

    if name == "supcon":
        return losses.SupConLoss(temperature=0.1), None
    if name == "contrastive":
        return losses.ContrastiveLoss(pos_margin=0.0, neg_margin=0.5, distance=distances.CosineSimilarity()), None
    if name == "triplet":
        return (losses.TripletMarginLoss(margin=0.2, distance=distances.CosineSimilarity()),
                miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard", distance=distances.CosineSimilarity()))
    if name == "multisimilarity":
        return losses.MultiSimilarityLoss(), miners.MultiSimilarityMiner()
    if name == "arcface":
        return losses.ArcFaceLoss(n_classes, dim, margin=28.6, scale=30), None
    if name == "subcenter_arcface":
        return losses.SubCenterArcFaceLoss(n_classes, dim, margin=28.6, scale=30, sub_centers=3), None
    raise ValueError(f"unknown metric loss {name!r}; choose from {', '.join(METRIC_LOSSES)}")


def _train_loop(head: nn.Module, opts: TrainOptions, step_epoch, xv, vpairs, log) -> tuple[nn.Module, list[dict]]:
    """Run epochs of `step_epoch`, keep the head state with the best validation AUC (early stopping)."""
    history: list[dict] = []
    best_auc, best_state, stale = -np.inf, copy.deepcopy(head.state_dict()), 0
    for epoch in range(1, opts.epochs + 1):
        head.train()
        train_loss = step_epoch(epoch)
        vs = _val_scores(head, xv, vpairs)
        auc = roc_auc(vs, vpairs[:, 2])
        rec = {"epoch": epoch, "train_loss": train_loss, "val_auc": auc}
        if opts.method == "siamese":
            rec["val_loss"] = _bce_val_loss(vs, vpairs[:, 2])
        history.append(rec)
        if log:
            log(rec)
        if auc > best_auc + 1e-4:
            best_auc, best_state, stale = auc, copy.deepcopy(head.state_dict()), 0
        else:
            stale += 1
            if stale >= opts.patience:
                break
    head.load_state_dict(best_state)
    return head.eval(), history


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
        trained_head: tuple[nn.Module, dict] | None = None,
        cohort_info: dict | None = None) -> tuple[PairModel, list[dict]]:
    """Train one method on the training paintings, stop and calibrate on the validation artists.

    The normaliser chain (`opts.normaliser`: one spec, several joined by "|", or "auto") is fitted first (its
    unsupervised steps on `cohort`, default a sample of the training paintings; wccn / lda on the training
    artists); the head is trained on the vectors it maps. With several candidate chains, one head is trained
    per distinct set of vector steps and the chain with the best validation-artist AUC is kept.
    `trained_head` = (head, constructor params): a head already trained elsewhere (finetune, cnn: training.finetune,
    end to end from pixels); it is not trained again, only given its normaliser (the score step of the chain:
    CSLS or none), calibration and threshold.
    """
    vpairs = balanced_pairs(list(val_artists), seed=opts.seed)
    if len(vpairs) == 0:
        raise DataError("the validation artists have no same-artist pairs (every one has a single painting); "
                        "use artists with two or more paintings, or a larger --val-artists")
    if cohort is None:
        cohort_idx = np.random.default_rng(opts.seed).permutation(len(train_x))[: opts.cohort_size]
        cohort = train_x[np.sort(cohort_idx)]
        cohort_info = {"source": "training paintings", **(cohort_info or {})}
    cohort = np.ascontiguousarray(cohort, dtype=np.float32)
    groups = _candidate_groups(opts.normaliser, len(cohort), trained_head is not None)
    tried: list[tuple[float, PairModel, list[dict]]] = []
    aucs: dict[str, float] = {}
    val_a, val_b, labels_v = val_x[vpairs[:, 0]], val_x[vpairs[:, 1]], vpairs[:, 2]
    for vector_spec, chains in groups.items():
        try:
            prefix = Chain.parse(vector_spec).fit(cohort, train_x, list(train_artists))
        except ValueError as exc:
            raise DataError(f"normaliser {vector_spec}: {exc}") from None
        model, history = _fit_head(prefix.apply(train_x), train_artists, prefix.apply(val_x), val_artists,
                                   embedding, opts, artists_split, train_hashes, log, trained_head)
        for chain in chains:
            model.chain = chain.fit(cohort, train_x, list(train_artists))
            aucs[chain.spec] = auc = roc_auc(model.scores(val_a, val_b), labels_v)
            tried.append((auc, copy.copy(model), history))
    _, model, history = max(tried, key=lambda t: t[0])
    model.cohort, model.cohort_info = cohort, dict(cohort_info or {"source": "given"})
    vscores = model.scores(val_a, val_b)
    model.calibrator = Calibrator.fit(vscores, labels_v)
    model.threshold = best_threshold(vscores, labels_v, criterion="accuracy")
    model.info = {
        "options": asdict(opts),
        "validation": {"pairs": int(len(vpairs)), "auc": float(roc_auc(vscores, labels_v)),
                       "auc_by_normaliser": {k: float(v) for k, v in aucs.items()}},
        "epochs_run": len(history),
        "n_train_paintings": int(len(train_x)), "n_train_artists": len(set(train_artists)),
    }
    return model, history


def _fit_head(train_x, train_artists, val_x, val_artists, embedding, opts, artists_split, train_hashes, log,
              trained_head) -> tuple[PairModel, list[dict]]:
    """Train the head of `opts.method` on (already normalised) vectors, early-stopped on validation artists."""
    rng = _seed_everything(opts.seed)
    xt = torch.from_numpy(np.ascontiguousarray(train_x, dtype=np.float32))
    xv = torch.from_numpy(np.ascontiguousarray(val_x, dtype=np.float32))
    codes, names = _artist_codes(list(train_artists))
    vpairs = balanced_pairs(list(val_artists), seed=opts.seed)
    if len(vpairs) == 0:
        raise DataError("the validation artists have no same-artist pairs (every one has a single painting); "
                        "use artists with two or more paintings, or a larger --val-artists")
    n_multi = int((np.bincount(codes) >= 2).sum()) if len(codes) else 0
    if opts.method in ("siamese", "metric") and n_multi < 2:  # else: no pairs to learn from (or a sampler crash)
        raise DataError(f"{opts.method} training needs two or more training artists with at least two paintings "
                        f"each (found {n_multi}); use more paintings per artist, or --method cosine")
    dim = xt.shape[1]
    gen = torch.Generator().manual_seed(opts.seed)
    history: list[dict] = []

    if trained_head is not None:
        head, params = trained_head[0].eval(), dict(trained_head[1])
    elif opts.method == "cosine":
        head, params = CosineScorer(), {}
    elif opts.method == "siamese":
        params = {"hidden": opts.hidden, "dropout": opts.dropout}
        head = SiameseHead(dim, **params)
        optim = torch.optim.AdamW(head.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
        lossf = nn.BCEWithLogitsLoss()

        def step(epoch):
            if opts.pairs == "triples":
                trip = torch.from_numpy(report_triples(codes, rng))
            else:  # negatives re-drawn every epoch
                trip = torch.from_numpy(balanced_pairs(list(train_artists), seed=opts.seed * 1000 + epoch,
                                                       max_pos=opts.max_pairs // 2))
            order = torch.randperm(len(trip), generator=gen)
            total = 0.0
            for s in range(0, len(trip), opts.batch_size):
                b = trip[order[s:s + opts.batch_size]]
                logit = head(xt[b[:, 0]], xt[b[:, 1]])
                loss = lossf(logit, b[:, 2].float())
                optim.zero_grad()
                loss.backward()
                optim.step()
                total += loss.item() * len(b)
            return total / max(1, len(trip))

        head, history = _train_loop(head, opts, step, xv, vpairs, log)
    elif opts.method == "metric":
        from pytorch_metric_learning.samplers import MPerClassSampler

        params = {"out_dim": opts.out_dim, "hidden": opts.hidden * 2}
        head = MetricHead(dim, **params)
        loss_fn, miner = _metric_loss(opts.loss, len(names), opts.out_dim)
        groups = [{"params": head.parameters()}]
        if any(True for _ in loss_fn.parameters()):
            groups.append({"params": loss_fn.parameters(), "lr": opts.lr * 10})
        optim = torch.optim.AdamW(groups, lr=opts.lr, weight_decay=opts.weight_decay)
        labels = torch.from_numpy(codes)
        multi = np.bincount(codes)[codes] >= 2
        keep = np.flatnonzero(multi)
        n_multi = len(np.unique(codes[keep]))
        batch = min(opts.batch_size, len(keep), opts.m_per_class * n_multi)
        batch = max(opts.m_per_class * 2, batch // opts.m_per_class * opts.m_per_class)

        def step(epoch):
            torch.manual_seed(opts.seed * 1000 + epoch)
            sampler = MPerClassSampler(labels[keep].tolist(), m=opts.m_per_class, batch_size=batch,
                                       length_before_new_iter=max(batch, len(keep)))
            idx = torch.from_numpy(keep)[torch.tensor(list(iter(sampler)))]
            total, n = 0.0, 0
            for s in range(0, len(idx), batch):
                b = idx[s:s + batch]
                z = head.space(xt[b])
                y = labels[b]
                loss = loss_fn(z, y, miner(z, y)) if miner is not None else loss_fn(z, y)
                optim.zero_grad()
                loss.backward()
                optim.step()
                total += loss.item() * len(b)
                n += len(b)
            return total / max(1, n)

        head, history = _train_loop(head, opts, step, xv, vpairs, log)
    elif opts.method == "classifier":
        params = {"n_classes": len(names), "hidden": opts.hidden * 2, "dropout": opts.dropout}
        head = ClassifierHead(dim, **params)
        optim = torch.optim.AdamW(head.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
        labels = torch.from_numpy(codes)
        lossf = nn.CrossEntropyLoss(label_smoothing=0.1)

        def step(epoch):
            order = torch.randperm(len(xt), generator=gen)
            total = 0.0
            for s in range(0, len(order), opts.batch_size):
                b = order[s:s + opts.batch_size]
                loss = lossf(head.logits(xt[b]), labels[b])
                optim.zero_grad()
                loss.backward()
                optim.step()
                total += loss.item() * len(b)
            return total / max(1, len(order))

        head, history = _train_loop(head, opts, step, xv, vpairs, log)
    else:
        raise ValueError(f"unknown method {opts.method!r}")

    model = PairModel(opts.method, embedding, head, params, artists=artists_split, train_hashes=train_hashes or [])
    return model, history
