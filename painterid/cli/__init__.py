"""The `painterid` command line: one module per command group over the library, Rich output, nothing else.

Holds: `common` (the Typer app, consoles, shared options), the command groups `training` (embed, train),
`evaluation` (evaluate, split, table1, submit), `screening` (compare, explain), `index` (index build,
identify), `models` (cohort set, calibrate), `admin` (backbones, cache, version), and `main` (the entry point).
May import every other painterid package; none of them imports this one (import-linter checks it).
Exit status: 0 success (compare: same artist), 1 compare: different artists, 2 error (one line on stderr).
"""

from painterid.cli import admin, evaluation, index, models, screening, training  # noqa: F401 (register commands)
from painterid.cli.common import DEFAULT_MODEL, Loss, Method, Pool, View, app, check_device  # noqa: F401
from painterid.cli.main import main

__all__ = ["app", "main"]
