"""One small registry per kind (representations, models, protocols, datasets).

Entries register with a decorator; a duplicate name is an error and an unknown
name suggests close matches. Heavy entries can register lazily by import path
so that ``python -m benchmark list`` stays fast.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Any, Callable


class RegistryError(KeyError):
    """Unknown or duplicate registry name."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


class Registry:
    """Name -> object mapping with decorator registration and lazy entries."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._lazy: dict[str, str] = {}

    def register(self, name: str | None = None) -> Callable[[Any], Any]:
        def deco(obj: Any) -> Any:
            key = name or obj.__name__.lower()
            if key in self._entries:
                raise RegistryError(f"duplicate {self.kind} name {key!r}")
            self._entries[key] = obj
            obj.registry_name = key
            return obj

        return deco

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``module:attr`` to be imported on first lookup."""
        if name in self._entries or name in self._lazy:
            raise RegistryError(f"duplicate {self.kind} name {name!r}")
        self._lazy[name] = target

    def names(self) -> list[str]:
        return sorted(set(self._entries) | set(self._lazy))

    def get(self, name: str) -> Any:
        if name not in self._entries and name in self._lazy:
            module, _, attr = self._lazy.pop(name).partition(":")
            obj = getattr(importlib.import_module(module), attr)
            self._entries.setdefault(name, obj)
            obj.registry_name = name
        if name not in self._entries:
            close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise RegistryError(
                f"unknown {self.kind} {name!r}{hint} (known: {', '.join(self.names())})"
            )
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._lazy
