"""Training the image→vector network itself, from image files (imported only by `painterid train`).

Two methods of the seed report:

* ``finetune`` (the report's fine-tuned Xception): the pretrained backbone with its **last stage** unfrozen and an
  artist classifier on its pooled features.  The classifier is a cosine classifier (normalised features and
  class weights, fixed scale, label smoothing), so the training objective and the pair score agree: the pair
  score at test time is the cosine of the two fine-tuned embeddings.  The report went on to feed the fine-tuned
  features to its siamese head; cosine keeps the method one step and leaves that combination to ``siamese``
  over a store embedded with the fine-tuned backbone.
* ``cnn`` (the report's baseline): a CNN trained end to end from pixels, from a random initialisation (the
  registry's ``cnn_baseline`` unless ``--backbone`` names another architecture), as a siamese network: one
  forward pass for both paintings of a pair, :class:`~painterid.scoring.heads.SiameseHead` over ``|a-b|`` and
  ``a*b`` of the L2-normalised pooled features, binary cross-entropy; balanced pairs re-drawn every epoch.

The **last stage** of a timm backbone is found generically: the modules the forward pass runs after the
second-to-last map of ``model.feature_info`` (the last resolution step), the classifier excluded.  That is
``blocks.5``, ``blocks.6``, ``conv_head`` and ``bn2`` for EfficientNet, ``layer4`` for a ResNet, the exit flow
(``block12``, ``conv3``, ``conv4``) for Xception, the last transformer block and the final norm for a ViT.
The frozen part stays in eval mode, so its batch-norm statistics do not move either: the saved backbone
differs from the pretrained one only in the last stage.

Validation ARTISTS (never trained on) pick the epoch: after every epoch their paintings are embedded with the
current network exactly as ``compare`` will embed them, and the epoch with the best validation ROC AUC is kept.
The kept network is saved as ``MODEL/backbone.safetensors``; the training and validation paintings are embedded
again from that file, and :func:`painterid.training.fit.fit` chooses the normaliser, calibrates and sets the
threshold on the validation artists as for every other method.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..datasets import discover, split_paintings
from ..embedding import Embedder, EmbeddingConfig, pick_device
from ..errors import DataError, ImageError, PainterIDError
from ..evaluation.metrics import roc_auc
from ..evaluation.pairs import balanced_pairs
from ..images import VIEW_COMBINE
from ..scoring.heads import CosineScorer, SiameseHead
from ..scoring.model import BACKBONE_FILE, PairModel
from ..store import FeatureStore, file_sha256
from .curves import curves_png
from .fit import TrainOptions, fit

__all__ = ["IMAGE_METHODS", "CNN_BACKBONE", "CROP_SCALE", "last_stage", "train_from_images"]

IMAGE_METHODS = ("finetune", "cnn")
CNN_BACKBONE = "cnn_baseline"
CROP_SCALE = (0.25, 1.0)  # random resized crops cover a quarter to all of the painting
FINETUNE_LR_FACTOR = 0.1  # the unfrozen stage learns at lr / 10, the new classifier at lr
CLASSIFIER_SCALE = 16.0


# --------------------------------------------------------------------------------------------- the last stage


def last_stage(model: nn.Module, input_size: tuple[int, int, int] | None = None) -> list[str]:
    """Names of the modules of ``model``'s last stage: those ``forward_features`` runs after the second-to-last
    ``feature_info`` map, the classifier excluded (found by one dry run in eval mode at ``input_size``, default
    the model's own)."""
    info = getattr(model, "feature_info", None)
    info = list(info.get_dicts()) if hasattr(info, "get_dicts") else [dict(d) for d in (info or [])]
    if len(info) < 2:
        raise PainterIDError(f"cannot find the last stage of {type(model).__name__}: it has no feature_info stages")
    boundary = str(info[-2]["module"])
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    skip = {id(m) for m in classifier.modules()} if isinstance(classifier, nn.Module) else set()
    passed, after, hooks = [False], [], []

    def pre(name):
        def fn(_module, _inputs):
            if passed[0] and name not in after:
                after.append(name)
        return fn

    def post(_module, _inputs, _output):
        passed[0] = True

    for name, m in model.named_modules():
        if name and id(m) not in skip:
            hooks.append(m.register_forward_pre_hook(pre(name)))
    hooks.append(model.get_submodule(boundary).register_forward_hook(post))
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        param = next(model.parameters())
        size = tuple(input_size) if input_size else _input_size(model)
        with torch.no_grad():
            model.forward_features(torch.zeros((1, *size), device=param.device, dtype=param.dtype))
    finally:
        for h in hooks:
            h.remove()
        for m, mode in modes.items():
            m.training = mode
    if not any(p.numel() for n in after for p in model.get_submodule(n).parameters(recurse=False)):
        raise PainterIDError(f"the last stage of {type(model).__name__} (after {boundary}) has no parameters")
    return after


def _input_size(model: nn.Module) -> tuple[int, int, int]:
    from ..features import _input_size as size

    return size(model)


def _freeze_all_but(model: nn.Module, modules: list[str]) -> list[nn.Parameter]:
    """requires_grad only for the parameters of `modules`; returns them."""
    model.requires_grad_(False)
    params = []
    for n in modules:
        for p in model.get_submodule(n).parameters(recurse=False):
            p.requires_grad_(True)
            params.append(p)
    return params


def _train_mode(model: nn.Module, modules: list[str] | None) -> None:
    """Train mode for `modules` (None: the whole network); the frozen rest stays in eval mode."""
    if modules is None:
        model.train()
        return
    model.eval()
    for n in modules:
        model.get_submodule(n).train()


# --------------------------------------------------------------------------------------------- data


def _augment(data_config: dict):
    """Train-time views: a random resized crop of the painting at the backbone's input size, a random flip."""
    from torchvision.transforms import v2

    from ..images import _interpolation

    _, h, w = (int(v) for v in data_config["input_size"])
    return v2.Compose([
        v2.RandomResizedCrop((h, w), scale=CROP_SCALE, ratio=(3 / 4, 4 / 3),
                             interpolation=_interpolation(str(data_config.get("interpolation") or "bicubic")),
                             antialias=True),
        v2.RandomHorizontalFlip(),
        v2.PILToTensor(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(data_config["mean"]), std=list(data_config["std"])),
    ])


class _Augmented(torch.utils.data.Dataset):
    """Item k of `items` (tuples of painting indices) → its paintings, each freshly augmented; None if unreadable."""

    def __init__(self, files: list[Path], items: np.ndarray, transform):
        self.files, self.items, self.transform = files, items, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, k: int):
        from ..images import load_image

        try:
            return k, [self.transform(load_image(self.files[int(i)])) for i in self.items[k]]
        except ImageError:
            return k, None


