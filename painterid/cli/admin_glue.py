"""Rich output of `painterid benchmark` (the figures come from painterid.training.benchmark)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from rich.table import Table

from painterid.cli.common import err, out


def show_benchmark(result: dict, as_json: bool, out_json: Optional[Path], plot: Optional[Path]) -> None:
    """The table (or JSON), the optional JSON file and PNG, and the best choice with its commands."""
    from painterid.core.io import atomic_write_text
    from painterid.evaluation.benchmark_report import plot_png, table

    text = json.dumps(result, indent=1)
    if out_json is not None:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_json, text + "\n")
    if plot is not None:
        err.print(f"chart: {plot_png(result, plot)}", markup=False, highlight=False)
    if as_json:
        out.print_json(text)
        return
    head, rows = table(result)
    tab = Table(title=f"painterid benchmark: {result['data']} (unseen-artist ROC AUC, mean ± std over folds)")
    for col in head:
        tab.add_column(col, justify="left" if col in ("encoder", "pool") else "right", overflow="fold")
    for row in rows:
        tab.add_row(*row)
    out.print(tab)
    best = result.get("best")
    if best:
        out.print(f"best: {best['backbone']} with the {best['scoring']} scoring ({best['method']}), mean unseen AUC "
                  f"{best['mean_auc']:.3f}; make a model of it with:", markup=False, highlight=False)
        for cmd in best["commands"]:
            out.print(f"  {cmd}", markup=False, highlight=False)
