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
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from painterid.core.errors import DataError, ImageError, PainterIDError
from painterid.data.datasets import discover
from painterid.data.pairs import balanced_pairs
from painterid.data.splits import training_split
from painterid.embedding.embedder import Embedder, EmbeddingConfig, pick_device
from painterid.embedding.features import model_input_size
from painterid.embedding.images import VIEW_COMBINE
from painterid.scoring.methods import IMAGE_METHODS, METHOD_REGISTRY
from painterid.scoring.metrics import roc_auc
from painterid.scoring.model import BACKBONE_FILE, PairModel
from painterid.store.feature_store import FeatureStore, file_sha256
from painterid.training.curves import curves_png
from painterid.training.fit import TrainOptions, fit
from painterid.training.trainer import Trainer, optimiser_step, seed_everything

__all__ = ["IMAGE_METHODS", "CNN_BACKBONE", "CROP_SCALE", "last_stage", "train_from_images"]

CNN_BACKBONE = METHOD_REGISTRY.get("cnn").default_backbone
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
        size = tuple(input_size) if input_size else model_input_size(model)
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

    from painterid.embedding.images import interpolation_mode

    _, h, w = (int(v) for v in data_config["input_size"])
    return v2.Compose([
        v2.RandomResizedCrop((h, w), scale=CROP_SCALE, ratio=(3 / 4, 4 / 3),
                             interpolation=interpolation_mode(str(data_config.get("interpolation") or "bicubic")),
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
        from painterid.embedding.images import load_image

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
        optimiser_step(loss, optim, self.scaler)

    def embed(self, files: list[Path]) -> tuple[np.ndarray, list[tuple[int, str]]]:
        self.net.eval()
        return self.embedder.embed_files(files)


def _loader(dataset, batch_size: int, seed: int, workers: int, shuffle: bool = True):
    gen = torch.Generator().manual_seed(seed)
    workers = workers if len(dataset) > batch_size else 0
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=gen, num_workers=workers, collate_fn=_collate,
        drop_last=len(dataset) % batch_size == 1, pin_memory=torch.cuda.is_available(), persistent_workers=False)


@dataclass
class ImageData:
    """What an image recipe trains from: the network, its training files and the validation artists' pairs."""

    run: _Runner
    opts: TrainOptions
    train_files: list[Path]
    train_artists: list[str]
    val_files: list[Path]  # the validation paintings that decode
    val_artists: list[str]
    vpairs: np.ndarray
    v0: np.ndarray  # the validation paintings' vectors before training (the rows of val_files)
    augment: object
    batch_size: int
    workers: int

    @property
    def model(self) -> nn.Module:
        return self.run.net.model

    def loader(self, items: np.ndarray, batch_size: int, epoch: int):
        return _loader(_Augmented(self.train_files, items, self.augment), batch_size,
                       self.opts.seed * 1000 + epoch, self.workers)


@dataclass
class ImageRecipe:
    """A network to train: the pair head, its params, one epoch, validation, and the modules the best epoch keeps."""

    head: nn.Module
    params: dict
    step_epoch: object
    validate: object
    keep: tuple
    info: dict = field(default_factory=dict)


def cnn_recipe(d: ImageData) -> ImageRecipe:
    """The report's baseline: a CNN from random initialisation and a siamese head, end to end on balanced pairs."""
    opts, run, model, device = d.opts, d.run, d.model, d.run.device
    params = {"hidden": opts.hidden, "dropout": opts.dropout}
    head = METHOD_REGISTRY.get("cnn").head(run.embedder.dim, **params).to(device)
    optim = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=opts.lr, weight_decay=opts.weight_decay)
    lossf = nn.BCEWithLogitsLoss()
    per_epoch = max(1, min(opts.max_pairs, 2 * len(d.train_files)) // 2)
    vlabels = d.vpairs[:, 2]

    def step_epoch(epoch: int) -> float:
        pairs = balanced_pairs(d.train_artists, seed=opts.seed * 1000 + epoch, max_pos=per_epoch)
        _train_mode(model, None)
        head.train()
        total, n = 0.0, 0
        for batch in d.loader(pairs[:, :2], d.batch_size // 2, epoch):
            if batch is None:
                continue
            idx, (xa, xb) = batch
            f = run.features(torch.cat([xa, xb]))
            loss = lossf(head(f[: len(idx)], f[len(idx):]), torch.from_numpy(pairs[idx.numpy(), 2]).float().to(device))
            run.step(loss, optim)
            total, n = total + loss.item() * len(idx), n + len(idx)
        return total / max(1, n)

    def validate() -> dict:
        v, _ = run.embed(d.val_files)
        head.eval()
        with torch.inference_mode():
            t = torch.from_numpy(v).to(device)
            logit = head(t[d.vpairs[:, 0]], t[d.vpairs[:, 1]]).float()
            vloss = float(F.binary_cross_entropy_with_logits(logit, torch.from_numpy(vlabels).float().to(device)))
        return {"val_auc": roc_auc(logit.cpu().numpy(), vlabels), "val_loss": vloss}

    return ImageRecipe(head, params, step_epoch, validate, (model, head))


def _cosine_auc(v: np.ndarray, vpairs: np.ndarray) -> float:
    return roc_auc(np.einsum("nd,nd->n", v[vpairs[:, 0]], v[vpairs[:, 1]]), vpairs[:, 2])


def finetune_recipe(d: ImageData) -> ImageRecipe:
    """The report's fine-tuned backbone: last stage unfrozen, a cosine artist classifier; the score is cosine."""
    opts, run, model, device = d.opts, d.run, d.model, d.run.device
    stage = last_stage(model, run.embedder.data_config["input_size"])
    trainable = _freeze_all_but(model, stage)
    names = sorted(set(d.train_artists))
    codes = torch.tensor([names.index(a) for a in d.train_artists])
    classifier = CosineClassifier(run.embedder.dim, len(names)).to(device)
    optim = torch.optim.AdamW([{"params": trainable, "lr": opts.lr * FINETUNE_LR_FACTOR},
                               {"params": classifier.parameters(), "lr": opts.lr}], weight_decay=opts.weight_decay)
    lossf = nn.CrossEntropyLoss(label_smoothing=0.1)
    items = np.arange(len(d.train_files)).reshape(-1, 1)

    def step_epoch(epoch: int) -> float:
        _train_mode(model, stage)
        classifier.train()
        total, n = 0.0, 0
        for batch in d.loader(items, d.batch_size, epoch):
            if batch is None:
                continue
            idx, (x,) = batch
            loss = lossf(classifier(run.features(x)), codes[idx].to(device))
            run.step(loss, optim)
            total, n = total + loss.item() * len(idx), n + len(idx)
        return total / max(1, n)

    def validate() -> dict:
        return {"val_auc": _cosine_auc(run.embed(d.val_files)[0], d.vpairs)}

    info = {"val_auc_before": float(_cosine_auc(d.v0, d.vpairs)),
            "unfrozen_modules": [n for n in stage if not any(n.startswith(m + ".") for m in stage)],
            "trainable_parameters": int(sum(p.numel() for p in trainable))}
    return ImageRecipe(METHOD_REGISTRY.get("finetune").head(run.embedder.dim), {}, step_epoch, validate, (model,),
                       info)


def _check_image_training(data, opts: TrainOptions, method, embedding: EmbeddingConfig) -> None:
    if FeatureStore.is_store(data):
        raise DataError(f"--method {opts.method} trains the backbone from image files: give a DATA folder of "
                        f"paintings, not the feature store {data}")
    if method.random_init and embedding.weights:
        raise PainterIDError(f"--method {method.name} trains from a random initialisation: drop --weights "
                             "(or use --method finetune to start from them)")
    if method.random_init and VIEW_COMBINE.get(embedding.view) == "concat":
        raise PainterIDError(f"--method {method.name} trains on one view per painting; view {embedding.view!r} "
                             "concatenates several: use center, resize or patches")


def _prepare(dataset, tmp: str, opts: TrainOptions, method, embedding: EmbeddingConfig, split: dict, device,
             num_workers: int | None) -> tuple[ImageData, list]:
    """The network on the device (cnn: from a seeded random initialisation) and the data of one training run."""
    ix = split["indices"]
    artists = list(dataset.artists)
    workers = min(4, max(0, (os.cpu_count() or 1) - 1)) if num_workers is None else num_workers
    batch_size = max(2, opts.batch_size)
    if method.random_init:  # the seeded random initialisation, as a file the Embedder loads like any weights
        from safetensors.torch import save_file

        from painterid.embedding.factory import create_backbone

        init, _ = create_backbone(embedding.backbone, pretrained=False)
        save_file(_plain(init.state_dict()), str(Path(tmp) / "init.safetensors"))
        embedding = dataclasses.replace(embedding, weights=str(Path(tmp) / "init.safetensors"))
    run = _Runner(Embedder(embedding, device=device, batch_size=min(batch_size, 64), num_workers=workers))
    val_files = [dataset.files[i] for i in ix["val"]]
    val_artists = [artists[i] for i in ix["val"]]
    v0, bad = run.embed(val_files)  # validation paintings that decode, and their balanced pairs (fixed)
    ok = np.isfinite(v0).all(1)
    val_artists = [a for a, k in zip(val_artists, ok) if k]
    vpairs = balanced_pairs(val_artists, seed=opts.seed)
    if len(vpairs) == 0:
        raise DataError("the validation artists have no same-artist pairs; use more paintings per artist "
                        "or a larger --val-artists")
    return ImageData(run, opts, [dataset.files[i] for i in ix["train"]], [artists[i] for i in ix["train"]],
                     [f for f, k in zip(val_files, ok) if k], val_artists, vpairs, v0[ok], _augment(run.embedder.data_config),
                     batch_size, workers), bad


def _fit_trained(d: ImageData, recipe: ImageRecipe, wfile: Path, embedding: EmbeddingConfig, split: dict,
                 device) -> tuple[PairModel, int]:
    """Embed the training and validation paintings from the saved network, as compare will; calibrate."""
    final = Embedder(dataclasses.replace(embedding, weights=str(wfile)), device=device,
                     batch_size=min(d.batch_size, 64), num_workers=d.workers)
    files = d.train_files + d.val_files
    vecs, failures = final.embed_files(files)
    good = np.isfinite(vecs).all(1)
    n_train = len(d.train_files)
    tr, va = np.flatnonzero(good[:n_train]), np.flatnonzero(good[n_train:])
    val_artists = d.val_artists
    fingerprint = dict(final.fingerprint, weights_file=BACKBONE_FILE)
    pm, _ = fit(vecs[tr], [d.train_artists[i] for i in tr], vecs[n_train + va], [val_artists[i] for i in va],
                fingerprint, d.opts, artists_split=split["artists"],
                train_hashes=[file_sha256(d.train_files[i]) for i in tr], trained_head=(recipe.head.cpu().eval(),
                                                                                        recipe.params))
    return pm, len(failures)


def train_from_images(data: str | Path, out: str | Path, opts: TrainOptions, embedding: EmbeddingConfig | None = None,
                      val: float = 0.2, test: float = 0.2, holdout: float = 0.25, device=None,
                      num_workers: int | None = None, log=None, info: dict | None = None,
                      split_file: dict | None = None) -> tuple[PairModel, list[dict], dict]:
    """Train `opts.method` (finetune | cnn) from the image files of DATA; save the model directory `out`.

    Returns (model, history, split) like :func:`painterid.training.train_model`.  ``embedding`` gives the
    backbone (finetune: pretrained, default the shipped one; cnn: an architecture trained from random
    initialisation, default ``cnn_baseline``), the view and the pooling.  ``split_file`` is a split file's
    content (:func:`painterid.data.splits.read_split`); then ``val``, ``test`` and ``holdout`` are not used.
    """
    from painterid.scoring.card import model_card

    method = METHOD_REGISTRY.get(opts.method)
    if not method.from_images:
        raise PainterIDError(f"train_from_images trains {' or '.join(IMAGE_METHODS)}, not {opts.method!r}")
    embedding = embedding or EmbeddingConfig(**({"backbone": method.default_backbone} if method.default_backbone
                                                else {}))
    _check_image_training(data, opts, method, embedding)
    dataset = discover(data)
    split = training_split(list(dataset.artists), list(dataset.names), opts.seed, val, test, holdout, split_file)
    train_artists = [dataset.artists[i] for i in split["indices"]["train"]]
    if method.random_init and sum(c >= 2 for c in np.unique(train_artists, return_counts=True)[1]) < 2:
        raise DataError(f"{method.name} training needs two or more training artists with at least two paintings "
                        "each")
    seed_everything(opts.seed)
    device = pick_device(str(device) if device else None)
    with tempfile.TemporaryDirectory(prefix="painterid-train-") as tmp:
        d, bad = _prepare(dataset, tmp, opts, method, embedding, split, device, num_workers)
        recipe = method.load_recipe()(d)
        trainer = Trainer(opts.epochs, opts.patience, log)
        history = trainer.run(recipe.step_epoch, recipe.validate, recipe.keep)
        d.model.eval()
        wfile = Path(tmp) / BACKBONE_FILE  # the kept network as the model's file; compare embeds from it
        from safetensors.torch import save_file

        save_file(_plain(d.model.state_dict()), str(wfile))
        pm, n_failed = _fit_trained(d, recipe, wfile, embedding, split, device)
        pm.info.update({
            "epochs_run": len(history), "best_epoch": trainer.best_epoch,
            "training": {"from": "image files", "data": str(data), "crop_scale": list(CROP_SCALE),
                         "pair_score": "siamese head, trained end to end with the CNN" if method.name == "cnn"
                         else "cosine of the fine-tuned embedding", **recipe.info},
            "skipped_images": n_failed + len(bad),
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
