"""Dataset readers for the official layouts, one module per database.

Every reader is ``read(root: Path, **options) -> DatasetReport`` where ``root`` is
the database's own folder (``<data-root>/casme2``, ``<data-root>/megc2019``...).
Readers never raise on per-sample defects: they record a :class:`Defect` with
the fallback taken. Wrong roots and malformed sheets raise :class:`DatasetError`
naming the file (and row/column where known).
"""
from __future__ import annotations

from pathlib import Path

from benchmark.core.registry import Registry
from benchmark.core.samples import DatasetReport

DATASETS = Registry("dataset", decorated=False)  # entries are the readers' read() functions


class DatasetError(ValueError):
    """A root, file or sheet that cannot be read; the message names it."""


# Each database folder name under --data-root equals its registry name.
DATASETS.register_lazy("casme2", "benchmark.datasets.casme2:read")
DATASETS.register_lazy("samm", "benchmark.datasets.samm:read")
DATASETS.register_lazy("smic", "benchmark.datasets.smic:read")
DATASETS.register_lazy("casme3", "benchmark.datasets.casme3:read")
DATASETS.register_lazy("megc2019", "benchmark.datasets.megc2019:read")


def read_dataset(name: str, root: str | Path, **options) -> DatasetReport:
    """Read database ``name`` from its folder ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{name}: data folder {root} does not exist")
    reader = DATASETS.get(name)
    check_options(name, reader, options)
    return reader(root, **options)


def check_options(name: str, reader, options: dict) -> None:
    """A reader option the reader does not take is one line naming it and the known ones."""
    import inspect

    params = inspect.signature(reader).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    known = [k for k, p in params.items() if k != "root" and p.kind is not p.VAR_POSITIONAL]
    unknown = [k for k in options if k not in known]
    if unknown:
        raise DatasetError(f"{name}: unknown reader option{'s' if len(unknown) > 1 else ''} "
                           f"{', '.join(map(repr, unknown))} (--data-param; {name} takes: {', '.join(known)})")
