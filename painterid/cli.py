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
from .defaults import (BUILTIN_MODELS, DEFAULT_CALIBRATION, DEFAULT_CHAIN, DEFAULT_METHOD, DEFAULT_VIEW,
                       default_model_dir, model_path)
from .errors import PainterIDError
from .identify import INDEX_KINDS
from .images import VIEW_REGISTRY
from .pairs import PROTOCOLS, SPLITS
from .pools import POOL_REGISTRY
from .registry import choice_enum
from .runtime import RUNTIMES
from .scoring.calibration import CALIBRATIONS
from .scoring.methods import LOSS_REGISTRY, METHOD_REGISTRY

app = typer.Typer(
    name="painterid", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Were these two paintings made by the same artist? Exit status: 0 ok / same artist, "
         "1 different artists (compare), 2 error.",
)
# Not a terminal (pipes, CI, scripts): no line wrapping, tables get room.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 180)
err = Console(stderr=True, soft_wrap=True)

DEFAULT_MODEL = default_model_dir()  # package data: travels inside the wheel
MODEL_HELP = "model directory, or a shipped model: default, archive"
RUNTIME_HELP = ("auto | onnx | torch: what runs the backbone (auto, or $PAINTERID_RUNTIME: ONNX Runtime on CPU when "
                "installed, painterid[fast], else torch)")


# Every option with a fixed set of values is an Enum generated from its registry: click checks the value and
# a bad one is one line and exit 2 (main()), never a traceback from the library.
View = choice_enum("View", VIEW_REGISTRY)
Pool = choice_enum("Pool", POOL_REGISTRY)
Method = choice_enum("Method", METHOD_REGISTRY)
Loss = choice_enum("Loss", LOSS_REGISTRY)
Split = choice_enum("Split", [*SPLITS.names(), "mix"])  # mix: the seed report's name for mixed
Protocol = choice_enum("Protocol", PROTOCOLS)
IndexKind = choice_enum("IndexKind", INDEX_KINDS)
OutFormat = choice_enum("OutFormat", ("table", "json", "csv"))
Runtime = choice_enum("Runtime", RUNTIMES)
Calibration = choice_enum("Calibration", CALIBRATIONS)


NORMALISER_HELP = ("normaliser chain (steps: selfsup[:DIM] (first; learned from the cohort's patches, no labels), "
                   "power, center, l2, whiten[:DIM], wccn, lda[:DIM], csls[:K]); several joined by '|' or 'auto': "
                   "the best on validation artists; 'none'")
COHORT_HELP = ("DATA|STORE of reference paintings the normalisers are fitted on and the model ships (repeatable; "
               "default: the training paintings)")


CALIBRATION_HELP = ("validation: p(same artist) and the threshold fitted on the validation artists' pairs; crossfit: "
                    "then p recalibrated on out-of-fold artists (4 artist folds, each scored by a model trained "
                    "without them; 3-6x the training time)")


def check_chain(value: str) -> str:
    """--normaliser: a chain spec (scoring.normalise), several joined by '|', or auto; checked before any work."""
    from .scoring.normalise import parse_spec

    if value.strip().lower() != "auto":
        for alternative in value.split("|"):
            try:
                parse_spec(alternative)
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from None
    return value


def _value(choice: Optional[Enum]) -> Optional[str]:
    """The string of an optional choice (None stays None: the library decides)."""
    return None if choice is None else choice.value


DEVICE_KINDS = ("cpu", "cuda", "mps", "xpu")
DEVICE_HELP = "cpu | cuda | cuda:N | auto (default: cuda when present)"


def check_device(value: Optional[str]) -> Optional[str]:
    """--device: cpu | cuda | auto, or a torch device string (cuda:1, mps); checked before any work starts."""
    if value is None or value == "auto":
        return None
    kind, _, index = value.partition(":")
    if kind not in DEVICE_KINDS or (index and not index.isdigit()):
        raise typer.BadParameter(f"{value!r} is not a device; use cpu, cuda, cuda:N or auto")
    return value


def _device_option():
    return typer.Option(None, callback=check_device, metavar="DEVICE", help=DEVICE_HELP)


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


def _pool_option():
    return typer.Option(None, help=POOL_REGISTRY.describe() + "; default: the backbone's own (stage for "
                        "EfficientNet-Lite and MobileNetV2, gap for the others: painterid backbones)", show_default=False)


