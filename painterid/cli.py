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
from .defaults import DEFAULT_CHAIN, DEFAULT_METHOD, DEFAULT_POOL, DEFAULT_VIEW, default_model_dir
from .errors import PainterIDError

app = typer.Typer(
    name="painterid", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Were these two paintings made by the same artist? Exit status: 0 ok / same artist, "
         "1 different artists (compare), 2 error.",
)
# Not a terminal (pipes, CI, scripts): no line wrapping, tables get room.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 180)
err = Console(stderr=True, soft_wrap=True)

DEFAULT_MODEL = default_model_dir()  # package data: travels inside the wheel
RUNTIME_HELP = ("auto | onnx | torch: what runs the backbone (auto, or $PAINTERID_RUNTIME: ONNX Runtime on CPU when "
                "installed, painterid[fast], else torch)")


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
    finetune = "finetune"
    cnn = "cnn"


class OutFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def _progress(label: str, unit: str = "img"):
    """A Rich progress bar with throughput; returns (context manager, callback(done, total))."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    class Speed(TextColumn):
        def render(self, task):
            from rich.text import Text
            return Text(f"{task.speed:6.1f} {unit}/s" if task.speed else f"      -- {unit}/s")

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
        import io

        from .io import atomic_write_text
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(["path", "error"])
        w.writerows(failures)
        where.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(where, buf.getvalue())  # UTF-8 (unicode file names), never half-written
        err.print(f"  full list: {where}")


def _embedding_config(backbone: Optional[str], view: str, pool: str, weights: Optional[Path],
                      input_size: Optional[int] = None):
    from .embedding import EmbeddingConfig, default_backbone

    return EmbeddingConfig(backbone=backbone or default_backbone(), view=view, pool=pool,
                           weights=str(weights) if weights else None, input_size=input_size)


@app.callback()
def _global_options(
    offline: bool = typer.Option(False, "--offline", help="never download (as HF_HUB_OFFLINE=1): hub weights come "
                                 "from the cache or a one-line error says how to fetch them"),
) -> None:
    """Were these two paintings made by the same artist? Exit status: 0 ok / same artist, 1 different artists
    (compare), 2 error."""
    if offline:
        import os

        os.environ["HF_HUB_OFFLINE"] = "1"


@app.command()
def backbones(
    pull: Optional[list[str]] = typer.Option(None, "--pull", metavar="NAME", help="fetch the pretrained weights of "
                                             "backbone NAME into the standard cache now (repeatable) and print the "
                                             "file and its SHA-256"),
) -> None:
    """List the registered backbones and whether their weights are on this machine (or --pull NAME: fetch them)."""
    from .backbones import describe, fetch_weights, file_sha256, get_spec, list_backbones, weights_status

    if pull:
        for name in pull:
            spec = get_spec(name)
            src = fetch_weights(spec.name)
            assert src.path is not None
            out.print(f"{spec.name}: {src.path}  sha256 {file_sha256(src.path)}  ({src.id})", markup=False,
                      highlight=False)
        return

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
    view: str = typer.Option(DEFAULT_VIEW, help="resize | center | corners | patches"),
    pool: str = typer.Option(DEFAULT_POOL, help="gap | style | both"),
    weights: Optional[Path] = typer.Option(None, help="weights file (.safetensors or .pth, loaded safely)"),
    batch_size: int = typer.Option(16, min=1),
    workers: Optional[int] = typer.Option(None, min=0, help="DataLoader worker processes"),
    device: Optional[str] = typer.Option(None, help="cuda | cpu (default: cuda when present)"),
    commit_every: int = typer.Option(256, min=1, help="images per committed shard (what a killed run keeps)"),
    runtime: Optional[str] = typer.Option(None, help=RUNTIME_HELP),
) -> None:
    """Embed every painting of DATA into a feature store; a second run skips what is done.

    Under `torchrun --nproc_per_node N -m painterid embed ...` the ranks share the work (painterid.distributed).
    """
    from .distributed import DistEnv, embed_data_distributed
    from .embedding import Embedder
    from .runtime import export_request, make_embedder, runtime_choice

    env = DistEnv.from_env()
    if env.distributed or runtime_choice(runtime) == "torch":
        embedder = Embedder(_embedding_config(backbone, view, pool, weights), device=env.device(device),
                            batch_size=batch_size, num_workers=workers)
    else:
        from .embedding import default_backbone

        request = export_request(backbone or default_backbone(), view, pool, 8, str(weights) if weights else None,
                                 None)
        embedder = make_embedder(request, device=device, runtime=runtime, batch_size=batch_size,
                                 num_workers=workers)
    prog, update = _progress("embedding")
    with prog:  # one bar: rank 0's share
        store, dataset, failures = embed_data_distributed(data, embedder, out_dir, env,
                                                          progress=update if env.is_main else None,
                                                          commit_every=commit_every)
    if not env.is_main:
        return
    (out_dir / "failures.csv").unlink(missing_ok=True)  # the list is this run's, not a stale one
    _report_failures(failures, out_dir / "failures.csv" if failures else None)
    err.print(f"{len(store)} paintings of {len(set(store.artists))} artists in {out_dir} "
              f"({embedder.fingerprint['backbone']}, {view}, {pool}, dim {embedder.dim}, {embedder.device}, {embedder.runtime})")


def _log_epoch(rec: dict) -> None:
    err.print(f"epoch {rec['epoch']:3d}  train loss {rec['train_loss']:.4f}  val AUC {rec['val_auc']:.4f}",
              highlight=False)


@app.command()
def train(
    data: Path = typer.Option(..., help="DATA folder or a feature STORE"),
    out_dir: Path = typer.Option(..., "--out", help="model directory to write"),
    method: Method = typer.Option(Method(DEFAULT_METHOD), help="cosine | siamese (default: best measured) | "
                                  "metric | classifier (over embeddings); "
                                  "finetune | cnn (the backbone itself, from DATA's image files)"),
    backbone: Optional[str] = typer.Option(None, help="backbone (ignored when --data is a store; cnn: the "
                                           "architecture trained from scratch, default cnn_baseline)"),
    view: str = typer.Option(DEFAULT_VIEW, help="resize | center | corners | patches"),
    pool: str = typer.Option(DEFAULT_POOL, help="gap | style | both"),
    weights: Optional[Path] = typer.Option(None),
    input_size: Optional[int] = typer.Option(None, min=32, help="square input side in pixels (default: the "
                                             "backbone's own)"),
    store: Optional[Path] = typer.Option(None, help="where to keep the embeddings of DATA (default: cache)"),
    epochs: int = typer.Option(40, min=1),
    lr: float = typer.Option(1e-3),
    batch_size: int = typer.Option(128, min=2),
    loss: str = typer.Option("supcon", help="metric: supcon | contrastive | triplet | multisimilarity | arcface | subcenter_arcface"),
    normaliser: str = typer.Option(DEFAULT_CHAIN, help="normaliser chain (steps: "
                                   "power, center, l2, whiten[:DIM], wccn, lda[:DIM], csls[:K]); several joined "
                                   "by '|' or 'auto': the best on validation artists; 'none'"),
    cohort: Optional[list[Path]] = typer.Option(None, help="DATA|STORE of reference paintings the normalisers are "
                                                "fitted on and the model ships (repeatable; default: the "
                                                "training paintings)"),
    val_artists: float = typer.Option(0.2, help="fraction of artists held out for validation"),
    test_artists: float = typer.Option(0.2, help="fraction of artists held out for the unseen test"),
    holdout: float = typer.Option(0.25, help="fraction of paintings of training artists kept for the seen test"),
    split_file: Optional[Path] = typer.Option(None, "--split", help="split file from `painterid split` (then "
                                              "--val-artists, --test-artists and --holdout are not used)"),
    seed: int = typer.Option(0),
    tune: bool = typer.Option(False, "--tune", help="try learning rates × hidden widths; keep the best on "
                              "validation artists (heads over embeddings)"),
    device: Optional[str] = typer.Option(None),
) -> None:
    """Train a pair scorer on artist-disjoint splits; the threshold is chosen on validation artists."""
    from .pipeline import labelled
    from .splits import read_split, split_indices
    from .training import TrainOptions, train_model

    precomputed = read_split(split_file) if split_file else None
    if method in (Method.finetune, Method.cnn):  # the backbone itself, from image files
        from .training import train_from_images
        from .training.finetune import CNN_BACKBONE

        default = CNN_BACKBONE if method is Method.cnn else None
        model, history, split = train_from_images(
            data, out_dir, TrainOptions(method=method.value, epochs=epochs, lr=lr, batch_size=batch_size,
                                        normaliser=normaliser, seed=seed),
            _embedding_config(backbone or default, view, pool, weights, input_size), val=val_artists,
            test=test_artists, holdout=holdout, device=device, split_file=precomputed, log=_log_epoch)
        v = model.info["validation"]
        err.print(f"saved {out_dir}: {method.value} ({model.embedding['backbone']}, best epoch "
                  f"{model.info['best_epoch']}), threshold {model.threshold:.4f}, validation AUC {v['auc']:.4f} on "
                  f"{v['pairs']} pairs of {len(split['artists']['val'])} artists")
        return

    prog, update = _progress("embedding")
    with prog:
        lab = labelled(data, _embedding_config(backbone, view, pool, weights, input_size), store_dir=store,
                       progress=update, device=device)
    _report_failures(lab.failures)
    opts = TrainOptions(method=method.value, epochs=epochs, lr=lr, batch_size=batch_size, loss=loss,
                        normaliser=normaliser, seed=seed)

    if precomputed is not None:
        precomputed = split_indices(precomputed, lab.names, lab.artists)
    cohorts = []
    for c in cohort or []:
        cprog, update = _progress(f"cohort {c.name}")
        with cprog:
            clab = labelled(c, lab.embedding, progress=update, device=device)
        _report_failures(clab.failures)
        cohorts.append((clab, c))
    model, history, split = train_model(lab, out_dir, opts, val=val_artists, test=test_artists, holdout=holdout,
                                        log=_log_epoch, split=precomputed, tune=tune, cohort=cohorts)
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
    report: Optional[Path] = typer.Option(None, help="also write a self-contained HTML report to this directory"),
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
        lab = labelled(data, pm.embedding, store_dir=store, progress=update, device=device, base_dir=pm.root)
    _report_failures(lab.failures)
    pair_rows = None
    if pairs is not None:
        pair_rows = read_pairs_csv(pairs, {n: i for i, n in enumerate(lab.names)})
    name = "mixed" if split.value == "mix" else split.value
    result, scored = evaluate_model(pm, lab, split=name, protocol=protocol.value, pairs=pair_rows, seed=seed,
                                    n_boot=bootstrap, return_scores=True)
    result["model"] = str(model)
    result["data"] = str(data)
    if report is not None:
        from .evaluation.report import write_report

        page = write_report(report, result, scored, lab, pm, title=f"painterid evaluate: {model.name} on {data}")
        err.print(f"report: {page}")
    if as_json:
        out.print_json(json.dumps(result))
        return
    for title, groups in (("all pairs", result["groups"]), ("pairs within one source", result["within_source"])):
        if not groups:
            continue
        table = Table(title=f"{model.name} on {data} — {title} ({protocol.value}, threshold {pm.threshold:.3f})")
        for col in ("split", "pairs", "pos", "accuracy", "precision", "recall", "F1", "ROC AUC", "AUC 95% CI", "EER",
                    "TAR@1%FAR", "TAR@0.1%FAR", "MAP@R"):
            table.add_column(col, justify="right")
        for g, r in groups.items():
            if r is None:
                table.add_row(g, "0", *["–"] * 11)
                continue
            ci = r.get("auc_ci") or [None, None]
            table.add_row(g, str(r["n_pairs"]), str(r["n_pos"]), _fmt(r["accuracy"]), _fmt(r["precision"]),
                          _fmt(r["recall"]), _fmt(r["f1"]), _fmt(r["auc"]), f"{_fmt(ci[0])}–{_fmt(ci[1])}",
                          _fmt(r["eer"]), _fmt(r.get("tar@far=1%")), _fmt(r.get("tar@far=0.1%")),
                          _fmt(r.get("map@r")))
        out.print(table)


@app.command(epilog="Screening: compare one reference with every image of a folder, and list the matches:\n\n"
             "    painterid compare ref.jpg suspects/ --format csv > scores.csv\n\n"
             "    for f in suspects/*.jpg; do painterid compare ref.jpg \"$f\" >/dev/null && echo \"$f\"; done")
def compare(
    images: Optional[list[Path]] = typer.Argument(None, help="REFERENCE then one or more images or folders of "
                                                  "images to compare with it"),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="folders: their subfolders' images too"),
    pairs: Optional[Path] = typer.Option(None, help="CSV of pairs to compare (columns image1,image2) instead"),
    model: Path = typer.Option(DEFAULT_MODEL, help="model directory (default: the shipped model)"),
    threshold: Optional[float] = typer.Option(None, help="decision threshold on the score (default: the model's)"),
    fmt: OutFormat = typer.Option(OutFormat.table, "--format", help="table | json (JSON lines) | csv"),
    as_json: bool = typer.Option(False, "--json", help="same as --format json"),
    device: Optional[str] = typer.Option(None),
    runtime: Optional[str] = typer.Option(None, help=RUNTIME_HELP),
) -> None:
    """Probability that one artist painted REFERENCE and each other image (or each --pairs row), and the verdict.

    A folder among the images stands for its images, sorted (subfolders with --recursive).
    Exit status: 0 = same artist (for every pair), 1 = different artists (for at least one), 2 = error.
    """
    from .compare import compare_pairs, expand_images, read_pair_list

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
    results = compare_pairs(todo, model_dir=model, threshold=threshold, device=device, runtime=runtime)
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
    view: str = typer.Option(DEFAULT_VIEW, help="resize | center | corners | patches"),
    pool: str = typer.Option(DEFAULT_POOL, help="gap | style | both"),
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


cohort_app = typer.Typer(help="The reference cohort a model's normalisers are fitted on.", no_args_is_help=True)
app.add_typer(cohort_app, name="cohort")


@cohort_app.command("set")
def cohort_set(
    model: Path = typer.Argument(..., help="model directory (rewritten in place, atomically)"),
    data: Path = typer.Argument(..., help="DATA folder or feature STORE of reference paintings"),
    store: Optional[Path] = typer.Option(None, help="where to keep the embeddings of DATA (default: cache)"),
    device: Optional[str] = typer.Option(None),
) -> None:
    """Replace a model's cohort (e.g. by your own archive); its normalisers are refitted on it."""
    from .cohort import set_cohort

    prog, update = _progress("embedding")
    with prog:
        pm, failures = set_cohort(model, data, store_dir=store, progress=update, device=device)
    _report_failures(failures)
    info = pm.cohort_info["from"][0]
    err.print(f"{model}: cohort of {len(pm.cohort)} paintings from {data} (left out "
              f"{info['left_out_validation_or_test_artists']} by validation or test artists, "
              f"{info['left_out_test_or_duplicate']} duplicates); chain {pm.normaliser} refitted")


