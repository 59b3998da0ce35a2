"""Arenas: the benchmark's canonical representation x model matrices.

One YAML spec per arena in ``benchmark/matrix/`` (run it with ``benchmark sweep``)::

    arena: cde-casme2                      # the name tables and files use
    title: CDE, CASME II part              # the table's heading
    protocol: cde                          # one protocol ...
    dataset: casme2                        # ... and dataset subset per arena
    seeds: [0]                             # default seeds of a cell
    rep_params: {on_missing: blank}        # arena-wide: given to every representation that takes it,
                                           # so every cell scores the same samples
    data_root: ../shared/data              # ... and any other run setting every cell shares
    rows:                                  # representation variants, in table order
      - tvl1 · none: {rep: tvl1}
      - tvl1 · face: {rep: tvl1, rep_params: {preprocess: face}}
    columns:                               # classifiers, in table order; a column fixes one schedule
      - linear probe: {model: logreg}
      - STSTNet: {model: ststnet, seeds: [0, 1, 2]}     # pre-registered seeds
    chance: {rep: tvl1, model: dummy, seeds: [0, 1, 2, 3, 4]}   # the chance row
    reference: {row: tvl1 · face, column: STSTNet}      # every other cell's paired delta is against it
    published:                             # figures papers report under this protocol (shown beside ours)
      - {method: "STSTNet (Liong et al. 2019)", uf1: 0.8382, uar: 0.8686, source: "papers/..."}
    cells:                                 # explicit cells (optional): settings for one pair
      tvl1 · face | linear probe: {seeds: [0, 1, 2]}

The cross product of rows and columns is the matrix. A pair whose representation's input kind
the model does not accept is an ``n/a`` cell (recorded with the reason); a pair named under
``cells`` or as the reference that cannot work is an error before any work, as is an unknown
name or key. Seeds are fixed here, before any result: a cell never gains seeds because of its
score.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.config import ConfigError, RunConfig, check_params, load_yaml, resolve

ARENA_DIR = Path(__file__).parent / "matrix"
SEP = " | "  # row | column, in ``cells:`` keys
ROW_KEYS = {"rep", "rep_params", "data_params", "model_params"}  # a row may set how its samples are classified (e.g. a vote over frames)
COLUMN_KEYS = {"model", "model_params", "epochs", "selection", "seeds", "label"}
CELL_KEYS = (ROW_KEYS | COLUMN_KEYS) - {"rep", "model"}
SPEC_KEYS = {"folds_per_unit", "arena", "title", "protocol", "dataset", "rows", "columns", "chance", "reference", "cells",
             "notes", "published"}
RUN_KEYS = {"data", "data_root", "seeds", "selection", "rep_params", "model_params", "n_boot", "split_seed",
            "out", "workers", "epochs", "data_params", "device"}
CHANCE = "chance (stratified dummy)"


@dataclass(frozen=True)
class Cell:
    """One (row, column) of an arena: its run config, or ``None`` with the reason (``n/a``)."""

    row: str
    column: str
    cfg: RunConfig | None
    reason: str = ""

    @property
    def run_id(self) -> str | None:
        return self.cfg.run_id() if self.cfg else None

    @property
    def key(self) -> str:
        return f"{self.row}{SEP}{self.column}"


@dataclass(frozen=True)
class Arena:
    """A validated arena spec: its cells (n/a ones included), chance cell and reference."""

    name: str
    title: str
    protocol: str
    dataset: str | None
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    cells: tuple[Cell, ...]
    reference: tuple[str, str]
    chance: Cell | None = None
    notes: tuple[str, ...] = field(default=())
    path: str = ""
    published: tuple[dict, ...] = ()  # published figures for this protocol: {method, uf1, uar?, source}

    def cell(self, row: str, column: str) -> Cell:
        for c in self.cells:
            if (c.row, c.column) == (row, column):
                return c
        raise KeyError(f"arena {self.name}: no cell {row!r} x {column!r}")

    @property
    def reference_cell(self) -> Cell:
        return self.cell(*self.reference)

    def runnable(self) -> list[Cell]:
        """Cells with a run config, the chance cell last."""
        return [c for c in self.cells if c.cfg] + ([self.chance] if self.chance else [])


def _entries(spec: dict, key: str, allowed: set, where: str) -> list[tuple[str, dict]]:
    value = spec.get(key)
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: key {key!r} must be a non-empty list of {{label: {{settings}}}}")
    out, seen = [], set()
    for item in value:
        if not (isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item)), str)):
            raise ConfigError(f"{where}: {key}: each entry is {{label: {{settings}}}}, not {item!r}")
        label, settings = next(iter(item.items()))
        settings = settings or {}
        if label in seen:
            raise ConfigError(f"{where}: {key}: label {label!r} is listed twice")
        seen.add(label)
        if not isinstance(settings, dict):
            raise ConfigError(f"{where}: {key}: {label}: settings must be a mapping")
        unknown = sorted(set(settings) - allowed)
        if unknown:
            raise ConfigError(f"{where}: {key}: {label}: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")
        need = "rep" if key == "rows" else "model"
        if need not in settings:
            raise ConfigError(f"{where}: {key}: {label}: needs {need!r}")
        out.append((label, settings))
    return out


def _takes(rep: str, model: str) -> dict[str, set]:
    from models import MODELS
    from representations import REPRESENTATIONS

    return {"rep_params": set(REPRESENTATIONS.get(rep)._get_param_names()),
            "model_params": set(MODELS.get(model)._get_param_names())}


def _config(shared: dict, protocol: str, dataset, *layers: dict, where: str) -> RunConfig:
    """Shared settings < row < column < cell; arena-wide parameters only where the class takes them."""
    rep, model = layers[0]["rep"], layers[1]["model"]
    takes = _takes(rep, model)
    values = {k: v for k, v in shared.items() if k not in ("rep_params", "model_params")}
    if "epochs" not in takes["model_params"]:
        values.pop("epochs", None)  # an arena-wide schedule means nothing to an untrained head
    for key in ("rep_params", "model_params"):
        values[key] = {k: v for k, v in (shared.get(key) or {}).items() if k in takes[key]}
    for layer in layers:
        for k, v in layer.items():
            if k in ("rep_params", "model_params", "data_params"):
                if not isinstance(v, dict):
                    raise ConfigError(f"{where}: {k} must be a mapping")
                values[k] = {**values.get(k, {}), **v}
            else:
                values[k] = v
    values.setdefault("workers", 1)  # a sweep runs its units side by side instead
    try:
        cfg = resolve({**values, "protocol": protocol, "dataset": dataset})
        check_params(cfg)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return cfg


def expand(spec: dict, where: str = "arena spec") -> Arena:
    """The arena's matrix: every (row, column) cell checked before any work starts."""
    from benchmark.plan import check_compatible
    from models import MODELS
    from protocols import PROTOCOLS
    from representations import REPRESENTATIONS

    unknown = sorted(set(spec) - SPEC_KEYS - RUN_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(SPEC_KEYS | RUN_KEYS))})")
    for key in ("arena", "protocol"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise ConfigError(f"{where}: key {key!r} is required (a name)")
    name, protocol, dataset = spec["arena"], spec["protocol"], spec.get("dataset")
    try:
        PROTOCOLS.get(protocol)
    except KeyError as exc:
        raise ConfigError(f"{where}: {exc.args[0] if exc.args else exc}") from None
    shared = {k: v for k, v in spec.items() if k in RUN_KEYS}
    shared.setdefault("out", "results/runs")
    rows = _entries(spec, "rows", ROW_KEYS, where)
    columns = _entries(spec, "columns", COLUMN_KEYS, where)
    for label, s in rows:
        _known(REPRESENTATIONS, s["rep"], f"{where}: rows: {label}")
    for label, s in columns:
        _known(MODELS, s["model"], f"{where}: columns: {label}")
    explicit = _explicit_cells(spec, rows, columns, where)
    cells = []
    for (rlabel, r), (clabel, c) in ((a, b) for a in rows for b in columns):
        key = f"{rlabel}{SEP}{clabel}"
        try:
            check_compatible(r["rep"], c["model"])
        except ValueError as exc:
            if key in explicit:
                raise ConfigError(f"{where}: cell {key!r} is named explicitly but cannot work: {exc}") from None
            cells.append(Cell(rlabel, clabel, None, str(exc)))
            continue
        cfg = _config(shared, protocol, dataset, r, c, explicit.get(key, {}), where=f"{where}: cell {key!r}")
        cells.append(Cell(rlabel, clabel, cfg))
    chance = None
    if spec.get("chance") is not None:
        ch = spec["chance"]
        if not isinstance(ch, dict) or not {"rep", "model"} <= set(ch) or set(ch) - ROW_KEYS - COLUMN_KEYS:
            raise ConfigError(f"{where}: chance: a mapping with rep, model (and seeds, rep_params...)")
        try:
            check_compatible(ch["rep"], ch["model"])
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"{where}: chance: {exc}") from None
        row = {k: v for k, v in ch.items() if k in ROW_KEYS}
        col = {k: v for k, v in ch.items() if k in COLUMN_KEYS}
        chance = Cell(CHANCE, "", _config(shared, protocol, dataset, row, col, where=f"{where}: chance"))
    arena = Arena(name, str(spec.get("title") or name), protocol, dataset, tuple(l for l, _ in rows),
                  tuple(l for l, _ in columns), tuple(cells), _reference(spec, rows, columns, where), chance,
                  tuple(spec.get("notes") or ()), where, _published(spec, where))
    if arena.reference_cell.cfg is None:
        raise ConfigError(f"{where}: the reference cell {arena.reference_cell.key!r} cannot work: "
                          f"{arena.reference_cell.reason}")
    return arena


