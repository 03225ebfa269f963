"""Fit the set calibration (sets.json: the likelihood ratio `painterid verify` reports) of a shipped model.

    .venv/bin/python models/fit_sets.py [--variant default|archive] [--data ../shared/paintings]

The trials are the set protocol's (painterid.evaluation.sets) over the model's held-out artists of DATA: every
artist the model was not trained on (for the shipped models, their validation and test artists, which their cohort
also leaves out), three seeds pooled; one logistic calibration per set aggregate and number of references K
(painterid.scoring.setcal). The default aggregate (painterid.tasks.setfit.DEFAULT_AGGREGATE) was chosen on both
protocols of bench/sets.py (docs/results/screening.md). Out-of-fold measures (crossfit by artist) are recorded in
sets.json under info.measured_out_of_fold.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from painterid.tasks.setfit import DEFAULT_AGGREGATE, DEFAULT_KS, fit_sets  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=["default", "archive"], default="default")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "paintings")
    ap.add_argument("--aggregate", default=DEFAULT_AGGREGATE)
    args = ap.parse_args()
    model_dir = ROOT / "painterid" / f"{args.variant}_model"
    cal, measured = fit_sets(model_dir, args.data, DEFAULT_KS, default=args.aggregate)
    print(json.dumps({"model": str(model_dir), "default": cal.default, "fitted": {a: sorted(t) for a, t in
                                                                                 cal.per_k.items()},
                      "skipped": cal.info["skipped"], "measured_out_of_fold": cal.info["measured_out_of_fold"]},
                     indent=1))


if __name__ == "__main__":
    main()
