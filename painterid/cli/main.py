"""The entry point: user errors become one line and exit status 2, SIGTERM and a full disk keep finished work."""

from __future__ import annotations

import sys
import warnings

import typer

from painterid.cli.common import app
from painterid.core.errors import PainterIDError


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
