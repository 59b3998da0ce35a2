"""User code that registers its own representations, models or protocols.

Three routes, all using the registries' ordinary decorators
(``@REPRESENTATIONS.register("mine")``):

- ``--plugin MODULE`` on ``run``, ``sweep`` and ``list`` (or ``plugins: [MODULE]`` in
  YAML): a dotted module name on ``sys.path`` or the path of a ``.py`` file;
- an installed package that declares an entry point in the group
  ``mer_benchmark.plugins`` (loaded on every command);
- a file inside this package plus one table line (see README, "Add a representation").

A plugin may not shadow a built-in name. Each run folder records every plugin it
loaded (module, distribution version, file name and sha256), so a row made with
user code says which code.
"""
from __future__ import annotations

import hashlib
import importlib
import sys
from importlib import metadata
from pathlib import Path
from typing import Sequence

ENTRY_POINT_GROUP = "mer_benchmark.plugins"


class PluginError(ValueError):
    """A plugin that cannot be imported or registers a name already taken."""


def load_plugins(modules: Sequence[str] = ()) -> list[dict]:
    """Import the installed entry-point plugins and ``modules``; one record per plugin."""
    records = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        records.append(_load(ep.value.partition(":")[0], f"entry point {ep.name}",
                             ep.dist.version if ep.dist else None))
    for name in modules:
        records.append(_load(_module_name(name), "--plugin", None))
    return records


def _module_name(spec: str) -> str:
    """A dotted name as given; a ``.py`` path puts its folder on ``sys.path`` (inherited by
    worker processes, which import the plugin again to unpickle its classes)."""
    if not spec.endswith(".py"):
        return spec
    path = Path(spec).expanduser().resolve()
    if not path.is_file():
        raise PluginError(f"plugin file {spec} does not exist")
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    return path.stem


def _load(module: str, source: str, version: str | None) -> dict:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # a plugin's own error, whatever it is, becomes one line naming it
        raise PluginError(f"plugin {module!r} ({source}): {type(exc).__name__}: {exc}") from None
    file = Path(getattr(mod, "__file__", "") or "")
    return {"module": module, "source": source, "version": version or getattr(mod, "__version__", None),
            "file": file.name or None,
            "sha256": hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else None}