def _collate(batch):
    good = [(k, views) for k, views in batch if views is not None]
    if not good:
        return None
    idx = torch.tensor([k for k, _ in good])
    return idx, [torch.stack(v) for v in zip(*(views for _, views in good))]


class CosineClassifier(nn.Module):
    """Artist logits = scale · cos(feature, class weight): a classifier whose geometry is the pair score's."""

    def __init__(self, dim: int, n_classes: int, scale: float = CLASSIFIER_SCALE):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, dim) * dim ** -0.5)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(x, dim=-1) @ F.normalize(self.weight, dim=-1).T


# --------------------------------------------------------------------------------------------- training


class _Runner:
    """Device, mixed precision and the forward pass shared by both methods."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder
        self.net = embedder.extractor  # FeatureExtractor over the timm model, on the device
        self.device = embedder.device
        self.cuda = self.device.type == "cuda"
        bf16 = self.cuda and torch.cuda.is_bf16_supported()
        self.amp_dtype = torch.bfloat16 if bf16 else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.cuda and not bf16 else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised pooled features, as the Embedder makes them for one view."""
        x = x.to(self.device, non_blocking=True)
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=self.amp_dtype):
                f = self.net(x)
        else:
            f = self.net(x)
        return F.normalize(f.float(), dim=-1)

    def step(self, loss: torch.Tensor, optim: torch.optim.Optimizer) -> None:
        optim.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(optim)
            self.scaler.update()
        else:
            loss.backward()
            optim.step()

    def embed(self, files: list[Path]) -> tuple[np.ndarray, list[tuple[int, str]]]:
        self.net.eval()
        return self.embedder.embed_files(files)