def _embedding_config(backbone: Optional[str], view: Enum, pool: Optional[Enum], weights: Optional[Path],
                      input_size: Optional[int] = None):
    """The EmbeddingConfig of the embedding options; no --pool: the backbone's default pooling."""
    from .embedding import EmbeddingConfig, default_backbone

    return EmbeddingConfig(backbone=backbone or default_backbone(), view=view.value,
                           pool=pool.value if pool is not None else None,
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
    for col in ("name", "timm model", "gap dim", "default pool", "input", "licence", "weights on this machine"):
        table.add_column(col, overflow="fold")
    hints = []
    for spec in list_backbones():
        d = describe(spec.name)
        status = weights_status(spec.name)
        if status.startswith("missing"):
            hints.append(f"{spec.name}: {status.split(':', 1)[1].strip()}")
        table.add_row(spec.name, spec.timm_name, str(d["dim"]), spec.default_pool, "×".join(map(str, d["input_size"][1:])),
                      spec.licence.split(" (")[0], "yes" if status.startswith("available") else "no")
    out.print(table)
    for h in hints:
        out.print(f"  {h}", markup=False, highlight=False)


@app.command()
def embed(
    data: Path = typer.Argument(..., help="Kaggle layout (train_info.csv) or one folder per artist"),
    out_dir: Path = typer.Option(..., "--out", help="feature store directory (created or resumed)"),
    backbone: Optional[str] = typer.Option(None, help="backbone name (painterid backbones); default: the shipped one"),
    view: View = typer.Option(DEFAULT_VIEW, help=VIEW_REGISTRY.describe()),
    pool: Optional[Pool] = _pool_option(),
    weights: Optional[Path] = typer.Option(None, help="weights file (.safetensors or .pth, loaded safely)"),
    batch_size: int = typer.Option(16, min=1),
    workers: Optional[int] = typer.Option(None, min=0, help="DataLoader worker processes"),
    device: Optional[str] = _device_option(),
    commit_every: int = typer.Option(256, min=1, help="images per committed shard (what a killed run keeps)"),
    runtime: Optional[Runtime] = typer.Option(None, help=RUNTIME_HELP),
) -> None:
    """Embed every painting of DATA into a feature store; a second run skips what is done.

    Under `torchrun --nproc_per_node N -m painterid embed ...` the ranks share the work (painterid.distributed).
    """
    from .distributed import DistEnv, embed_data_distributed
    from .embedding import Embedder
    from .runtime import export_request, make_embedder, runtime_choice

    from .scoring.fusion import single_backbone

    runtime = _value(runtime)
    backbone = single_backbone(backbone, "embed")
    env = DistEnv.from_env()
    if env.distributed or runtime_choice(runtime) == "torch":
        embedder = Embedder(_embedding_config(backbone, view, pool, weights), device=env.device(device),
                            batch_size=batch_size, num_workers=workers)
    else:
        config = _embedding_config(backbone, view, pool, weights)
        request = export_request(config.backbone, config.view, config.pool, 8, config.weights, None)
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
              f"({embedder.fingerprint['backbone']}, {view.value}, {embedder.fingerprint['pool']}, dim {embedder.dim}, {embedder.device}, "
              f"{embedder.runtime})")


def _log_epoch(rec: dict) -> None:
    err.print(f"epoch {rec['epoch']:3d}  train loss {rec['train_loss']:.4f}  val AUC {rec['val_auc']:.4f}",
              highlight=False)


