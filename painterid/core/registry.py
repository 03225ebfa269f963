"""One registry per kind of thing (views, poolings, scoring methods, metrics, losses, ...), timm style.

A :class:`Registry` maps a name to one entry (any object with a ``name`` and a one-line ``help``).  Everything
that lists the things of a kind (CLI choices and help, reports, docs) iterates the registry, so adding a thing
is one entry in one file.  Light to import (no torch): the CLI builds its choices from these at start-up.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum
from typing import Generic, TypeVar

from painterid.core.errors import PainterIDError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind, in registration order."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, entry: T) -> T:
        """Add `entry` under `entry.name` (a second entry with the same name is a bug, not an override)."""
        name = getattr(entry, "name")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        """The entry called `name`; an unknown name is a user error naming the valid ones."""
        try:
            return self._entries[name]
        except KeyError:
            raise PainterIDError(f"unknown {self.kind} {name!r}; choose from {', '.join(self._entries)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def names(self, where=None) -> tuple[str, ...]:
        """The names, optionally only of the entries where `where(entry)` holds."""
        return tuple(n for n, e in self._entries.items() if where is None or where(e))

    def help(self, where=None) -> str:
        """`a | b | c` over the names, as CLI help text."""
        return " | ".join(self.names(where))

    def describe(self, where=None) -> str:
        """`a: what a is; b: ...` over the entries, for help text that explains each choice."""
        return "; ".join(f"{e.name}: {e.help}" for e in self if where is None or where(e))


def choice_enum(name: str, values) -> type[Enum]:
    """A str Enum of `values` (names or registry entries) for a Typer option: the CLI checks the choice."""
    values = [getattr(v, "name", v) for v in values]
    return Enum(name, {v: v for v in values}, type=str)