def _loader(dataset, batch_size: int, seed: int, workers: int, shuffle: bool = True):
    gen = torch.Generator().manual_seed(seed)
    workers = workers if len(dataset) > batch_size else 0
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=gen, num_workers=workers, collate_fn=_collate,
        drop_last=len(dataset) % batch_size == 1, pin_memory=torch.cuda.is_available(), persistent_workers=False)


def _state(*modules: nn.Module) -> list[dict]:
    return [{k: v.detach().to("cpu", copy=True) for k, v in m.state_dict().items()} for m in modules]


def _epochs(step_epoch, validate, keep: tuple[nn.Module, ...], opts: TrainOptions, log) -> tuple[list[dict], int]:
    """Run epochs; keep the state of `keep` at the epoch with the best validation AUC (early stopping)."""
    history: list[dict] = []
    best_auc, best_epoch, best, stale = -math.inf, 0, _state(*keep), 0
    for epoch in range(1, opts.epochs + 1):
        rec = {"epoch": epoch, "train_loss": step_epoch(epoch)}
        rec.update(validate())
        history.append(rec)
        if log:
            log(rec)
        if rec["val_auc"] > best_auc + 1e-4:
            best_auc, best_epoch, best, stale = rec["val_auc"], epoch, _state(*keep), 0
        else:
            stale += 1
            if stale >= opts.patience:
                break
    for m, s in zip(keep, best):
        m.load_state_dict(s)
    return history, best_epoch


