"""Calibration: a raw pair score becomes a probability of "same artist" (Platt scaling)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Where `painterid train` fits the probability mapping and the threshold (TrainOptions.calibration):
#: "validation": on the validation artists' pairs; they also stopped the training and chose the chain, so the fit
#: may be optimistic about artists never seen. "crossfit": that fit, then recalibrated on out-of-fold pairs of
#: the training and validation artists, each fold scored by a model that the whole procedure trained without its
#: artists (training.fit.crossfit_logits; about 5x the training time); the threshold stays the validation one.
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

    def logit(self, scores: np.ndarray) -> np.ndarray:
        return self.slope * np.asarray(scores, dtype=np.float64) + self.intercept

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(self.logit(scores), -60, 60)))

    def then(self, recalibration: "Calibrator") -> "Calibrator":
        """This calibration followed by a Platt `recalibration` of its logits: still one Platt scaling."""
        return Calibrator(recalibration.slope * self.slope,
                          recalibration.slope * self.intercept + recalibration.intercept)

    def to_dict(self) -> dict:
        return {"slope": self.slope, "intercept": self.intercept}
