"""Pair scorers, score normalisation, calibration and the PairModel artefact.

The torch heads (``build_head``, ``METHODS``) load on first use, so that loading and using a cosine model
(`compare` with the shipped default) never imports torch.
"""

from .calibration import Calibrator
from .model import PairModel

__all__ = ["Calibrator", "METHODS", "PairModel", "build_head"]


def __getattr__(name: str):
    if name in ("METHODS", "build_head"):
        from . import heads

        return getattr(heads, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
