"""`index build` and `identify`: the FAISS index of artists and open-set search in it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from painterid.cli.common import (RUNTIME_HELP, IndexKind, Pool, Runtime, View, _embedding_config, _pool_option, _progress, _report_failures,
    _value, app, err, out)
from painterid.core.defaults import DEFAULT_VIEW, model_path
from painterid.embedding.images import VIEW_REGISTRY
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
    model: Optional[Path] = typer.Option(None, help="model whose calibrated set evidence ranks the artists "
                                         "(default: the shipped default model, when the index uses its embedding)",
                                         callback=lambda v: None if v is None else model_path(v)),
    k: int = typer.Option(5, "-k", min=1, help="how many artists"),
    threshold: Optional[float] = typer.Option(None, help="open-set threshold of the index's prototype search "
                                              "(forces that search)"),
    as_json: bool = typer.Option(False, "--json", help="JSON lines"),
    runtime: Optional[Runtime] = typer.Option(None, help=RUNTIME_HELP),
) -> None:
    """The k most likely indexed artists of each painting, with their likelihood ratios and probabilities.

    "None of these" only where the index shows that absence can be judged (open-set AUC leaving artists out)."""
    from painterid.tasks.identify_sets import identify_any

    for r in identify_any(images, index, model, k=k, threshold=threshold, runtime=_value(runtime)):
        if as_json:
            print(json.dumps(r, ensure_ascii=False))
        else:
            print_identify(r)


def print_identify(r: dict) -> None:
    o = r.get("open_set", {})
    if "log10_lr" in (r["candidates"] or [{}])[0]:
        auc = o.get("open_set_auc")
        head = ("[yellow]none of these[/] (every indexed artist's evidence is against)" if r["none_of_these"] else
                "candidates" + ("" if r["absence_judgeable"] else
                                " — absence from the index cannot be judged (open-set AUC "
                                f"{'–' if auc is None else format(auc, '.2f')} leaving artists out)"))
        out.print(f"{r['image']}: {head}; leave-one-out on the index: top-1 {o.get('top1') or 0:.2f}, "
                  f"calibration error of p {o.get('calibration_error') or 0:.3f}", highlight=False)
    else:
        head = "[yellow]none of these[/] (best below threshold)" if r["none_of_these"] else "candidates"
        out.print(f"{r['image']}: {head}, threshold {r['threshold']:.3f} (index: rejection AUC "
                  f"{_f(o.get('rejection_auc'))}, calibration AUC {_f(o.get('calibration_auc'))})", highlight=False)
    if r.get("duplicate_of"):
        d = r["duplicate_of"]
        out.print(f"  exact duplicate of an indexed painting: {d['file']} ({d['artist']})", highlight=False,
                  markup=False)
    for c in r["candidates"]:
        near = ", ".join(f"{Path(n['file']).name} by {c['artist']} ({n['score']:.2f})" for n in c["nearest"])
        lead = f"LR 10^{c['log10_lr']:+.2f}" if "log10_lr" in c else f"{c['score']:.3f}"
        out.print(f"  {lead}  p={c['probability']:.2f}  {c['artist']}  — nearest: {near}", highlight=False,
                  markup=False)


def _f(v) -> str:
    return "–" if v is None else f"{v:.2f}"
