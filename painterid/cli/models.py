"""`cohort set` and `calibrate`: refitting a model's normalisers and its probability on a user's own paintings."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from painterid.cli.common import (MODEL_HELP, RUNTIME_HELP, Runtime, _device_option, _progress, _refuse_shipped, _report_failures, _value, app, err)
from painterid.core.defaults import model_path

cohort_app = typer.Typer(help="The reference cohort a model's normalisers are fitted on.", no_args_is_help=True)


app.add_typer(cohort_app, name="cohort")


@cohort_app.command("set")
def cohort_set(
    model: Path = typer.Argument(..., help=MODEL_HELP + " (rewritten in place, atomically, unless --out)",
                                 callback=model_path),
    data: Path = typer.Argument(..., help="DATA folder or feature STORE of reference paintings"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="write the model with its new cohort here instead"),
    store: Optional[Path] = typer.Option(None, help="where to keep the embeddings of DATA (default: cache)"),
    device: Optional[str] = _device_option(),
    runtime: Optional[Runtime] = typer.Option(None, help=RUNTIME_HELP),
) -> None:
    """Replace a model's cohort (e.g. by your own archive); its normalisers are refitted on it.

    A shipped model (default, archive) is never rewritten: give --out."""
    from painterid.scoring.cohort import set_cohort

    _refuse_shipped(model, out_dir)
    prog, update = _progress("embedding", lines=True)
    with prog:
        pm, failures = set_cohort(model, data, store_dir=store, progress=update, device=device, out=out_dir,
                                  runtime=_value(runtime),
                                  stage=lambda m: err.print(m, highlight=False))
    _report_failures(failures)
    info = pm.cohort_info["from"][0]
    err.print(f"{out_dir or model}: cohort of {len(pm.cohort)} paintings from {data} (left out "
              f"{info['left_out_validation_or_test_artists']} by validation or test artists, "
              f"{info['left_out_test_or_duplicate']} duplicates); chain {pm.normaliser} refitted")


@app.command(epilog="Pairs CSV (paths relative to the CSV's folder, or absolute):\n\n"
             "    image1,image2,same\n\n    lot12/a.jpg,lot12/b.jpg,1\n\n    lot12/a.jpg,lot40/c.jpg,0")
def calibrate(
    model: Path = typer.Argument(..., help=MODEL_HELP + " (rewritten in place, atomically, unless --out)",
                                 callback=model_path),
    pairs_or_data: Path = typer.Argument(..., metavar="PAIRS_OR_DATA",
                                         help="labelled pairs CSV (image1,image2,same), or a labelled DATA folder "
                                              "or feature STORE from which balanced pairs are drawn"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="write the recalibrated model here instead"),
    store: Optional[Path] = typer.Option(None, help="where to keep the embeddings of DATA (default: cache)"),
    seed: int = typer.Option(0, help="seed of the balanced pairs drawn from DATA"),
    references: Optional[str] = typer.Option(None, help="instead: refit the set calibration `verify` uses "
                                             "(sets.json) at these numbers of references, e.g. 1,2,3,5, on DATA"),
    device: Optional[str] = _device_option(),
    runtime: Optional[Runtime] = typer.Option(None, help=RUNTIME_HELP),
) -> None:
    """Refit a model's p(same artist) and threshold on your own labelled pairs (its scores are unchanged).

    Worth it when the model's mean p on your pairs is far from their base rate (the summary line shows both).

    With a few dozen pairs, a model already calibrated on similar paintings is better left as it is (docs/RESULTS.md, "Calibration")."""
    from painterid.tasks.calibrate import calibrate as run_calibrate

    _refuse_shipped(model, out_dir)
    if references:
        return _calibrate_sets(model, pairs_or_data, references, out_dir, store, device)
    prog, update = _progress("embedding")
    with prog:
        _, rec, failures = run_calibrate(model, pairs_or_data, out=out_dir, store_dir=store, progress=update,
                                         device=device, seed=seed, runtime=_value(runtime))
    _report_failures(failures)
    b, a = rec["before"], rec["after"]
    err.print(f"{out_dir or model}: recalibrated on {rec['pairs']['same']} same / {rec['pairs']['different']} "
              f"different pairs (AUC {rec['auc']:.3f}): threshold {rec['old']['threshold']:.4f} -> "
              f"{rec['new']['threshold']:.4f}, Brier {b['brier']:.3f} -> {a['brier']:.3f}, mean p "
              f"{b['mean_p']:.3f} -> {a['mean_p']:.3f} (base rate {rec['base_rate']:.3f})", markup=False,
              highlight=False)


def _calibrate_sets(model: Path, data: Path, references: str, out_dir, store, device) -> None:
    from painterid.evaluation.sets import parse_ks
    from painterid.tasks.setfit import refit_sets

    prog, update = _progress("embedding")
    with prog:
        where, cal, measured = refit_sets(model, data, parse_ks(references), out=out_dir, store_dir=store,
                                          progress=update, device=device)
    for k, m in measured.items():
        f = m["forensic"].get(cal.default, {})
        err.print(f"{where}: K={k}: {m['trials']} trials, AUC {m['auc'].get(cal.default, float('nan')):.3f} "
                  f"(one reference {m['auc']['one']:.3f}), out-of-fold Cllr {f.get('cllr', float('nan')):.3f}, "
                  f"calibration error {f.get('ece', float('nan')):.3f}", highlight=False)
    err.print(f"{where}: set calibration ({cal.default}) at K = {', '.join(map(str, sorted(cal.per_k[cal.default])))}"
              f" written to sets.json", highlight=False)
