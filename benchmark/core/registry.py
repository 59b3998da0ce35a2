"""One small registry per kind (representations, models, protocols, datasets).

A name is written once. A built-in entry is one line of its package's table,
``REG.register_lazy(name, "module:Attr", **declared)``, and its definition carries
a bare ``@REG.register()``: the decorator finds its name in the table, so nothing
is imported until an entry is used and ``python -m benchmark list`` can show the
declared attributes (``kind``, ``accepts``) without importing torch. Code outside
the package (a plugin) names its entry in the decorator, ``@REG.register("mine")``.

Errors: a duplicate name (lazy or not; a plugin cannot shadow a built-in), an
object registered under two names, a declared attribute that differs from the
object's, a lazy target that is not the object registered under its name, and an
unknown name (with close matches).
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable


class RegistryError(KeyError):
    """Unknown, duplicate or inconsistent registry entry."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


@dataclass(frozen=True)
class LazyEntry:
    """A table line: where the object is defined and what it declares."""

    name: str
    target: str  # "module:attr"
    declared: dict = field(default_factory=dict)

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def attr(self) -> str:
        return self.target.partition(":")[2]


class Registry:
    """Name -> object mapping with decorator registration and lazy entries."""

    def __init__(self, kind: str, decorated: bool = True):
        self.kind = kind
        self.decorated = decorated  # False: lazy targets are plain functions, entered on lookup
        self._entries: dict[str, Any] = {}
        self._lazy: dict[str, LazyEntry] = {}
        self._origin: dict[str, str] = {}  # name -> module that registered it (plugins are recorded)

    # ---------------------------------------------------------------- registration
    def register_lazy(self, name: str, target: str, **declared: Any) -> None:
        """Table line of a built-in: ``target`` is ``module:attr``, imported on first lookup."""
        if name in self._entries or name in self._lazy:
            raise RegistryError(f"duplicate {self.kind} name {name!r}")
        if target.count(":") != 1:
            raise RegistryError(f"{self.kind} {name!r}: target must be 'module:attr', not {target!r}")
        self._lazy[name] = LazyEntry(name, target, dict(declared))

    def register(self, name: str | None = None) -> Callable[[Any], Any]:
        """Decorator. Without a name the object must be a line of the table (built-ins);
        with one it is a new entry (plugins, tests), never one already known."""
        def deco(obj: Any) -> Any:
            key = self._table_name(obj) if name is None else self._new_name(name)
            if getattr(obj, "registry_name", None) not in (None, key) and obj.__dict__.get("registry_name"):
                raise RegistryError(f"{obj.__qualname__} is already the {self.kind} {obj.registry_name!r}; "
                                    f"it cannot also be {key!r}")
            self._check_declared(key, obj)
            self._entries[key] = obj
            self._origin[key] = getattr(obj, "__module__", "?")
            obj.registry_name = key
            return obj

        return deco

    def _table_name(self, obj: Any) -> str:
        target = f"{obj.__module__}:{obj.__qualname__}"
        names = [e.name for e in self._lazy.values() if e.target == target]
        if not names:
            raise RegistryError(f"{target} is not in the {self.kind} table: add a register_lazy line "
                                f"or name it in the decorator")
        if len(names) > 1:
            raise RegistryError(f"{target} is listed as {self.kind} under several names: {', '.join(names)}")
        if names[0] in self._entries:
            raise RegistryError(f"duplicate {self.kind} name {names[0]!r}")
        return names[0]

    def _new_name(self, name: str) -> str:
        if name in self._lazy:
            raise RegistryError(f"{self.kind} {name!r} is a built-in ({self._lazy[name].target}); "
                                f"choose another name (shadowing is not allowed)")
        if name in self._entries:
            raise RegistryError(f"duplicate {self.kind} name {name!r} (already {self._origin[name]})")
        return name

    def _check_declared(self, name: str, obj: Any) -> None:
        entry = self._lazy.get(name)
        for attr, value in (entry.declared if entry else {}).items():
            actual = getattr(obj, attr, None)
            if _normal(actual) != _normal(value):
                raise RegistryError(f"{self.kind} {name!r}: the table declares {attr}={_normal(value)!r} "
                                    f"but {entry.target} has {_normal(actual)!r}")

    # ---------------------------------------------------------------- lookup
    def names(self) -> list[str]:
        return sorted(set(self._entries) | set(self._lazy))

    def declared(self, name: str) -> dict:
        """What an entry declares without importing it (lazy table), or the object's attributes."""
        if name in self._lazy:
            return dict(self._lazy[name].declared)
        self.get(name)
        return {}

    def lazy_entries(self) -> list[LazyEntry]:
        return [self._lazy[n] for n in sorted(self._lazy)]

    def origin(self, name: str) -> str:
        """Module that defines the entry (for the run folder's plugin record)."""
        return self._origin.get(name) or self._lazy[name].module

    def get(self, name: str) -> Any:
        if name not in self._entries and name in self._lazy:
            self._resolve(self._lazy[name])
        if name not in self._entries:
            close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise RegistryError(f"unknown {self.kind} {name!r}{hint} (known: {', '.join(self.names())})")
        return self._entries[name]

    def _resolve(self, entry: LazyEntry) -> None:
        obj = getattr(importlib.import_module(entry.module), entry.attr, None)
        if not self.decorated and obj is not None:
            self._entries[entry.name] = obj
            self._origin[entry.name] = entry.module
        registered = self._entries.get(entry.name)
        if registered is None:
            raise RegistryError(f"{self.kind} {entry.name!r}: {entry.target} is not decorated with "
                                f"@register() (or does not exist)")
        if obj is not registered:
            raise RegistryError(f"{self.kind} {entry.name!r}: {entry.target} is not the object registered "
                                f"under that name ({registered.__module__}:{registered.__qualname__})")

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._lazy


def _normal(value: Any) -> Any:
    """Compare sets and lists of names by content."""
    if isinstance(value, (set, frozenset, list, tuple)):
        return sorted(value)
    return value
