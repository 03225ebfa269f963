"""scoring: two vectors to a score, a probability and a verdict. Heads and methods, the normaliser chain and its
self-supervised projection, the reference cohort, calibration, the PairModel artefact and fused models
(`loading.load_model` reads either), the score metrics (AUC, EER, thresholds) they are fitted with, and the
evidence of several references: set scores (sets), their likelihood-ratio calibration per K (setcal) and the
forensic measures of it (forensic: Cllr, Tippett plots).

May import: painterid.embedding, painterid.store, painterid.data, painterid.core; never painterid.training.
Imports are lazy (PEP 562): the CLI reads the method registry at start-up without importing torch."""

from __future__ import annotations

import importlib

_WHERE = {"Calibrator": ".calibration", "IMAGE_METHODS": ".methods", "METHOD_REGISTRY": ".methods",
          "METHODS": ".methods", "LOSS_REGISTRY": ".methods", "build_head": ".methods", "PairModel": ".model",
          "FusedModel": ".fusion", "load_model": ".loading"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name], __name__), name)