@app.command()
def train(
    data: Path = typer.Option(..., help="DATA folder or a feature STORE"),
    out_dir: Path = typer.Option(..., "--out", help="model directory to write"),
    method: Method = typer.Option(DEFAULT_METHOD, help=METHOD_REGISTRY.describe() + " (default: the best measured, "
                                  "docs/RESULTS.md section 7)"),
    backbone: Optional[str] = typer.Option(None, help="backbone (ignored when --data is a store; cnn: the "
                                           "architecture trained from scratch, default cnn_baseline); a comma "
                                           "list a,b[,c]: a fused model, one member per backbone"),
    view: View = typer.Option(DEFAULT_VIEW, help=VIEW_REGISTRY.describe()),
    pool: Optional[Pool] = _pool_option(),
    weights: Optional[Path] = typer.Option(None),
    input_size: Optional[int] = typer.Option(None, min=32, help="square input side in pixels (default: the "
                                             "backbone's own)"),
    store: Optional[Path] = typer.Option(None, help="where to keep the embeddings of DATA (default: cache)"),
    epochs: int = typer.Option(40, min=1),
    lr: float = typer.Option(1e-3),
    batch_size: int = typer.Option(128, min=2),
    loss: Loss = typer.Option("supcon", help="metric: " + LOSS_REGISTRY.help()),
    normaliser: str = typer.Option(DEFAULT_CHAIN, callback=check_chain, help=NORMALISER_HELP),
    cohort: Optional[list[Path]] = typer.Option(None, help=COHORT_HELP),
    calibration: Calibration = typer.Option(DEFAULT_CALIBRATION, help=CALIBRATION_HELP),
    val_artists: float = typer.Option(0.2, help="fraction of artists held out for validation"),
    test_artists: float = typer.Option(0.2, help="fraction of artists held out for the unseen test"),
    holdout: float = typer.Option(0.25, help="fraction of paintings of training artists kept for the seen test"),
    split_file: Optional[Path] = typer.Option(None, "--split", help="split file from `painterid split` (then "
                                              "--val-artists, --test-artists and --holdout are not used)"),
    seed: int = typer.Option(0),
    tune: bool = typer.Option(False, "--tune", help="try learning rates × hidden widths; keep the best on "
                              "validation artists (heads over embeddings)"),
    device: Optional[str] = _device_option(),
) -> None:
    """Train a pair scorer on artist-disjoint splits; the threshold is chosen on validation artists."""
    from .pipeline import labelled
    from .splits import read_split, split_indices
    from .training import TrainOptions, train_model

    precomputed = read_split(split_file) if split_file else None
    entry = METHOD_REGISTRY.get(method.value)
    opts = TrainOptions(method=method.value, epochs=epochs, lr=lr, batch_size=batch_size, loss=loss.value,
                        normaliser=normaliser, calibration=calibration.value, seed=seed)
    if backbone and "," in backbone:  # a fused model; each name checked against the registry first
        return _train_fused(data, out_dir, backbone, (view, pool, weights, input_size), store, opts,
                            (val_artists, test_artists, holdout), precomputed, tune, cohort, device)
    if entry.from_images:  # the backbone itself, from image files (its own options, as before)
        opts = TrainOptions(method=method.value, epochs=epochs, lr=lr, batch_size=batch_size, normaliser=normaliser,
                            seed=seed)
        config = _embedding_config(backbone or entry.default_backbone, view, pool, weights, input_size)
        return _train_from_images(data, out_dir, opts, config, (val_artists, test_artists, holdout), device,
                                  precomputed)
    prog, update = _progress("embedding")
    with prog:
        lab = labelled(data, _embedding_config(backbone, view, pool, weights, input_size), store_dir=store,
                       progress=update, device=device)
    _report_failures(lab.failures)
    if precomputed is not None:
        precomputed = split_indices(precomputed, lab.names, lab.artists)
    cohorts = _labelled_cohorts(cohort or [], lab.embedding, device)
    model, history, split = train_model(lab, out_dir, opts, val=val_artists, test=test_artists, holdout=holdout,
                                        log=_log_epoch, split=precomputed, tune=tune, cohort=cohorts)
    _print_saved(out_dir, f"{method.value}, normaliser {model.normaliser}", model, split)


def _train_fused(data: Path, out_dir: Path, backbones: str, embedding: tuple, store, opts, fractions: tuple,
                 precomputed, tune: bool, cohort, device) -> None:
    """train --backbone a,b[,c]: one member per backbone on one split, fused on the validation artists."""
    from .pipeline import member_labelled
    from .scoring.fusion import parse_backbones
    from .training import train_fused

    members = parse_backbones(backbones)  # each name checked against the registry, before any work
    view, pool, weights, input_size = embedding
    if METHOD_REGISTRY.get(opts.method).from_images:
        raise PainterIDError(f"--method {opts.method} trains one backbone from images; a fused model (--backbone "
                             "a,b) is made of methods over embeddings")
    if weights is not None:
        raise PainterIDError("--weights is one backbone's file; give it with a single --backbone, not a list")
    prog, update = _progress("embedding")
    with prog:
        labs = member_labelled(data, [_embedding_config(b, view, pool, None, input_size) for b in members],
                               store_dir=store, progress=update, device=device, names=members)
    _report_failures(labs[0].failures)
    cohorts = [_labelled_cohorts(cohort, lab.embedding, device) for lab in labs] if cohort else None

    def member_done(name, model, history) -> None:
        err.print(f"member {name}: {opts.method}, normaliser {model.normaliser}, validation AUC "
                  f"{model.info['validation']['auc']:.4f}", highlight=False)

    val, test, holdout = fractions
    model, _, split = train_fused(labs, out_dir, opts, names=members, val=val, test=test, holdout=holdout,
                                  log=_log_epoch, split_file=precomputed, tune=tune, cohorts=cohorts, device=device,
                                  on_member=member_done)
    v, cost = model.info["validation"], model.info["embedding_seconds_per_image"]
    for name, w in zip(model.names, model.weights):
        c = cost.get(name)
        err.print(f"  {name}: weight {w:.2f}, validation AUC {v['auc_by_member'][name]:.4f}, embedding "
                  f"{'not measured' if c is None else f'{c:.3f} s/image'}", highlight=False)
    total = sum(c for c in cost.values() if c is not None)
    err.print(f"saved {out_dir}: fused {' + '.join(model.names)}, threshold {model.threshold:.4f}, validation AUC "
              f"{v['auc']:.4f} on {v['pairs']} pairs of {len(split['artists']['val'])} artists (best member "
              f"{max(v['auc_by_member'].values()):.4f}); embedding {total:.3f} s/image in all", highlight=False)


