"""The one registry mechanism: commands, readers, writers, algorithms and policy loaders.

A `Registry` knows the modules that fill it and imports them only when an entry is first asked
for, so `ildata --help` never pays for torch, h5py or minari. Entries are either the modules
themselves (`module_entries=True`: commands and readers, one module per entry, named by the
module's last dotted part) or objects registered with `@REGISTRY.register("name")`.
A module listed but absent from this build is skipped; a module that fails to import because
one of ITS dependencies is missing is a real error and is raised.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def import_optional(module: str) -> ModuleType | None:
    """Import `module`, or None when that module itself is not part of this build."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise


class Registry(Generic[T]):
    """Name -> entry, in the order the modules list (and register) them."""

    def __init__(self, kind: str, modules: tuple[str, ...], *, module_entries: bool = False) -> None:
        self.kind = kind
        self.modules = modules
        self.module_entries = module_entries
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@REGISTRY.register("bc")` makes the decorated object the entry `bc`."""

        def decorate(entry: T) -> T:
            self._entries[name] = entry
            return entry

        return decorate

    def _load(self) -> dict[str, T]:
        if not self._loaded:
            self._loaded = True
            for module_name in self.modules:
                module = import_optional(module_name)
                if module is not None and self.module_entries:
                    self._entries.setdefault(module_name.rsplit(".", 1)[-1], module)  # type: ignore[arg-type]
        return self._entries

    def names(self) -> list[str]:
        return list(self._load())

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(list(self._load().items()))

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def get(self, name: str) -> T:
        """The entry `name`; a `DataError` listing the known names when there is none."""
        entries = self._load()
        if name not in entries:
            from ildata.episode import DataError

            raise DataError(f"unknown {self.kind} {name!r} (known: {', '.join(entries)})")
        return entries[name]

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._load())