@app.command()
def identify(
    images: list[Path] = typer.Argument(..., help="paintings to attribute"),
    index: Path = typer.Option(..., help="index directory (painterid index build)"),
    k: int = typer.Option(5, "-k", min=1, help="how many artists"),
    threshold: Optional[float] = typer.Option(None, help="open-set threshold (default: the index's)"),
    as_json: bool = typer.Option(False, "--json", help="JSON lines"),
    runtime: Optional[str] = typer.Option(None, help=RUNTIME_HELP),
) -> None:
    """The k most likely artists of each painting, or "none of these" when no artist clears the threshold."""
    from .identify import identify as run_identify

    for r in run_identify(images, index, k=k, threshold=threshold, runtime=runtime):
        if as_json:
            print(json.dumps(r, ensure_ascii=False))
            continue
        head = "[yellow]none of these[/] (best below threshold)" if r["none_of_these"] else "candidates"
        out.print(f"{r['image']}: {head}, threshold {r['threshold']:.3f}")
        for c in r["candidates"]:
            near = ", ".join(f"{n['file']} ({n['score']:.2f})" for n in c["nearest"])
            out.print(f"  {c['score']:.3f}  p={c['probability']:.2f}  {c['artist']}  — nearest: {near}",
                      highlight=False, markup=False)


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
    from .splits import split_data

    s = split_data(data, out_file, val=val, test=test, holdout=holdout, seed=seed)
    c = s["counts"]
    err.print(f"wrote {out_file}: artists train {c['train_artists']} / val {c['val_artists']} / test "
              f"{c['test_artists']}; paintings train {c['train_paintings']}, val {c['val_paintings']}, "
              f"seen test {c['test_seen_paintings']}, unseen test {c['test_unseen_paintings']}", highlight=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def table1(
    ctx: typer.Context,
    data: Path = typer.Option(..., help="DATA folder or a feature STORE"),
    models: list[Path] = typer.Option(..., "--models", help="model directories: --models M1 M2 ..."),
    store: Optional[Path] = typer.Option(None, help="where to keep the embeddings of DATA (default: cache)"),
    seed: int = typer.Option(0),
    bootstrap: int = typer.Option(0, min=0, help="bootstrap resamples for AUC intervals (JSON)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    device: Optional[str] = typer.Option(None),
) -> None:
    """The seed report's Table 1 for several models, with the report's own figures beside ours."""
    from .evaluation.table1 import table1 as run_table1

    unknown = [a for a in ctx.args if a.startswith("-")]
    if unknown:
        raise PainterIDError(f"table1: no such option {unknown[0]}")
    prog, update = _progress("embedding")
    with prog:
        res = run_table1(data, list(models) + [Path(a) for a in ctx.args], store_dir=store, seed=seed,
                         n_boot=bootstrap, device=device, progress=update)
    if as_json:
        out.print_json(json.dumps(res))
        return
    table = Table(title=f"Table 1 on {data} (balanced seen / unseen / mixed pairs)")
    for col in ("model", "seen acc", "unseen acc", "mixed acc", "seen AUC", "unseen AUC", "mixed AUC", "pairs"):
        table.add_column(col, justify="left" if col == "model" else "right")
    groups = ("seen", "unseen", "mixed")
    for r in res["rows"]:
        table.add_row(f"{r['name']} ({Path(r['model']).name})", *[_fmt(r["accuracy"][g]) for g in groups],
                      *[_fmt(r["auc"][g]) for g in groups], " / ".join(str(r["n_pairs"][g]) for g in groups))
    table.add_section()
    for r in res["reference"]:
        table.add_row(f"[dim]{r['name']}[/]", *[_fmt(r["accuracy"][g]) for g in groups],
                      *[_fmt(r["auc"][g]) for g in groups], "[dim]*[/]")
    table.caption = f"* {res['reference_note']} (Kaggle winner: 'mixed' = overall)"
    out.print(table)


@app.command()
def submit(
    data: Path = typer.Option(..., help="Kaggle folder: submission_info.csv, images in test/ and train/"),
    model: Path = typer.Option(DEFAULT_MODEL, help="model directory"),
    out_file: Path = typer.Option(..., "--out", help="submission CSV to write (index,sameArtist)"),
    pairs: Optional[Path] = typer.Option(None, help="pairs CSV (index,image1,image2); "
                                         "default DATA/submission_info.csv"),
    chunk: int = typer.Option(1_000_000, min=1, help="pairs read, scored and written per block"),
    store: Optional[Path] = typer.Option(None, help="where to keep the embeddings of the images (default: cache)"),
    device: Optional[str] = typer.Option(None),
) -> None:
    """Kaggle submission: p(same artist) of every pair of submission_info.csv, streamed in chunks."""
    from .submit import prepare_submission, write_submission

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


@app.command()
def explain(
    image_a: Path = typer.Argument(..., help="first painting"),
    image_b: Path = typer.Argument(..., help="second painting"),
    out_png: Path = typer.Option(..., "--out", help="PNG to write (the two paintings with their heatmaps)"),
    model: Path = typer.Option(DEFAULT_MODEL, help="model directory (default: the shipped model)"),
    device: Optional[str] = typer.Option(None),
) -> None:
    """Heatmaps (Grad-CAM) of the regions of both paintings that drive their pair score, side by side as a PNG.

    Exit status: 0 = figure written (whatever the verdict), 2 = error.
    """
    from .explain import explain_pair

    r = explain_pair(image_a, image_b, model, out=out_png, device=device)
    verdict = "[green]same artist[/]" if r["same_artist"] else "[red]different artists[/]"
    out.print(f"{r['image_a']}  vs  {r['image_b']}: p(same artist) = {r['probability']:.3f} "
              f"(score {r['score']:.3f}, threshold {r['threshold']:.3f}) → {verdict}", highlight=False)
    out.print(f"heatmaps: {r['out']}", highlight=False)


cache_app = typer.Typer(help="The cache of feature stores ($PAINTERID_CACHE): info, compact, clear.",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")
_STORE_OPT = typer.Option(None, "--store", help="one feature store directory instead of the whole cache")


@cache_app.command("info")
def cache_info(store: Optional[Path] = _STORE_OPT,
               as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table")) -> None:
    """Where the cache is, and the rows, chunks and bytes of each store in it."""
    from .cache import info

    res = info(store)
    if as_json:
        out.print_json(json.dumps(res))
        return
    table = Table(title=f"painterid cache: {res['location']}")
    for col in ("store", "backbone", "rows", "chunks", "MB"):
        table.add_column(col, justify="left" if col in ("store", "backbone") else "right", overflow="fold")
    for s in res["stores"]:
        table.add_row(s["store"], str(s["backbone"]), str(s["rows"]), str(s["chunks"]), f"{s['bytes'] / 1e6:.2f}")
    table.add_section()
    table.add_row(f"{len(res['stores'])} store(s)", "", str(res["rows"]), str(res["chunks"]),
                  f"{res['bytes'] / 1e6:.2f}")
    out.print(table)


@cache_app.command("compact")
def cache_compact(store: Optional[Path] = _STORE_OPT) -> None:
    """Merge the chunks of each store into one file pair (atomic; readers and writers may run meanwhile)."""
    from .cache import compact

    for r in compact(store):
        out.print(f"{r['store']}: {r['chunks_before']} → {r['chunks_after']} chunk(s), {r['rows']} rows, "
                  f"{r['files_removed']} file(s) removed", highlight=False, markup=False)


@cache_app.command("clear")
def cache_clear(store: Optional[Path] = _STORE_OPT,
                yes: bool = typer.Option(False, "--yes", help="do not ask (needed when not at a terminal)")) -> None:
    """Delete the cached feature stores (or the one --store); asks first unless --yes."""
    from .cache import cache_root, cache_stores, clear

    what = str(store) if store is not None else f"{len(cache_stores())} store(s) under {cache_root()}"
    if not yes:
        if not sys.stdin.isatty():
            raise PainterIDError(f"cache clear would delete {what}; add --yes (not asking: not a terminal)")
        if not typer.confirm(f"Delete {what}?"):
            raise typer.Exit(1)
    removed = clear(store)
    err.print(f"removed {len(removed)} store(s)", highlight=False)


@app.command()
def version() -> None:
    """Print the painterid version."""
    out.print(__version__)


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so what was committed stays and temporary files go."""


def _on_sigterm(signum, frame):
    raise Terminated()


def _install_signal_handlers() -> None:
    import signal

    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
        if hasattr(signal, "SIGXFSZ"):  # a file-size limit: let the write fail with EFBIG instead of dying
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    except ValueError:  # not the main thread (main() called from a library user's thread)
        pass


def _io_error_line(exc: BaseException) -> str | None:
    """One line for a failed write or read (full disk, file-size limit, read-only or forbidden folder)."""
    import errno
    import os

    if not isinstance(exc, OSError):  # safetensors reports I/O failures as its own error type
        text = str(exc)
        if "os error" not in text and "I/O error" not in text:
            return None
        import re
        m = re.search(r"os error (\d+)", text)
        exc = OSError(int(m.group(1)) if m else errno.EIO, os.strerror(int(m.group(1))) if m else text)
    what = f"{exc.filename}: " if exc.filename else ""
    hint = {errno.ENOSPC: "the disk is full", errno.EFBIG: "a file-size limit was reached",
            errno.EROFS: "the folder is on a read-only file system", errno.EACCES: "no permission to write there",
            errno.EPERM: "no permission to write there"}.get(exc.errno)
    if hasattr(errno, "EDQUOT") and exc.errno == errno.EDQUOT:
        hint = "the disk quota is used up"
    tail = f"{hint}; " if hint else ""
    return f"{what}{exc.strerror or exc}; {tail}everything finished before is kept"


def main() -> None:
    """Entry point: user errors become one line and exit status 2, never a traceback."""
    warnings.formatwarning = lambda msg, cat, *a, **k: f"painterid: warning: {msg}\n"
    _install_signal_handlers()
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
        print("painterid: interrupted; finished work is kept (run the same command again to resume)",
              file=sys.stderr)
        sys.exit(130)
    except Terminated:
        print("painterid: stopped (SIGTERM); finished work is kept (run the same command again to resume)",
              file=sys.stderr)
        sys.exit(143)
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # usage errors from Typer's click
            exc.show()
            sys.exit(2)
        line = _io_error_line(exc)
        if line is None:
            raise
        print(f"painterid: error: {' '.join(line.split())}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
