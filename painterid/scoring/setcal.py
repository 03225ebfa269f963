"""The likelihood ratio of a set score, calibrated per number of references K: MODEL/sets.json.

For each aggregate (scoring.sets) and each K it was fitted at, a logistic calibration (sklearn, as
scoring.calibration.Calibrator) of the set score on balanced held-out trials (as many same-artist as
different-artist), so its logit is the natural log of the likelihood ratio

    LR = p(score | the references' artist) / p(score | another artist of the population).

p(same artist) at a prior π is then sigmoid(ln LR + logit π). A K that was not fitted uses the largest fitted K
below it (or the smallest above), and says which. Written by `models/fit_sets.py` (the shipped models) or
`painterid calibrate MODEL DATA --references K,...` (a user's own collection).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from painterid.core.errors import ArtefactError, PainterIDError
from painterid.scoring.calibration import Calibrator

SETS_FILE = "sets.json"
KIND = "painterid.set-calibration"
FORMAT_VERSION = 1
LN10 = float(np.log(10.0))


@dataclass
class SetCalibration:
    """Per aggregate, per K: a Calibrator whose logit is ln LR; `default`: the aggregate verify uses."""

    default: str
    per_k: dict[str, dict[int, Calibrator]]
    info: dict = field(default_factory=dict)

    def calibrator(self, aggregate: str, k: int) -> tuple[Calibrator, int]:
        """(the calibration of `aggregate` at K, the K it was fitted at)."""
        table = self.per_k.get(aggregate)
        if not table:
            raise PainterIDError(f"the set calibration has no {aggregate!r} aggregate; calibrated: "
                                 f"{', '.join(self.per_k)} (refit: painterid calibrate MODEL LABELLED_DATA "
                                 "--references 1,2,3,5)")
        below = [kk for kk in table if kk <= k]
        used = max(below) if below else min(table)
        return table[used], used

    def log10_lr(self, aggregate: str, k: int, scores) -> tuple[np.ndarray, int]:
        cal, used = self.calibrator(aggregate, k)
        return cal.logit(np.asarray(scores)) / LN10, used

    def to_json(self) -> dict:
        return {"kind": KIND, "format_version": FORMAT_VERSION, "default": self.default,
                "calibrations": {a: {str(k): c.to_dict() | {"trials": self.info.get("trials", {}).get(a, {})
                                                               .get(str(k))} for k, c in t.items()}
                                 for a, t in self.per_k.items()},
                "info": self.info}

    @classmethod
    def from_json(cls, doc: dict, where: str = "sets.json") -> "SetCalibration":
        if doc.get("kind") != KIND:
            raise ArtefactError(f"{where}: not a painterid set calibration")
        try:
            per_k = {a: {int(k): Calibrator(float(c["slope"]), float(c["intercept"])) for k, c in t.items()}
                     for a, t in doc["calibrations"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtefactError(f"{where}: bad set calibration ({exc})") from None
        return cls(doc.get("default", "mean"), per_k, doc.get("info", {}))

    def save(self, model_dir: str | Path) -> Path:
        """Write MODEL/sets.json atomically (the rest of the model directory is left as it is)."""
        from painterid.core.io import write_json

        path = Path(model_dir) / SETS_FILE
        write_json(path, self.to_json())
        return path


def posterior(log10_lr, prior: float) -> np.ndarray:
    """p(same artist) from a log10 LR at prior probability `prior` (0 < prior < 1)."""
    if not 0.0 < prior < 1.0:
        raise PainterIDError(f"--prior must lie strictly between 0 and 1 (got {prior})")
    z = np.asarray(log10_lr, dtype=np.float64) * LN10 + np.log(prior / (1.0 - prior))
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def fit_set_calibration(scores: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]], default: str,
                        info: dict | None = None, min_trials: int = 6) -> SetCalibration:
    """Fit one Calibrator per (aggregate, K) from {aggregate: {K: (scores, labels)}}; a K with fewer than
    `min_trials` of either kind, or whose fit is not increasing in the score, is left out (and recorded)."""
    per_k: dict[str, dict[int, Calibrator]] = {}
    trials: dict[str, dict[str, dict]] = {}
    skipped = []
    for agg, by_k in scores.items():
        for k, (s, y) in sorted(by_k.items()):
            y = np.asarray(y, dtype=int)
            if min((y == 1).sum(), (y == 0).sum()) < min_trials:
                skipped.append(f"{agg}@K={k}: {int((y == 1).sum())} same / {int((y == 0).sum())} different")
                continue
            cal = Calibrator.fit(s, y)
            if not cal.slope > 0:
                skipped.append(f"{agg}@K={k}: not increasing in the score")
                continue
            per_k.setdefault(agg, {})[k] = cal
            trials.setdefault(agg, {})[str(k)] = {"same": int((y == 1).sum()), "different": int((y == 0).sum())}
    if default not in per_k:
        raise PainterIDError(f"too few held-out trials to calibrate the {default!r} set score at any K "
                             f"({'; '.join(skipped[:3])}): use a collection with more artists of 2+ paintings")
    return SetCalibration(default, per_k, {**(info or {}), "trials": trials, "skipped": skipped})


def load_set_calibration(model_dir: str | Path) -> SetCalibration:
    """MODEL/sets.json; a model without one is refused in one line that says how to fit it."""
    from painterid.core.io import read_json

    path = Path(model_dir) / SETS_FILE
    if not path.is_file():
        raise ArtefactError(f"{model_dir}: this model has no set calibration ({SETS_FILE}); fit one on labelled "
                            f"paintings: painterid calibrate {model_dir} LABELLED_DATA --references 1,2,3,5")
    return SetCalibration.from_json(read_json(path, "set calibration"), str(path))