def _train_from_images(data: Path, out_dir: Path, opts, config, fractions: tuple, device, precomputed) -> None:
    """train --method finetune | cnn: the backbone itself, trained from DATA's image files."""
    from .training import train_from_images

    val, test, holdout = fractions
    model, history, split = train_from_images(data, out_dir, opts, config, val=val, test=test, holdout=holdout,
                                              device=device, split_file=precomputed, log=_log_epoch)
    _print_saved(out_dir, f"{opts.method} ({model.embedding['backbone']}, best epoch {model.info['best_epoch']})",
                 model, split)


def _labelled_cohorts(cohort: list[Path], embedding, device) -> list:
    """[(Labelled, where), ...] of each --cohort DATA|STORE, embedded like the training data."""
    from .pipeline import labelled

    cohorts = []
    for c in cohort:
        cprog, update = _progress(f"cohort {c.name}")
        with cprog:
            clab = labelled(c, embedding, progress=update, device=device)
        _report_failures(clab.failures)
        cohorts.append((clab, c))
    return cohorts


def _print_saved(out_dir: Path, what: str, model, split: dict) -> None:
    v = model.info["validation"]
    err.print(f"saved {out_dir}: {what}, threshold {model.threshold:.4f}, validation AUC {v['auc']:.4f} on "
              f"{v['pairs']} pairs of {len(split['artists']['val'])} artists")


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
    device: Optional[str] = _device_option(),
) -> None:
    """Table 1 of the seed report for one model: accuracy, precision, recall, F1, ROC AUC, EER per split."""
    from .pairs import read_pairs_csv
    from .evaluation.metrics import METRICS
    from .evaluation.run import evaluate_model
    from .pipeline import model_labelled
    from .scoring import PairModel

    pm = PairModel.load(model)  # a PairModel, or a FusedModel (each painting embedded once per member)
    prog, update = _progress("embedding")
    with prog:
        lab = model_labelled(data, pm, store_dir=store, progress=update, device=device)
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
        table.add_column("split", justify="right")
        for m in METRICS:
            table.add_column(m.label, justify="right")
        for g, r in groups.items():
            table.add_row(g, *[m.format(r) for m in METRICS])
        out.print(table)


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


index_app = typer.Typer(help="FAISS index of painting and artist embeddings (for identify).", no_args_is_help=True)
app.add_typer(index_app, name="index")


@index_app.command("build")
def index_build(
    data: Path = typer.Option(..., help="DATA folder or a feature STORE"),
    out_dir: Path = typer.Option(..., "--out", help="index directory to write"),
    backbone: Optional[str] = typer.Option(None, help="backbone (ignored when --data is a store)"),
    view: View = typer.Option(DEFAULT_VIEW, help=VIEW_REGISTRY.describe()),
    pool: Optional[Pool] = _pool_option(),
    kind: IndexKind = typer.Option("auto", help=INDEX_KINDS.describe()),
    subcentres: int = typer.Option(1, min=1, help="prototypes per artist (for styles that changed over time)"),
    store: Optional[Path] = typer.Option(None, help="where to keep the embeddings of DATA (default: cache)"),
) -> None:
    """Index every painting and per-artist prototypes; the open-set threshold is set from the data."""
    from .identify import build_index
    from .scoring.fusion import single_backbone

    backbone = single_backbone(backbone, "index build")
    prog, update = _progress("embedding")
    with prog:
        index, failures = build_index(data, out_dir, _embedding_config(backbone, view, pool, None), kind=kind.value,
                                      n_subcentres=subcentres, store_dir=store, progress=update)
    _report_failures(failures)
    err.print(f"indexed {index.n} paintings of {len(index.prototype_artists)} artists ({index.kind}) in {out_dir}; "
              f"open-set threshold {index.config['open_set']['threshold']:.3f}")


