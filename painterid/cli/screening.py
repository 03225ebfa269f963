"""`compare` (pairs of paintings) and `explain` (which regions drive a score)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from painterid.cli.common import (DEFAULT_MODEL, MODEL_HELP, RUNTIME_HELP, OutFormat, Runtime, _device_option, _value, app, err, out)
from painterid.core.defaults import model_path
from painterid.core.errors import PainterIDError
from painterid.core.registry import choice_enum
from painterid.scoring.sets import SET_AGGREGATES


@app.command(epilog="Screening: compare one reference with every image of a folder, and list the matches:\n\n"
             "    painterid compare ref.jpg suspects/ --format csv > scores.csv\n\n"
             "    for f in suspects/*.jpg; do painterid compare ref.jpg \"$f\" >/dev/null && echo \"$f\"; done")
def compare(
    images: Optional[list[Path]] = typer.Argument(None, help="REFERENCE then one or more images or folders of "
                                                  "images to compare with it"),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="folders: their subfolders' images too"),
    pairs: Optional[Path] = typer.Option(None, help="CSV of pairs to compare (columns image1,image2) instead"),
    model: Path = typer.Option(DEFAULT_MODEL, help=MODEL_HELP, callback=model_path),
    threshold: Optional[float] = typer.Option(None, help="decision threshold on the score (default: the model's)"),
    fmt: OutFormat = typer.Option("table", "--format", help="table | json (JSON lines) | csv"),
    as_json: bool = typer.Option(False, "--json", help="same as --format json"),
    device: Optional[str] = _device_option(),
    runtime: Optional[Runtime] = typer.Option(None, help=RUNTIME_HELP),
) -> None:
    """Probability that one artist painted REFERENCE and each other image (or each --pairs row), and the verdict.

    A folder among the images stands for its images, sorted (subfolders with --recursive).
    Exit status: 0 = same artist (for every pair), 1 = different artists (for at least one), 2 = error.
    """
    from painterid.tasks.compare import compare_pairs, expand_images, read_pair_list

    if pairs is not None:
        if images:
            raise PainterIDError("give either images or --pairs CSV, not both")
        todo = read_pair_list(pairs)
    elif not images or len(images) < 2:
        raise PainterIDError("compare needs a reference image and at least one image to compare with it "
                             "(or --pairs CSV)")
    else:
        if images[0].is_dir():
            raise PainterIDError(f"{images[0]}: the reference must be one image, not a folder (folders go after it)")
        todo = [(images[0], other) for other in expand_images(images[1:], recursive=recursive)]
    results = compare_pairs(todo, model_dir=model, threshold=threshold, device=device, runtime=_value(runtime))
    fmt = OutFormat("json") if as_json else fmt
    if fmt.value == "json":
        for r in results:
            print(json.dumps(r, ensure_ascii=False))
    elif fmt.value == "csv":
        import csv
        w = csv.DictWriter(sys.stdout, fieldnames=list(results[0]))
        w.writeheader()
        w.writerows(results)
    else:
        for r in results:
            verdict = "[green]same artist[/]" if r["same_artist"] else "[red]different artists[/]"
            out.print(f"{r['image_a']}  vs  {r['image_b']}: p(same artist) = {r['probability']:.3f} "
                      f"(score {r['score']:.3f}, threshold {r['threshold']:.3f}) → {verdict}", highlight=False)
    raise typer.Exit(0 if all(r["same_artist"] for r in results) else 1)


@app.command()
def explain(
    image_a: Path = typer.Argument(..., help="first painting"),
    image_b: Path = typer.Argument(..., help="second painting"),
    out_png: Path = typer.Option(..., "--out", help="PNG to write (the patches compared, or the heatmaps)"),
    model: Path = typer.Option(DEFAULT_MODEL, help=MODEL_HELP, callback=model_path),
    device: Optional[str] = _device_option(),
) -> None:
    """What drives the pair score, as a PNG: for a patches model (the default) each native-resolution patch of
    IMAGE_A with what it adds for or against the match, beside its best-matching patch of IMAGE_B; for other views
    Grad-CAM heatmaps.

    Exit status: 0 = figure written (whatever the verdict), 2 = error.
    """
    from painterid.tasks.explain import explain_pair

    r = explain_pair(image_a, image_b, model, out=out_png, device=device)
    verdict = "[green]same artist[/]" if r["same_artist"] else "[red]different artists[/]"
    out.print(f"{r['image_a']}  vs  {r['image_b']}: p(same artist) = {r['probability']:.3f} "
              f"(score {r['score']:.3f}, threshold {r['threshold']:.3f}) → {verdict}", highlight=False)
    if "patches" in r:
        n_for = sum(p["margin"] >= 0 for p in r["patches"])
        out.print(f"patches: {n_for} of {len(r['patches'])} count for the match", highlight=False)
    out.print(f"figure: {r['out']}", highlight=False)


Aggregate = choice_enum("Aggregate", SET_AGGREGATES)


@app.command(epilog="Screening a folder of questioned works against one artist's authenticated works:\n\n"
             "    for f in questioned/*.jpg; do painterid verify \"$f\" --references rembrandt/ --json; done "
             "> verdicts.jsonl")
def verify(
    questioned: list[Path] = typer.Argument(..., help="questioned paintings, or folders of them"),
    references: Optional[list[Path]] = typer.Option(None, "--references", help="authenticated works of one artist: "
                                                    "a folder, files (repeat the option) or a feature store"),
    index: Optional[Path] = typer.Option(None, help="an artist index (painterid index build) holding the references"),
    artist: Optional[str] = typer.Option(None, help="with --index: the artist whose paintings are the references"),
    aggregate: Optional[Aggregate] = typer.Option(None, help="set score (default: the model's sets.json): "
                                                  + SET_AGGREGATES.describe()),
    prior: float = typer.Option(0.5, help="prior probability that the questioned painting is by the references' "
                                "artist (0 < prior < 1); the verdict is p(same) >= 0.5 at this prior"),
    contrast: Optional[Path] = typer.Option(None, help="folder of other artists' paintings to weigh the evidence "
                                            "against (default: the model's cohort)"),
    report: Optional[Path] = typer.Option(None, help="folder to write one HTML page per questioned painting"),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="folders: their subfolders' images too"),
    model: Path = typer.Option(DEFAULT_MODEL, help=MODEL_HELP, callback=model_path),
    fmt: OutFormat = typer.Option("table", "--format", help="table | json (JSON lines) | csv"),
    as_json: bool = typer.Option(False, "--json", help="same as --format json"),
    device: Optional[str] = _device_option(),
    runtime: Optional[Runtime] = typer.Option(None, help=RUNTIME_HELP),
) -> None:
    """Is each questioned painting consistent with the references (one artist's authenticated works)?

    Per painting: the set score, the log10 likelihood ratio (same artist as the references vs another artist of
    the population), p(same artist) at --prior, the closest references and the verdict: consistent when
    p(same) >= 0.5. Exit status: 0 = consistent (every questioned painting), 1 = not consistent (at least one),
    2 = error (a bad questioned file: the others are still printed).
    """
    from painterid.tasks.verify import verify as run_verify

    results, bad = run_verify(questioned, model, references=references, index_dir=index, artist=artist,
                              aggregate=_value(aggregate), prior=prior, contrast=[contrast] if contrast else None,
                              runtime=_value(runtime), device=device, recursive=recursive)
    print_verify(results, OutFormat("json") if as_json else fmt)
    if report is not None:
        from painterid.tasks.verify import write_reports

        for page in write_reports(report, results, model):
            err.print(f"report: {page}", highlight=False)
    for line in bad:
        err.print(f"painterid: error: {line}", highlight=False, markup=False)
    raise typer.Exit(2 if bad else 0 if all(r["consistent"] for r in results) else 1)


def print_verify(results: list[dict], fmt) -> None:
    """Rich table (default), JSON lines or CSV of verify results."""
    if fmt.value == "json":
        for r in results:
            print(json.dumps(r, ensure_ascii=False))
        return
    if fmt.value == "csv":
        import csv
        w = csv.writer(sys.stdout)
        w.writerow(["questioned", "references", "excluded_self", "aggregate", "set_score", "log10_lr", "prior",
                    "p_same", "verdict", "closest", "closest_score"])
        for r in results:
            c = r["closest"][0]
            w.writerow([r["questioned"], r["references"], r["excluded_self"] or "", r["aggregate"], r["set_score"],
                        r["log10_lr"], r["prior"], r["p_same"], r["verdict"], c["reference"], c["score"]])
        return
    if not results:
        return
    from rich.table import Table

    table = Table(title=f"verify ({results[0]['aggregate']} of the pair scores; verdict: consistent when "
                  f"p(same) >= 0.5 at prior {results[0]['prior']:g})")
    for col in ("questioned", "refs", "set score", "log10 LR", "p(same)", "verdict", "closest references"):
        table.add_column(col, overflow="fold")
    for r in results:
        verdict = "[green]consistent[/]" if r["consistent"] else "[red]not consistent[/]"
        refs = f"{r['references']}" + (f" (itself left out: {Path(r['excluded_self']).name})"
                                       if r["excluded_self"] else "")
        near = "\n".join(f"{Path(c['reference']).name} ({c['score']:.3f})" for c in r["closest"][:3])
        table.add_row(r["questioned"], refs, f"{r['set_score']:.3f}", f"{r['log10_lr']:+.2f}", f"{r['p_same']:.3f}",
                      verdict, near)
    out.print(table)
    for note in dict.fromkeys(r.get("note") or r.get("calibration_warning") for r in results
                              if r.get("note") or r.get("calibration_warning")):
        out.print(f"note: {note}", highlight=False)