def train_from_images(data: str | Path, out: str | Path, opts: TrainOptions, embedding: EmbeddingConfig | None = None,
                      val: float = 0.2, test: float = 0.2, holdout: float = 0.25, device=None,
                      num_workers: int | None = None, log=None, info: dict | None = None,
                      split_file: dict | None = None) -> tuple[PairModel, list[dict], dict]:
    """Train `opts.method` (finetune | cnn) from the image files of DATA; save the model directory `out`.

    Returns (model, history, split) like :func:`painterid.training.train_model`.  ``embedding`` gives the
    backbone (finetune: pretrained, default the shipped one; cnn: an architecture trained from random
    initialisation, default ``cnn_baseline``), the view and the pooling.  ``split_file`` is a split file's
    content (:func:`painterid.splits.read_split`); then ``val``, ``test`` and ``holdout`` are not used.
    """
    from ..scoring.card import model_card

    if opts.method not in IMAGE_METHODS:
        raise PainterIDError(f"train_from_images trains {' or '.join(IMAGE_METHODS)}, not {opts.method!r}")
    cnn = opts.method == "cnn"
    if FeatureStore.is_store(data):
        raise DataError(f"--method {opts.method} trains the backbone from image files: give a DATA folder of "
                        f"paintings, not the feature store {data}")
    if embedding is None:
        embedding = EmbeddingConfig(backbone=CNN_BACKBONE) if cnn else EmbeddingConfig()
    if cnn and embedding.weights:
        raise PainterIDError("--method cnn trains from a random initialisation: drop --weights "
                             "(or use --method finetune to start from them)")
    if cnn and VIEW_COMBINE.get(embedding.view) == "concat":
        raise PainterIDError(f"--method cnn trains on one view per painting; view {embedding.view!r} "
                             "concatenates several: use center, resize or patches")
    dataset = discover(data)
    artists = list(dataset.artists)
    if any(not a for a in artists):
        raise DataError("training needs the artist of every painting (Kaggle CSV or one folder per artist)")
    if split_file is not None:
        from ..splits import split_indices

        split = split_indices(split_file, list(dataset.names), artists)
    else:
        split = split_paintings(artists, val=val, test=test, holdout=holdout, seed=opts.seed)
    ix = split["indices"]
    if len(ix["train"]) < 4 or len(ix["val"]) < 2:
        raise DataError(f"too few paintings to train ({len(ix['train'])} training, {len(ix['val'])} validation)")
    train_files = [dataset.files[i] for i in ix["train"]]
    train_artists = [artists[i] for i in ix["train"]]
    val_files = [dataset.files[i] for i in ix["val"]]
    val_artists = [artists[i] for i in ix["val"]]
    if cnn and sum(c >= 2 for c in np.unique(train_artists, return_counts=True)[1]) < 2:
        raise DataError("cnn training needs two or more training artists with at least two paintings each")

    torch.manual_seed(opts.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    workers = min(4, max(0, (os.cpu_count() or 1) - 1)) if num_workers is None else num_workers
    device = pick_device(str(device) if device else None)
    batch_size = max(2, opts.batch_size)

    with tempfile.TemporaryDirectory(prefix="painterid-train-") as tmp:
        if cnn:  # the seeded random initialisation, as a file the Embedder loads like any weights
            from safetensors.torch import save_file

            from ..backbones import create_backbone

            init, _ = create_backbone(embedding.backbone, pretrained=False)
            save_file(_plain(init.state_dict()), str(Path(tmp) / "init.safetensors"))
            embedding = dataclasses.replace(embedding, weights=str(Path(tmp) / "init.safetensors"))
        run = _Runner(Embedder(embedding, device=device, batch_size=min(batch_size, 64), num_workers=workers))
        model = run.net.model
        dim = run.embedder.dim

        # validation paintings that decode, and their balanced pairs (fixed for the whole run)
        v0, bad = run.embed(val_files)
        ok = np.isfinite(v0).all(1)
        val_files = [f for f, k in zip(val_files, ok) if k]
        val_artists = [a for a, k in zip(val_artists, ok) if k]
        vpairs = balanced_pairs(val_artists, seed=opts.seed)
        if len(vpairs) == 0:
            raise DataError("the validation artists have no same-artist pairs; use more paintings per artist "
                            "or a larger --val-artists")
        vlabels = vpairs[:, 2]
        names = sorted(set(train_artists))
        codes = torch.tensor([names.index(a) for a in train_artists])
        augment = _augment(run.embedder.data_config)
        extra_info: dict = {}

        if cnn:
            stage = None
            params = {"hidden": opts.hidden, "dropout": opts.dropout}
            head = SiameseHead(dim, **params).to(device)
            optim = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=opts.lr,
                                      weight_decay=opts.weight_decay)
            lossf = nn.BCEWithLogitsLoss()
            per_epoch = max(1, min(opts.max_pairs, 2 * len(train_files)) // 2)

            def step_epoch(epoch: int) -> float:
                pairs = balanced_pairs(train_artists, seed=opts.seed * 1000 + epoch, max_pos=per_epoch)
                _train_mode(model, None)
                head.train()
                total, n = 0.0, 0
                for batch in _loader(_Augmented(train_files, pairs[:, :2], augment), batch_size // 2,
                                     opts.seed * 1000 + epoch, workers):
                    if batch is None:
                        continue
                    idx, (xa, xb) = batch
                    f = run.features(torch.cat([xa, xb]))
                    logit = head(f[: len(idx)], f[len(idx):])
                    y = torch.from_numpy(pairs[idx.numpy(), 2]).float().to(device)
                    loss = lossf(logit, y)
                    run.step(loss, optim)
                    total, n = total + loss.item() * len(idx), n + len(idx)
                return total / max(1, n)

            def validate() -> dict:
                v, _ = run.embed(val_files)
                head.eval()
                with torch.inference_mode():
                    t = torch.from_numpy(v).to(device)
                    logit = head(t[vpairs[:, 0]], t[vpairs[:, 1]]).float()
                    vloss = float(F.binary_cross_entropy_with_logits(logit, torch.from_numpy(vlabels).float()
                                                                     .to(device)))
                return {"val_auc": roc_auc(logit.cpu().numpy(), vlabels), "val_loss": vloss}

            keep: tuple[nn.Module, ...] = (model, head)
        else:
            stage = last_stage(model, run.embedder.data_config["input_size"])
            trainable = _freeze_all_but(model, stage)
            classifier = CosineClassifier(dim, len(names)).to(device)
            params = {}
            head = CosineScorer()
            optim = torch.optim.AdamW([{"params": trainable, "lr": opts.lr * FINETUNE_LR_FACTOR},
                                       {"params": classifier.parameters(), "lr": opts.lr}],
                                      weight_decay=opts.weight_decay)
            lossf = nn.CrossEntropyLoss(label_smoothing=0.1)
            items = np.arange(len(train_files)).reshape(-1, 1)

            def step_epoch(epoch: int) -> float:
                _train_mode(model, stage)
                classifier.train()
                total, n = 0.0, 0
                for batch in _loader(_Augmented(train_files, items, augment), batch_size,
                                     opts.seed * 1000 + epoch, workers):
                    if batch is None:
                        continue
                    idx, (x,) = batch
                    loss = lossf(classifier(run.features(x)), codes[idx].to(device))
                    run.step(loss, optim)
                    total, n = total + loss.item() * len(idx), n + len(idx)
                return total / max(1, n)

            def validate() -> dict:
                v, _ = run.embed(val_files)
                return {"val_auc": roc_auc(np.einsum("nd,nd->n", v[vpairs[:, 0]], v[vpairs[:, 1]]), vlabels)}

            before = roc_auc(np.einsum("nd,nd->n", v0[ok][vpairs[:, 0]], v0[ok][vpairs[:, 1]]), vlabels)
            extra_info = {"val_auc_before": float(before),
                          "unfrozen_modules": [n for n in stage if not any(n.startswith(m + ".") for m in stage)],
                          "trainable_parameters": int(sum(p.numel() for p in trainable))}
            keep = (model,)

        history, best_epoch = _epochs(step_epoch, validate, keep, opts, log)
        model.eval()
        head = head.cpu().eval()

        # the kept network as the model's file; everything below embeds from that file, as compare will
        from safetensors.torch import save_file

        wfile = Path(tmp) / BACKBONE_FILE
        save_file(_plain(model.state_dict()), str(wfile))
        del run, model
        final = Embedder(dataclasses.replace(embedding, weights=str(wfile)), device=device,
                         batch_size=min(batch_size, 64), num_workers=workers)
        vecs, failures = final.embed_files(train_files + val_files)
        good = np.isfinite(vecs).all(1)
        n_train = len(train_files)
        tr = np.flatnonzero(good[:n_train])
        va = np.flatnonzero(good[n_train:])
        fingerprint = dict(final.fingerprint, weights_file=BACKBONE_FILE)
        pm, _ = fit(vecs[tr], [train_artists[i] for i in tr], vecs[n_train + va], [val_artists[i] for i in va],
                    fingerprint, opts, artists_split=split["artists"],
                    train_hashes=[file_sha256(train_files[i]) for i in tr], trained_head=(head, params))
        pm.info.update({
            "epochs_run": len(history), "best_epoch": best_epoch,
            "training": {"from": "image files", "data": str(data), "crop_scale": list(CROP_SCALE),
                         "pair_score": "siamese head, trained end to end with the CNN" if cnn
                         else "cosine of the fine-tuned embedding", **extra_info},
            "skipped_images": len(failures) + len(bad),
        })
        pm.info.update(info or {})
        extra = {BACKBONE_FILE: wfile.read_bytes(), "MODEL_CARD.md": model_card(pm).encode()}
        if history:
            extra["curves.png"] = curves_png(history, f"painterid {opts.method} ({embedding.backbone})")
        pm.save(out, extra_files=extra)
    pm.root = Path(out)
    return pm, history, split


def _plain(state: dict) -> dict:
    """A state dict safetensors can write: contiguous CPU tensors, no shared storage."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
