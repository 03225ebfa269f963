"""Inter-process locks (filelock) and the one-line notices a library prints while it waits."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = ".lock"


def notice(message: str) -> None:
    """One line on stderr (a library that waits or retries must not do it silently)."""
    print(f"painterid: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def locked(root: str | Path, waiting: str, quiet_s: float = 0.0, name: str = LOCK_FILE) -> Iterator[None]:
    """Hold the exclusive lock ROOT/NAME (re-entrant within a process and thread).

    Waits as long as another process holds it; past `quiet_s` seconds of waiting, says `waiting` once."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(Path(root) / name), is_singleton=True)
    try:
        lock.acquire(timeout=quiet_s)
    except Timeout:
        notice(waiting)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
