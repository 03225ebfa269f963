"""Calibration: a raw pair score becomes a probability of "same artist" (Platt scaling)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Where `painterid train` fits the probability mapping and the threshold (TrainOptions.calibration):
#: "validation": on the validation artists' pairs; they also stopped the training and chose the chain, so the fit
#: is optimistic about artists never seen. "crossfit": on out-of-fold pairs of the training and validation
#: artists, each fold scored by a model that the whole procedure trained without its artists
#: (training.fit.crossfit_scores; several times the training time).
CALIBRATIONS = ("validation", "crossfit")


@dataclass
class Calibrator:
    """p(same) = sigmoid(slope * score + intercept), fitted on validation-artist pairs."""

    slope: float = 1.0
    intercept: float = 0.0

    @classmethod
    def fit(cls, scores: np.ndarray, labels: np.ndarray) -> "Calibrator":
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e4)
        lr.fit(np.asarray(scores, dtype=np.float64).reshape(-1, 1), np.asarray(labels, dtype=int))
        return cls(float(lr.coef_[0, 0]), float(lr.intercept_[0]))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        z = self.slope * np.asarray(scores, dtype=np.float64) + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))

    def to_dict(self) -> dict:
        return {"slope": self.slope, "intercept": self.intercept}
