"""Pair scorers, score normalisation, calibration and the PairModel artefact."""

from .calibration import Calibrator
from .heads import METHODS, build_head
from .model import PairModel

__all__ = ["Calibrator", "METHODS", "PairModel", "build_head"]
