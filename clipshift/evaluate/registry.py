"""Registries by name whose entries live in the modules of one package: each module registers its own
entries when imported, and every module of the package is imported on the first look-up. Adding an
entry is adding a file; names, choices and help text are read from the registry.

Entry modules are imported by `clipshift --help` (for choices and help lines) and by the report (for the
units of the metrics they declare), so they keep torch and numpy imports inside their functions."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

from clipshift.errors import UserError


class Named(Protocol):
    @property
    def name(self) -> str: ...


E = TypeVar("E", bound=Named)


class Registry(Generic[E]):
    """Entries of kind `what` (for messages) registered by the modules of `package`."""

    def __init__(self, what: str, package: str) -> None:
        self.what = what
        self.package = package
        self._entries: dict[str, E] = {}
        self._aliases: dict[str, str] = {}
        self._loaded = False

    def register(self, entry: E, aliases: tuple[str, ...] = ()) -> E:
        for name in (entry.name, *aliases):
            if name in self._entries or name in self._aliases:
                raise ValueError(f"{self.what} {name!r} is registered twice")
        self._entries[entry.name] = entry
        self._aliases.update({a: entry.name for a in aliases})
        return entry

    def load(self) -> None:
        """Import every module of the package once (sorted by name: a stable registration order)."""
        if self._loaded:
            return
        self._loaded = True
        pkg = importlib.import_module(self.package)
        for m in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            if not m.name.startswith("_"):
                importlib.import_module(f"{self.package}.{m.name}")

    def names(self) -> tuple[str, ...]:
        """Registered names, sorted (aliases not included): the order does not depend on which module
        happened to be imported first."""
        self.load()
        return tuple(sorted(self._entries))

    def get(self, name: str) -> E:
        """The entry called `name` (or an alias of it); an unknown name is a one-line UserError."""
        self.load()
        entry = self._entries.get(self._aliases.get(name, name))
        if entry is None:
            raise UserError(f"unknown {self.what} {name!r}; choose from {', '.join(self.names())}")
        return entry

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[E]:
        """Entries in name order."""
        return iter([self._entries[n] for n in self.names()])
