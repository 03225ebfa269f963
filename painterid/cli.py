"""painterid command line: options, calls into the library, Rich output. Nothing else lives here.

Exit status: 0 success (compare: same artist), 1 compare: different artists, 2 error (one line on stderr).
"""

from __future__ import annotations

import json
import sys
import warnings
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import PainterIDError

app = typer.Typer(
    name="painterid", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Were these two paintings made by the same artist? Exit status: 0 ok / same artist, "
         "1 different artists (compare), 2 error.",
)
# Not a terminal (pipes, CI, scripts): no line wrapping, tables get room.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 180)
err = Console(stderr=True, soft_wrap=True)

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "default"


class Split(str, Enum):
    seen = "seen"
    unseen = "unseen"
    mix = "mix"
    mixed = "mixed"
    all = "all"


class Protocol(str, Enum):
    balanced = "balanced"
    natural = "natural"


class Method(str, Enum):
    cosine = "cosine"
    siamese = "siamese"
    metric = "metric"
    classifier = "classifier"


class OutFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def _progress(label: str):
    """A Rich progress bar with throughput; returns (context manager, callback(done, total))."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    class Speed(TextColumn):
        def render(self, task):
            from rich.text import Text
            return Text(f"{task.speed:6.1f} img/s" if task.speed else "      -- img/s")

    prog = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), Speed(""), TimeRemainingColumn(),
                    console=err, transient=False, disable=not err.is_terminal)
    task = prog.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        prog.update(task, completed=done, total=total)

    return prog, update


def _report_failures(failures, where: Path | None = None) -> None:
    if not failures:
        return
    err.print(f"[yellow]skipped {len(failures)} unreadable image(s):[/]")
    for _, msg in failures[:10]:
        err.print(f"  {msg}", markup=False, highlight=False)
    if len(failures) > 10:
        err.print(f"  ... and {len(failures) - 10} more")
    if where is not None:
        import csv
        where.parent.mkdir(parents=True, exist_ok=True)
        with open(where, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "error"])
            w.writerows(failures)
        err.print(f"  full list: {where}")


def _embedding_config(backbone: Optional[str], view: str, pool: str, weights: Optional[Path]):
    from .embedding import EmbeddingConfig, default_backbone

    return EmbeddingConfig(backbone=backbone or default_backbone(), view=view, pool=pool,
                           weights=str(weights) if weights else None)


@app.command()
def backbones() -> None:
    """List the registered backbones and whether their weights are on this machine."""
    from .backbones import describe, list_backbones, weights_status

    table = Table(title="painterid backbones")
    for col in ("name", "timm model", "gap dim", "input", "licence", "weights on this machine"):
        table.add_column(col, overflow="fold")
    hints = []
    for spec in list_backbones():
        d = describe(spec.name)
        status = weights_status(spec.name)
        if status.startswith("missing"):
            hints.append(f"{spec.name}: {status.split(':', 1)[1].strip()}")
        table.add_row(spec.name, spec.timm_name, str(d["dim"]), "×".join(map(str, d["input_size"][1:])),
                      spec.licence.split(" (")[0], "yes" if status.startswith("available") else "no")
    out.print(table)
    for h in hints:
        out.print(f"  {h}", markup=False, highlight=False)


@app.command()
def embed(
    data: Path = typer.Argument(..., help="Kaggle layout (train_info.csv) or one folder per artist"),
    out_dir: Path = typer.Option(..., "--out", help="feature store directory (created or resumed)"),
    backbone: Optional[str] = typer.Option(None, help="backbone name (painterid backbones); default: the shipped one"),
    view: str = typer.Option("center", help="resize | center | corners | patches"),
    pool: str = typer.Option("style", help="gap | style | both"),
    weights: Optional[Path] = typer.Option(None, help="weights file (.safetensors or .pth, loaded safely)"),
    batch_size: int = typer.Option(16, min=1),
    workers: Optional[int] = typer.Option(None, min=0, help="DataLoader worker processes"),
    device: Optional[str] = typer.Option(None, help="cuda | cpu (default: cuda when present)"),
) -> None:
    """Embed every painting of DATA into a feature store; a second run skips what is done."""
    from .embedding import Embedder
    from .pipeline import embed_data

    embedder = Embedder(_embedding_config(backbone, view, pool, weights), device=device, batch_size=batch_size,
                        num_workers=workers)
    prog, update = _progress("embedding")
    with prog:
        store, dataset, failures = embed_data(data, embedder, out_dir, progress=update)
    _report_failures(failures, out_dir / "failures.csv" if failures else None)
    err.print(f"{len(store)} paintings of {len(set(store.artists))} artists in {out_dir} "
              f"({embedder.fingerprint['backbone']}, {view}, {pool}, dim {embedder.dim}, {embedder.device})")


@app.command()
def train(
    data: Path = typer.Option(..., help="DATA folder or a feature STORE"),
    out_dir: Path = typer.Option(..., "--out", help="model directory to write"),
    method: Method = typer.Option(Method.siamese, help="cosine | siamese | metric | classifier"),
    backbone: Optional[str] = typer.Option(None, help="backbone (ignored when --data is a store)"),
    view: str = typer.Option("center"),
    pool: str = typer.Option("style"),
    weights: Optional[Path] = typer.Option(None),
    store: Optional[Path] = typer.Option(None, help="where to keep the embeddings of DATA (default: cache)"),
    epochs: int = typer.Option(40, min=1),
    lr: float = typer.Option(1e-3),
    batch_size: int = typer.Option(128, min=2),
    loss: str = typer.Option("supcon", help="metric: supcon | contrastive | triplet | multisimilarity | arcface | subcenter_arcface"),
    normaliser: str = typer.Option("auto", help="none | csls | auto (chosen on validation artists)"),
    val_artists: float = typer.Option(0.2, help="fraction of artists held out for validation"),
    test_artists: float = typer.Option(0.2, help="fraction of artists held out for the unseen test"),
    holdout: float = typer.Option(0.25, help="fraction of paintings of training artists kept for the seen test"),
    seed: int = typer.Option(0),
    device: Optional[str] = typer.Option(None),
) -> None:
    """Train a pair scorer on artist-disjoint splits; the threshold is chosen on validation artists."""
    from .pipeline import labelled
    from .training import TrainOptions, train_model

    prog, update = _progress("embedding")
    with prog:
        lab = labelled(data, _embedding_config(backbone, view, pool, weights), store_dir=store, progress=update,
                       device=device)
    _report_failures(lab.failures)
    opts = TrainOptions(method=method.value, epochs=epochs, lr=lr, batch_size=batch_size, loss=loss,
                        normaliser=normaliser, seed=seed)

    def log(rec):
        err.print(f"epoch {rec['epoch']:3d}  train loss {rec['train_loss']:.4f}  val AUC {rec['val_auc']:.4f}",
                  highlight=False)

    model, history, split = train_model(lab, out_dir, opts, val=val_artists, test=test_artists, holdout=holdout,
                                        log=log)
    v = model.info["validation"]
    err.print(f"saved {out_dir}: {method.value}, normaliser {model.normaliser}, threshold {model.threshold:.4f}, "
              f"validation AUC {v['auc']:.4f} on {v['pairs']} pairs of {len(split['artists']['val'])} artists")


def _fmt(x, digits=3):
    return "–" if x is None else f"{x:.{digits}f}"


@app.command()
def evaluate(
    data: Path = typer.Option(..., help="DATA folder or a feature STORE made with the model's backbone"),
    model: Path = typer.Option(DEFAULT_MODEL, help="model directory"),
    split: Split = typer.Option(Split.all, help="seen | unseen | mix | all"),
    protocol: Protocol = typer.Option(Protocol.balanced, help="balanced (the report's) | natural (all pairs)"),
    pairs: Optional[Path] = typer.Option(None, help="CSV of pairs: image1,image2[,same]"),
    store: Optional[Path] = typer.Option(None, help="where to keep the embeddings of DATA (default: cache)"),
    seed: int = typer.Option(0),
    bootstrap: int = typer.Option(200, min=0, help="bootstrap resamples for confidence intervals"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    device: Optional[str] = typer.Option(None),
) -> None:
    """Table 1 of the seed report for one model: accuracy, precision, recall, F1, ROC AUC, EER per split."""
    from .evaluation.pairs import read_pairs_csv
    from .evaluation.run import evaluate_model
    from .pipeline import labelled
    from .scoring import PairModel

    pm = PairModel.load(model)
    prog, update = _progress("embedding")
    with prog:
        lab = labelled(data, pm.embedding, store_dir=store, progress=update, device=device)
    _report_failures(lab.failures)
    pair_rows = None
    if pairs is not None:
        pair_rows = read_pairs_csv(pairs, {n: i for i, n in enumerate(lab.names)})
    name = "mixed" if split.value == "mix" else split.value
    result = evaluate_model(pm, lab, split=name, protocol=protocol.value, pairs=pair_rows, seed=seed,
                            n_boot=bootstrap)
    result["model"] = str(model)
    result["data"] = str(data)
    if as_json:
        out.print_json(json.dumps(result))
        return
    for title, groups in (("all pairs", result["groups"]), ("pairs within one source", result["within_source"])):
        if not groups:
            continue
        table = Table(title=f"{model.name} on {data} — {title} ({protocol.value}, threshold {pm.threshold:.3f})")
        for col in ("split", "pairs", "pos", "accuracy", "precision", "recall", "F1", "ROC AUC", "AUC 95% CI", "EER",
                    "TAR@1%FAR"):
            table.add_column(col, justify="right")
        for g, r in groups.items():
            if r is None:
                table.add_row(g, "0", *["–"] * 9)
                continue
            ci = r.get("auc_ci") or [None, None]
            table.add_row(g, str(r["n_pairs"]), str(r["n_pos"]), _fmt(r["accuracy"]), _fmt(r["precision"]),
                          _fmt(r["recall"]), _fmt(r["f1"]), _fmt(r["auc"]), f"{_fmt(ci[0])}–{_fmt(ci[1])}",
                          _fmt(r["eer"]), _fmt(r.get("tar@far=1%")))
        out.print(table)


@app.command()
def compare(
    images: list[Path] = typer.Argument(..., help="REFERENCE then one or more images to compare with it"),
    model: Path = typer.Option(DEFAULT_MODEL, help="model directory (default: the shipped model)"),
    threshold: Optional[float] = typer.Option(None, help="decision threshold on the score (default: the model's)"),
    fmt: OutFormat = typer.Option(OutFormat.table, "--format", help="table | json (JSON lines) | csv"),
    as_json: bool = typer.Option(False, "--json", help="same as --format json"),
    device: Optional[str] = typer.Option(None),
) -> None:
    """Probability that one artist painted REFERENCE and each other image, and the verdict.

    Exit status: 0 = same artist (for every image), 1 = different artists (for at least one), 2 = error.
    """
    from .compare import compare_files

    if len(images) < 2:
        raise PainterIDError("compare needs a reference image and at least one image to compare with it")
    results = compare_files(images[0], images[1:], model_dir=model, threshold=threshold, device=device)
    fmt = OutFormat.json if as_json else fmt
    if fmt is OutFormat.json:
        for r in results:
            print(json.dumps(r, ensure_ascii=False))
    elif fmt is OutFormat.csv:
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


index_app = typer.Typer(help="FAISS index of painting and artist embeddings (for identify).", no_args_is_help=True)
app.add_typer(index_app, name="index")


@index_app.command("build")
def index_build(
    data: Path = typer.Option(..., help="DATA folder or a feature STORE"),
    out_dir: Path = typer.Option(..., "--out", help="index directory to write"),
    backbone: Optional[str] = typer.Option(None, help="backbone (ignored when --data is a store)"),
    view: str = typer.Option("center"),
    pool: str = typer.Option("style"),
    kind: str = typer.Option("auto", help="auto | flat | hnsw | ivf (auto: exact up to 200k paintings)"),
    subcentres: int = typer.Option(1, min=1, help="prototypes per artist (for styles that changed over time)"),
    store: Optional[Path] = typer.Option(None, help="where to keep the embeddings of DATA (default: cache)"),
) -> None:
    """Index every painting and per-artist prototypes; the open-set threshold is set from the data."""
    from .identify import build_index

    prog, update = _progress("embedding")
    with prog:
        index, failures = build_index(data, out_dir, _embedding_config(backbone, view, pool, None), kind=kind,
                                      n_subcentres=subcentres, store_dir=store, progress=update)
    _report_failures(failures)
    err.print(f"indexed {index.n} paintings of {len(index.prototype_artists)} artists ({index.kind}) in {out_dir}; "
              f"open-set threshold {index.config['open_set']['threshold']:.3f}")


@app.command()
def identify(
    images: list[Path] = typer.Argument(..., help="paintings to attribute"),
    index: Path = typer.Option(..., help="index directory (painterid index build)"),
    k: int = typer.Option(5, "-k", min=1, help="how many artists"),
    threshold: Optional[float] = typer.Option(None, help="open-set threshold (default: the index's)"),
    as_json: bool = typer.Option(False, "--json", help="JSON lines"),
) -> None:
    """The k most likely artists of each painting, or "none of these" when no artist clears the threshold."""
    from .identify import identify as run_identify

    for r in run_identify(images, index, k=k, threshold=threshold):
        if as_json:
            print(json.dumps(r, ensure_ascii=False))
            continue
        head = "[yellow]none of these[/] (best below threshold)" if r["none_of_these"] else "candidates"
        out.print(f"{r['image']}: {head}, threshold {r['threshold']:.3f}")
        for c in r["candidates"]:
            near = ", ".join(f"{n['file']} ({n['score']:.2f})" for n in c["nearest"])
            out.print(f"  {c['score']:.3f}  p={c['probability']:.2f}  {c['artist']}  — nearest: {near}",
                      highlight=False, markup=False)


@app.command()
def version() -> None:
    """Print the painterid version."""
    out.print(__version__)


def main() -> None:
    """Entry point: user errors become one line and exit status 2, never a traceback."""
    warnings.formatwarning = lambda msg, cat, *a, **k: f"painterid: warning: {msg}\n"
    try:
        rv = app(standalone_mode=False)
        sys.exit(rv if isinstance(rv, int) else 0)
    except PainterIDError as exc:
        msg = " ".join(str(exc).split())  # one line, whatever the message held
        print(f"painterid: error: {msg}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("painterid: interrupted; finished work is kept", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # usage errors from Typer's click
            exc.show()
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
