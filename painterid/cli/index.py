"""`index build` and `identify`: the FAISS index of artists and open-set search in it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from painterid.cli.common import (
    RUNTIME_HELP,
    IndexKind,
    Pool,
    Runtime,
    View,
    _embedding_config,
    _pool_option,
    _progress,
    _report_failures,
    _value,
    app,
    err,
    out,
)
from painterid.core.defaults import DEFAULT_VIEW
from painterid.embed.images import VIEW_REGISTRY
from painterid.tasks.index_kinds import INDEX_KINDS

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
    runtime: Optional[Runtime] = typer.Option(None, help=RUNTIME_HELP),
) -> None:
    """Index every painting and per-artist prototypes; the open-set threshold is set from the data."""
    from painterid.scoring.fusion import single_backbone
    from painterid.tasks.identify import build_index

    backbone = single_backbone(backbone, "index build")
    prog, update = _progress("embedding")
    with prog:
        index, failures = build_index(data, out_dir, _embedding_config(backbone, view, pool, None), kind=kind.value,
                                      n_subcentres=subcentres, store_dir=store, progress=update,
                                      runtime=_value(runtime))
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
    runtime: Optional[Runtime] = typer.Option(None, help=RUNTIME_HELP),
) -> None:
    """The k most likely artists of each painting, or "none of these" when no artist clears the threshold."""
    from painterid.tasks.identify import identify as run_identify

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
