"""`embed` (images to a feature store) and `train` (a model from labelled paintings, single or fused, or from the image files)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from painterid.cli.common import (CALIBRATION_HELP, COHORT_HELP, NORMALISER_HELP, RUNTIME_HELP, Calibration, Loss, Method, Pool, Runtime, View,
    _device_option, _embedding_config, _pool_option, _progress, _report_failures, _value, app, check_chain, err)
from painterid.core.defaults import DEFAULT_CALIBRATION, DEFAULT_CHAIN, DEFAULT_METHOD, DEFAULT_VIEW
from painterid.core.errors import PainterIDError
from painterid.embedding.images import VIEW_REGISTRY
from painterid.scoring.methods import LOSS_REGISTRY, METHOD_REGISTRY


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

    Under `torchrun --nproc_per_node N -m painterid embed ...` the ranks share the work (painterid.embedding.distributed).
    """
    from painterid.embedding.distributed import DistEnv, embed_data_distributed
    from painterid.embedding.embedder import Embedder
    from painterid.embedding.runtime import export_request, make_embedder, runtime_choice
    from painterid.scoring.fusion import single_backbone

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
                                  "docs/RESULTS.md, 'Which default, and why')"),
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
    runtime: Optional[Runtime] = typer.Option(None, help=RUNTIME_HELP),
) -> None:
    """Train a pair scorer on artist-disjoint splits; the threshold is chosen on validation artists."""
    from painterid.data.splits import read_split, split_indices
    from painterid.embedding.pipeline import labelled
    from painterid.training import TrainOptions, train_model

    precomputed = read_split(split_file) if split_file else None
    entry = METHOD_REGISTRY.get(method.value)
    opts = TrainOptions(method=method.value, epochs=epochs, lr=lr, batch_size=batch_size, loss=loss.value,
                        normaliser=normaliser, calibration=calibration.value, seed=seed)
    if backbone and "," in backbone:  # a fused model; each name checked against the registry first
        return _train_fused(data, out_dir, backbone, (view, pool, weights, input_size), store, opts,
                            (val_artists, test_artists, holdout), precomputed, tune, cohort, device, _value(runtime))
    if entry.from_images:  # the backbone itself, from image files (its own options, as before)
        opts = TrainOptions(method=method.value, epochs=epochs, lr=lr, batch_size=batch_size, normaliser=normaliser,
                            seed=seed)
        config = _embedding_config(backbone or entry.default_backbone, view, pool, weights, input_size)
        return _train_from_images(data, out_dir, opts, config, (val_artists, test_artists, holdout), device,
                                  precomputed)
    prog, update = _progress("embedding")
    with prog:
        lab = labelled(data, _embedding_config(backbone, view, pool, weights, input_size), store_dir=store,
                       progress=update, device=device, runtime=_value(runtime))
    _report_failures(lab.failures)
    precomputed = None if precomputed is None else split_indices(precomputed, lab.names, lab.artists)
    cohorts = _labelled_cohorts(cohort or [], lab.embedding, device, _value(runtime))
    model, history, split = train_model(lab, out_dir, opts, val=val_artists, test=test_artists, holdout=holdout,
                                        log=_log_epoch, split=precomputed, tune=tune, cohort=cohorts)
    _print_saved(out_dir, f"{method.value}, normaliser {model.normaliser}", model, split)


def _train_fused(data: Path, out_dir: Path, backbones: str, embedding: tuple, store, opts, fractions: tuple,
                 precomputed, tune: bool, cohort, device, runtime: str | None = None) -> None:
    """train --backbone a,b[,c]: one member per backbone on one split, fused on the validation artists."""
    from painterid.embedding.pipeline import member_labelled
    from painterid.scoring.fusion import parse_backbones
    from painterid.training import train_fused

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
                               store_dir=store, progress=update, device=device, names=members, runtime=runtime)
    _report_failures(labs[0].failures)
    cohorts = [_labelled_cohorts(cohort, lab.embedding, device, runtime) for lab in labs] if cohort else None

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
    from painterid.training import train_from_images

    val, test, holdout = fractions
    model, history, split = train_from_images(data, out_dir, opts, config, val=val, test=test, holdout=holdout,
                                              device=device, split_file=precomputed, log=_log_epoch)
    _print_saved(out_dir, f"{opts.method} ({model.embedding['backbone']}, best epoch {model.info['best_epoch']})",
                 model, split)


def _labelled_cohorts(cohort: list[Path], embedding, device, runtime: str | None = None) -> list:
    """[(Labelled, where), ...] of each --cohort DATA|STORE, embedded like the training data."""
    from painterid.embedding.pipeline import labelled

    cohorts = []
    for c in cohort:
        cprog, update = _progress(f"cohort {c.name}")
        with cprog:
            clab = labelled(c, embedding, progress=update, device=device, runtime=runtime)
        _report_failures(clab.failures)
        cohorts.append((clab, c))
    return cohorts


def _print_saved(out_dir: Path, what: str, model, split: dict) -> None:
    v = model.info["validation"]
    err.print(f"saved {out_dir}: {what}, threshold {model.threshold:.4f}, validation AUC {v['auc']:.4f} on "
              f"{v['pairs']} pairs of {len(split['artists']['val'])} artists")