def _refuse_shipped(model: Path, out_dir: Path | None) -> None:
    """A command that rewrites a model in place never rewrites one shipped inside the package."""
    if out_dir is None and model.resolve() in {default_model_dir(n).resolve() for n in BUILTIN_MODELS}:
        raise PainterIDError(f"{model} is a model shipped with painterid; write yours with --out DIR")


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
) -> None:
    """Replace a model's cohort (e.g. by your own archive); its normalisers are refitted on it.

    A shipped model (default, archive) is never rewritten: give --out."""
    from .cohort import set_cohort

    _refuse_shipped(model, out_dir)
    prog, update = _progress("embedding")
    with prog:
        pm, failures = set_cohort(model, data, store_dir=store, progress=update, device=device, out=out_dir)
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
    device: Optional[str] = _device_option(),
    runtime: Optional[Runtime] = typer.Option(None, help=RUNTIME_HELP),
) -> None:
    """Refit a model's p(same artist) and threshold on your own labelled pairs (its scores are unchanged).

    Worth it when the model's mean p on your pairs is far from their base rate (the summary line shows both).

    With a few dozen pairs, a model already calibrated on similar paintings is better left as it is (RESULTS 7)."""
    from .recalibrate import calibrate as run_calibrate

    _refuse_shipped(model, out_dir)
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


@app.command()
def identify(
    images: list[Path] = typer.Argument(..., help="paintings to attribute"),
    index: Path = typer.Option(..., help="index directory (painterid index build)"),
    k: int = typer.Option(5, "-k", min=1, help="how many artists"),
    threshold: Optional[float] = typer.Option(None, help="open-set threshold (default: the index's)"),
    as_json: bool = typer.Option(False, "--json", help="JSON lines"),
    runtime: Optional[Runtime] = typer.Option(None, help=RUNTIME_HELP),
) -> None:
    """The k most likely artists of each painting, or "none of these" when no artist clears the threshold."""
    from .identify import identify as run_identify

    for r in run_identify(images, index, k=k, threshold=threshold, runtime=_value(runtime)):
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
    models: list[Path] = typer.Option(..., "--models", help="model directories (or default, archive): --models M1 M2 ..."),
    store: Optional[Path] = typer.Option(None, help="where to keep the embeddings of DATA (default: cache)"),
    seed: int = typer.Option(0),
    bootstrap: int = typer.Option(0, min=0, help="bootstrap resamples for AUC intervals (JSON)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
    device: Optional[str] = _device_option(),
) -> None:
    """The seed report's Table 1 for several models, with the report's own figures beside ours."""
    from .evaluation.metrics import format_metric
    from .evaluation.table1 import TABLE1_METRICS
    from .evaluation.table1 import table1 as run_table1

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
    model: Path = typer.Option(DEFAULT_MODEL, help=MODEL_HELP, callback=model_path),
    device: Optional[str] = _device_option(),
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
    for p in res["patches"]:
        table.add_row(p["dir"], "(patches, selfsup)", str(p["paintings"]), "–", f"{p['bytes'] / 1e6:.2f}")
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
    """Delete the cached feature stores and patch vectors (or the one --store); asks first unless --yes."""
    from .cache import cache_root, cache_stores, clear, patch_caches

    what = str(store) if store is not None else (f"{len(cache_stores())} store(s) and {len(patch_caches())} patch "
                                                 f"cache(s) under {cache_root()}")
    if not yes:
        if not sys.stdin.isatty():
            raise PainterIDError(f"cache clear would delete {what}; add --yes (not asking: not a terminal)")
        if not typer.confirm(f"Delete {what}?"):
            raise typer.Exit(1)
    removed = clear(store)
    patches = sum(1 for r in removed if Path(r).parent.name == "patches")
    err.print(f"removed {len(removed) - patches} store(s)" + (f" and {patches} patch cache(s)" if patches else ""),
              highlight=False)


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
    except typer.TyperException as exc:  # usage errors (bad option value, missing argument): one line
        if type(exc).__name__ == "NoArgsIsHelpError" or not hasattr(exc, "format_message"):
            exc.show()  # a bare command: its help
            sys.exit(2)
        msg = " ".join(exc.format_message().split()).replace("Value error, ", "")
        print(f"painterid: error: {msg}", file=sys.stderr)
        sys.exit(2)
    except Terminated:
        print("painterid: stopped (SIGTERM); finished work is kept (run the same command again to resume)",
              file=sys.stderr)
        sys.exit(143)
    except Exception as exc:
        line = _io_error_line(exc)
        if line is None:
            raise
        print(f"painterid: error: {' '.join(line.split())}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
