"""The scoring methods: one registry entry each, carrying its head and its training recipe.

``compare`` / ``evaluate`` rebuild a model's head from its entry (:func:`build_head`); ``train`` looks up the
entry's recipe (a ``module:function`` path, imported only when training, so scoring never imports training code)
and runs it.  Adding a method is one entry here plus its recipe function.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from painterid.core.registry import Registry


def _cosine(dim: int, **params):
    from painterid.scoring.heads import CosineScorer

    return CosineScorer(**params)


def _siamese(dim: int, **params):
    from painterid.scoring.heads import SiameseHead

    return SiameseHead(dim, **params)


def _metric(dim: int, **params):
    from painterid.scoring.heads import MetricHead

    return MetricHead(dim, **params)


def _classifier(dim: int, **params):
    from painterid.scoring.heads import ClassifierHead

    return ClassifierHead(dim, **params)


@dataclass(frozen=True)
class Method:
    """A scoring method: how a pair score is computed (`head`) and how it is trained (`recipe`)."""

    name: str
    help: str
    head: Callable  # (dim, **head_params) -> nn.Module mapping two batches of vectors to one score per pair
    recipe: str  # "module:function" of the training recipe (see painterid.training)
    from_images: bool = False  # trains the backbone itself from image files (else: a head over embeddings)
    default_backbone: str | None = None  # image methods: the backbone used when --backbone is not given
    random_init: bool = False  # image methods: the backbone starts from a seeded random initialisation

    def load_recipe(self) -> Callable:
        """The training recipe function (imports training code)."""
        module, func = self.recipe.split(":")
        return getattr(importlib.import_module(module), func)


METHOD_REGISTRY: Registry[Method] = Registry("method")
for _m in (
    Method("cosine", "cosine of the embeddings (untrained)", _cosine, "painterid.training.fit:cosine_recipe"),
    Method("siamese", "MLP over |a-b| and a*b, binary cross-entropy", _siamese,
           "painterid.training.fit:siamese_recipe"),
    Method("metric", "projection trained with a metric-learning loss (--loss), cosine in its space", _metric,
           "painterid.training.fit:metric_recipe"),
    Method("classifier", "artist classifier; score = dot product of the softmax vectors", _classifier,
           "painterid.training.fit:classifier_recipe"),
    Method("finetune", "the backbone's last stage fine-tuned from DATA's images; cosine score", _cosine,
           "painterid.training.finetune:finetune_recipe", from_images=True),
    Method("cnn", "a CNN trained from scratch on DATA's images with a siamese head", _siamese,
           "painterid.training.finetune:cnn_recipe", from_images=True, default_backbone="cnn_baseline",
           random_init=True),
):
    METHOD_REGISTRY.register(_m)

METHODS = METHOD_REGISTRY.names()
IMAGE_METHODS = METHOD_REGISTRY.names(lambda m: m.from_images)


def build_head(method: str, dim: int, params: dict):
    """Rebuild a scorer from its method name and the constructor params saved in a model's config."""
    return METHOD_REGISTRY.get(method).head(dim, **params)


@dataclass(frozen=True)
class Loss:
    """A metric-learning loss of pytorch-metric-learning, with its miner (or None)."""

    name: str
    help: str
    make: Callable  # (n_classes, dim) -> (loss, miner or None)


def _cos():
    from pytorch_metric_learning import distances

    return distances.CosineSimilarity()


def _pml():
    from pytorch_metric_learning import losses, miners

    return losses, miners


LOSS_REGISTRY: Registry[Loss] = Registry("loss")
for _loss in (
    Loss("supcon", "supervised contrastive", lambda n, d: (_pml()[0].SupConLoss(temperature=0.1), None)),
    Loss("contrastive", "contrastive, cosine", lambda n, d: (
        _pml()[0].ContrastiveLoss(pos_margin=0.0, neg_margin=0.5, distance=_cos()), None)),
    Loss("triplet", "triplet margin, semi-hard mining", lambda n, d: (
        _pml()[0].TripletMarginLoss(margin=0.2, distance=_cos()),
        _pml()[1].TripletMarginMiner(margin=0.2, type_of_triplets="semihard", distance=_cos()))),
    Loss("multisimilarity", "multi-similarity with its miner", lambda n, d: (
        _pml()[0].MultiSimilarityLoss(), _pml()[1].MultiSimilarityMiner())),
    Loss("arcface", "ArcFace", lambda n, d: (_pml()[0].ArcFaceLoss(n, d, margin=28.6, scale=30), None)),
    Loss("subcenter_arcface", "sub-centre ArcFace (3 per artist)", lambda n, d: (
        _pml()[0].SubCenterArcFaceLoss(n, d, margin=28.6, scale=30, sub_centers=3), None)),
):
    LOSS_REGISTRY.register(_loss)
METRIC_LOSSES = LOSS_REGISTRY.names()
