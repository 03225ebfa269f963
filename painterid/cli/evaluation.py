"""`evaluate`, `split`, `table1` and `submit`: measuring a model on labelled paintings and the Kaggle submission."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from painterid.cli.common import (DEFAULT_MODEL, MODEL_HELP, RUNTIME_HELP, Protocol, Runtime, Split, _device_option, _progress, _report_failures,
    _value, app, err, out)
from painterid.core.defaults import model_path
from painterid.core.errors import PainterIDError
from painterid.data.pairs import PROTOCOLS, SPLITS


@app.command()
def evaluate(
    data: Path = typer.Option(..., help="DATA folder or a feature STORE made with the model's backbone"),
    model: Path = typer.Option(DEFAULT_MODEL, help=MODEL_HELP, callback=model_path),
    split: Split = typer.Option("all", help=SPLITS.describe() + "; mix: mixed"),
    protocol: Protocol = typer.Option("balanced", help=PROTOCOLS.describe()),
    pairs: Optional[Path] = typer.Option(None, help="CSV of pairs: image1,image2[,same]"),
    store: Optional[Path] = typer.Option(None, help="where to keep the embeddings of DATA (default: cache)"),
    seed: int = typer.Option(0),
    bootstrap: int = typer.Option(200, min=0, help="bootstrap resamples for confidence intervals"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    report: Optional[Path] = typer.Option(None, help="also write a self-contained HTML report to this directory"),
    references: Optional[str] = typer.Option(None, help="also the set protocol (what `verify` answers) with K "
                                             "references, e.g. 1,3,5: each unseen-artist painting against K "
                                             "others of its artist and K of another artist"),
    device: Optional[str] = _device_option(),
    runtime: Optional[Runtime] = typer.Option(None, help=RUNTIME_HELP),
) -> None:
    """Table 1 of the seed report for one model: accuracy, precision, recall, F1, ROC AUC, EER per split."""
    from painterid.data.pairs import read_pairs_csv
    from painterid.embedding.pipeline import model_labelled
    from painterid.evaluation.run import coverage_line, evaluate_model
    from painterid.scoring.loading import load_model

    pm = load_model(model)  # a PairModel, or a FusedModel (each painting embedded once per member)
    prog, update = _progress("embedding")
    with prog:
        lab = model_labelled(data, pm, store_dir=store, progress=update, device=device, runtime=_value(runtime))
    _report_failures(lab.failures)
    pair_rows = None
    if pairs is not None:
        pair_rows = read_pairs_csv(pairs, {n: i for i, n in enumerate(lab.names)})
    name = "mixed" if split.value == "mix" else split.value
    result, scored = evaluate_model(pm, lab, split=name, protocol=protocol.value, pairs=pair_rows, seed=seed,
                                    n_boot=bootstrap, return_scores=True)
    result["model"] = str(model)
    result["data"] = str(data)
    err.print(coverage_line(result["paintings"]), highlight=False)
    llr = _set_protocol(pm, lab, references, seed, result) if references else None
    if report is not None:
        from painterid.evaluation.report import write_report

        page = write_report(report, result, scored, lab, pm, title=f"painterid evaluate: {model.name} on {data}",
                            llr=llr)
        err.print(f"report: {page}")
    if as_json:
        out.print_json(json.dumps(result))
        return
    _print_tables(result, model.name, data, protocol.value, pm.threshold)


def _print_tables(result: dict, name: str, data: Path, protocol: str, threshold: float) -> None:
    """evaluate's tables: all pairs, pairs within one source (when there are several), the set protocol."""
    from painterid.evaluation.metrics import METRICS

    for title, groups in (("all pairs", result["groups"]), ("pairs within one source", result["within_source"])):
        if not groups:
            continue
        table = Table(title=f"{name} on {data} — {title} ({protocol}, threshold {threshold:.3f})")
        table.add_column("split", justify="right")
        for m in METRICS:
            table.add_column(m.label, justify="right")
        for g, r in groups.items():
            table.add_row(g, *[m.format(r) for m in METRICS])
        table.caption = "\n".join(sorted({n for r in groups.values() if r for n in r.get("notes", [])}))
        out.print(table)
    if "sets" in result:
        out.print(sets_table(result["sets"], name))


def _set_protocol(pm, lab, references: str, seed: int, result: dict) -> dict:
    """`evaluate --references`: the set protocol's rows into `result["sets"]`; returns the log10 LRs per K."""
    from painterid.evaluation.sets import evaluate_sets, parse_ks

    result["sets"] = evaluate_sets(pm, lab, parse_ks(references), seed=seed)
    return result["sets"].pop("llr")


def sets_table(sets: dict, name: str) -> Table:
    """The set protocol's rows of `evaluate --references`."""
    table = Table(title=f"{name}: a painting against K references of one artist (unseen artists; set score "
                  f"{sets['aggregate']}, LR from the model's sets.json)")
    for col in ("K", "trials", "AUC", "AUC max", "AUC 1 ref", "Cllr", "min Cllr", "EER", "TAR@1%FAR", "ECE"):
        table.add_column(col, justify="right")
    for k, r in sets["per_k"].items():
        if "skipped" in r:
            table.add_row(k, str(r["trials"]), r["skipped"], *[""] * 7)
            continue
        table.add_row(k, str(r["trials"]), *[f"{r[c]:.3f}" for c in ("auc", "auc_max", "auc_one_reference", "cllr",
                                                                   "min_cllr", "eer", "tar_at_1pct_far", "ece")])
    return table


