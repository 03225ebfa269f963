"""What every command shares: the Typer app, the consoles, the options built from the library's registries, progress and failure reporting."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from painterid.core.defaults import BUILTIN_MODELS, default_model_dir
from painterid.core.errors import PainterIDError
from painterid.core.registry import choice_enum
from painterid.data.pairs import PROTOCOLS, SPLITS
from painterid.embedding.images import VIEW_REGISTRY
from painterid.embedding.pools import POOL_REGISTRY
from painterid.embedding.runtime import RUNTIMES
from painterid.scoring.calibration import CALIBRATIONS
from painterid.scoring.methods import LOSS_REGISTRY, METHOD_REGISTRY
from painterid.tasks.index_kinds import INDEX_KINDS

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
                "it is installed, with the 'fast' extra of painterid, else torch)")


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
    from painterid.scoring.normalise import parse_spec

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


class _Lines:
    """Progress as plain lines on a non-terminal stderr (logs, CI, `2> file`): one line at the start and every
    `step` per cent, with the rate; what a Rich bar shows on a terminal."""

    def __init__(self, label: str, unit: str, step: int = 5):
        import time

        self.label, self.unit, self.step, self.clock = label, unit, step, time.monotonic
        self.t0 = self.clock()
        self.last: int | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def update(self, done: int, total: int) -> None:
        if not total:
            return
        pct = int(100 * done / total)
        mark = pct - pct % self.step
        if self.last is not None and mark <= self.last:
            return
        self.last = mark
        dt = self.clock() - self.t0
        rate = f", {done / dt:.1f} {self.unit}/s" if done and dt > 0 else ""
        print(f"painterid: {self.label} {done}/{total} {self.unit} ({pct}%{rate})", file=sys.stderr, flush=True)


def _progress(label: str, unit: str = "img", lines: bool = True):
    """Progress on stderr: a Rich bar with throughput on a terminal, else a plain line every few per cent;
    returns (context manager, callback(done, total))."""
    if not err.is_terminal:
        lines = _Lines(label, unit)
        return lines, lines.update
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    class Speed(TextColumn):
        def render(self, task):
            from rich.text import Text
            return Text(f"{task.speed:6.1f} {unit}/s" if task.speed else f"      -- {unit}/s")

    prog = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), Speed(""), TimeRemainingColumn(),
                    console=err, transient=False)
    task = prog.add_task(label, total=None)

    last = [-1]

    def update(done: int, total: int) -> None:
        prog.update(task, completed=done, total=total)
        if lines and not err.is_terminal and total:
            step = int(20 * done / total)  # 5 per cent steps
            if step > last[0]:
                last[0] = step
                err.print(f"{label}: {done}/{total} {unit} ({100 * done / total:.0f}%)", highlight=False)

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

        from painterid.core.io import atomic_write_text
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
    from painterid.embedding.embedder import EmbeddingConfig, default_backbone

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


def _refuse_shipped(model: Path, out_dir: Path | None) -> None:
    """A command that rewrites a model in place never rewrites one shipped inside the package."""
    if out_dir is None and model.resolve() in {default_model_dir(n).resolve() for n in BUILTIN_MODELS}:
        raise PainterIDError(f"{model} is a model shipped with painterid; write yours with --out DIR")
