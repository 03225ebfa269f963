"""Housekeeping commands: `backbones` (the encoder registry and its weights), `benchmark` (which encoder serves a
collection best), `cache info | compact | clear`, `version`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from painterid.cli.common import (RUNTIME_HELP, VIEW_REGISTRY, Pool, Runtime, View, _device_option, _pool_option,
                                  _progress, _value, app, err, out)
from painterid.core.defaults import DEFAULT_VIEW
from painterid.core.errors import PainterIDError
from painterid.core.version import __version__


@app.command()
def backbones(
    pull: Optional[list[str]] = typer.Option(None, "--pull", metavar="NAME", help="fetch the pretrained weights of "
                                             "backbone NAME into the standard cache now (repeatable) and print the "
                                             "file and its SHA-256"),
) -> None:
    """List the registered backbones and whether their weights are on this machine (or --pull NAME: fetch them)."""
    from painterid.embedding.backbones import get_spec, list_backbones
    from painterid.embedding.factory import describe
    from painterid.embedding.weights import fetch_weights, file_sha256, weights_status

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
    out.print("  any timm model: --backbone timm:NAME[.TAG]; a timm repo on the hub: --backbone hf-hub:ORG/REPO; "
              "which serves your paintings best: painterid benchmark", markup=False, highlight=False)


@app.command()
def benchmark(
    data: Path = typer.Option(..., help="DATA folder of labelled paintings (sources.csv adds leave-one-source-out)"),
    backbone: list[str] = typer.Option(..., "--backbone", help="an encoder to compare (repeatable): a registered "
                                       "name, timm:NAME or hf-hub:ORG/REPO"),
    weights: Optional[list[str]] = typer.Option(None, "--weights", metavar="BACKBONE=FILE",
                                                help="weights file of one --backbone (repeatable; offline use)"),
    view: View = typer.Option(DEFAULT_VIEW, help=VIEW_REGISTRY.describe()),
    pool: Optional[Pool] = _pool_option(),
    seeds: int = typer.Option(3, min=1, help="random artist-disjoint folds (seeds 0..N-1)"),
    epochs: int = typer.Option(40, min=1, help="epochs of the trained head"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON instead of a table"),
    out_json: Optional[Path] = typer.Option(None, "--out", help="also write the JSON result to this file"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="write a PNG bar chart of the AUCs to this file"),
    device: Optional[str] = _device_option(),
    runtime: Optional[Runtime] = typer.Option(None, help=RUNTIME_HELP),
) -> None:
    """Which encoder serves your paintings best: unseen-artist AUC (default scoring and a trained head), seconds
    per image, dimension and memory of each --backbone, then the commands that make a model of the best."""
    from painterid.cli.admin_glue import show_benchmark
    from painterid.training.benchmark import BenchmarkOptions, parse_weights, run_benchmark

    opts = BenchmarkOptions(view=view.value, pool=_value(pool), seeds=tuple(range(seeds)), epochs=epochs,
                            runtime=_value(runtime), device=device)
    prog, update = _progress("embedding")
    with prog:
        result = run_benchmark(data, backbone, opts, parse_weights(weights, backbone), progress=update,
                               log=lambda m: err.print(m, markup=False, highlight=False))
    show_benchmark(result, as_json, out_json, plot)


cache_app = typer.Typer(help="The cache of feature stores ($PAINTERID_CACHE): info, compact, clear.",
                        no_args_is_help=True)


app.add_typer(cache_app, name="cache")


_STORE_OPT = typer.Option(None, "--store", help="one feature store directory instead of the whole cache")


@cache_app.command("info")
def cache_info(store: Optional[Path] = _STORE_OPT,
               as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table")) -> None:
    """Where the cache is, and the rows, chunks and bytes of each store in it."""
    from painterid.store.cache import info

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
    from painterid.store.cache import compact

    for r in compact(store):
        out.print(f"{r['store']}: {r['chunks_before']} → {r['chunks_after']} chunk(s), {r['rows']} rows, "
                  f"{r['files_removed']} file(s) removed", highlight=False, markup=False)


@cache_app.command("clear")
def cache_clear(store: Optional[Path] = _STORE_OPT,
                yes: bool = typer.Option(False, "--yes", help="do not ask (needed when not at a terminal)")) -> None:
    """Delete the cached feature stores and patch vectors (or the one --store); asks first unless --yes."""
    from painterid.store.cache import cache_root, cache_stores, clear, patch_caches

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