def _published(spec: dict, where: str) -> tuple[dict, ...]:
    items = spec.get("published") or []
    if not isinstance(items, list) or not all(isinstance(i, dict) and {"method", "uf1", "source"} <= set(i)
                                               and set(i) <= {"method", "uf1", "uar", "source"} for i in items):
        raise ConfigError(f"{where}: published: a list of {{method, uf1, uar (optional), source}}")
    return tuple(dict(i) for i in items)


def _known(registry, name: str, where: str) -> None:
    try:
        registry.get(name)
    except KeyError as exc:
        raise ConfigError(f"{where}: {exc.args[0] if exc.args else exc}") from None


def _explicit_cells(spec: dict, rows, columns, where: str) -> dict[str, dict]:
    cells = spec.get("cells") or {}
    if not isinstance(cells, dict):
        raise ConfigError(f"{where}: cells: a mapping of 'row | column' to settings")
    rlabels, clabels = {l for l, _ in rows}, {l for l, _ in columns}
    for key, settings in cells.items():
        r, _, c = str(key).partition(SEP)
        if r not in rlabels or c not in clabels:
            raise ConfigError(f"{where}: cells: {key!r} is not 'row | column' of this arena's rows and columns")
        if not isinstance(settings or {}, dict) or set(settings or {}) - CELL_KEYS:
            raise ConfigError(f"{where}: cells: {key}: settings among {', '.join(sorted(CELL_KEYS))}")
    return {str(k): dict(v or {}) for k, v in cells.items()}