@app.command("split")
def split_cmd(
    data: Path = typer.Option(..., help="DATA folder or a feature STORE"),
    out_file: Path = typer.Option(..., "--out", help="split file (JSON) to write"),
    val: float = typer.Option(0.2, help="fraction of artists for validation"),
    test: float = typer.Option(0.2, help="fraction of artists for the unseen test"),
    holdout: float = typer.Option(0.25, help="fraction of paintings of training artists kept for the seen test"),
    seed: int = typer.Option(0),
) -> None:
    """Split DATA by artist into train / validation / test, written as a file `train --split` reads."""
    from painterid.store.listing import split_data

    s = split_data(data, out_file, val=val, test=test, holdout=holdout, seed=seed)
    c = s["counts"]
    err.print(f"wrote {out_file}: artists train {c['train_artists']} / val {c['val_artists']} / test "
              f"{c['test_artists']}; paintings train {c['train_paintings']}, val {c['val_paintings']}, "
              f"seen test {c['test_seen_paintings']}, unseen test {c['test_unseen_paintings']}", highlight=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def table1(
    ctx: typer.Context,
    data: Path = typer.Option(..., help="DATA folder or a feature STORE"),
    models: list[Path] = typer.Option(..., "--models", help="model directories (or default, archive): --models M1 M2 ..."),
    store: Optional[Path] = typer.Option(None, help="where to keep the embeddings of DATA (default: cache)"),
    seed: int = typer.Option(0),
    bootstrap: int = typer.Option(0, min=0, help="bootstrap resamples for AUC intervals (JSON)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    device: Optional[str] = _device_option(),
) -> None:
    """The seed report's Table 1 for several models, with the report's own figures beside ours."""
    from painterid.evaluation.metrics import format_metric
    from painterid.evaluation.table1 import TABLE1_METRICS
    from painterid.evaluation.table1 import table1 as run_table1

    unknown = [a for a in ctx.args if a.startswith("-")]
    if unknown:
        raise PainterIDError(f"table1: no such option {unknown[0]}")
    prog, update = _progress("embedding")
    with prog:
        res = run_table1(data, [model_path(m) for m in [*models, *ctx.args]], store_dir=store, seed=seed,
                         n_boot=bootstrap, device=device, progress=update)
    if as_json:
        out.print_json(json.dumps(res))
        return
    table = Table(title=f"Table 1 on {data} (balanced seen / unseen / mixed pairs)")
    groups = ("seen", "unseen", "mixed")
    table.add_column("model", justify="left")
    for m in TABLE1_METRICS:
        for g in groups:
            table.add_column(f"{g} {m.label}", justify="right")
    table.add_column("pairs", justify="right")

    def cells(r):
        return [format_metric(m, r[m.name][g]) for m in TABLE1_METRICS for g in groups]

    for r in res["rows"]:
        table.add_row(f"{r['name']} ({Path(r['model']).name})", *cells(r),
                      " / ".join(str(r["n_pairs"][g]) for g in groups))
    table.add_section()
    for r in res["reference"]:
        table.add_row(f"[dim]{r['name']}[/]", *cells(r), "[dim]*[/]")
    table.caption = f"* {res['reference_note']} (Kaggle winner: 'mixed' = overall)"
    out.print(table)


@app.command()
def submit(
    data: Path = typer.Option(..., help="Kaggle folder: submission_info.csv, images in test/ and train/"),
    model: Path = typer.Option(DEFAULT_MODEL, help=MODEL_HELP, callback=model_path),
    out_file: Path = typer.Option(..., "--out", help="submission CSV to write (index,sameArtist)"),
    pairs: Optional[Path] = typer.Option(None, help="pairs CSV (index,image1,image2); "
                                         "default DATA/submission_info.csv"),
    chunk: int = typer.Option(1_000_000, min=1, help="pairs read, scored and written per block"),
    store: Optional[Path] = typer.Option(None, help="where to keep the embeddings of the images (default: cache)"),
    device: Optional[str] = _device_option(),
) -> None:
    """Kaggle submission: p(same artist) of every pair of submission_info.csv, streamed in chunks."""
    from painterid.tasks.submit import prepare_submission, write_submission

    prog, update = _progress("embedding")
    with prog:
        inputs = prepare_submission(data, model, pairs=pairs, store_dir=store, device=device, progress=update)
    _report_failures(inputs.failures)
    prog, update = _progress("scoring", unit="pairs")
    with prog:
        summary = write_submission(inputs, out_file, chunk=chunk, progress=update)
    err.print(f"wrote {summary.out}: {summary.n_pairs} pairs over {summary.n_images} images"
              + (f"; {summary.n_missing_pairs} pair(s) with a missing image got 0.5" if summary.n_missing_pairs
                 else ""), highlight=False)