def _reference(spec: dict, rows, columns, where: str) -> tuple[str, str]:
    ref = spec.get("reference")
    if not isinstance(ref, dict) or set(ref) != {"row", "column"}:
        raise ConfigError(f"{where}: key 'reference' is required: {{row: ..., column: ...}}")
    if ref["row"] not in {l for l, _ in rows} or ref["column"] not in {l for l, _ in columns}:
        raise ConfigError(f"{where}: reference {ref['row']!r} x {ref['column']!r} is not a cell of this arena")
    return ref["row"], ref["column"]


def load_arena(path: str | Path) -> Arena:
    spec = load_yaml(path)
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: expected a mapping at top level")
    return expand(spec, where=str(path))


def load_arenas(folder: str | Path = ARENA_DIR) -> list[Arena]:
    """Every arena spec in ``folder``, in file-name order (the order tables appear in)."""
    arenas = [load_arena(p) for p in sorted(Path(folder).glob("*.yaml"))]
    names = [a.name for a in arenas]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{folder}: arena {dup[0]!r} is defined twice")
    return arenas


def command(cfg: RunConfig) -> str:
    """The ``benchmark run`` command line that reproduces ``cfg``'s run folder."""
    args = ["python", "-m", "benchmark", "run", "--rep", cfg.rep, "--model", cfg.model, "--protocol", cfg.protocol]
    if cfg.dataset:
        args += ["--dataset", cfg.dataset]
    if cfg.data_root:
        args += ["--data-root", cfg.data_root]
    if cfg.epochs is not None:
        args += ["--epochs", str(cfg.epochs)]
    args += ["--seeds", ",".join(map(str, cfg.seeds)), "--selection", cfg.selection]
    for flag, params in (("--rep-param", cfg.rep_params), ("--model-param", cfg.model_params),
                         ("--data-param", cfg.data_params)):
        for k, v in sorted(params.items()):
            args += [flag, f"{k}={_value(v)}"]
    if cfg.out != "runs":
        args += ["--out", cfg.out]
    return shlex.join(args)


def _value(v) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)
