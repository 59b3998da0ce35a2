"""Arena matrices as data: each cell's canonical run and figures, each column's best, and the paired
deltas of ``results/comparisons/<arena>.json``. The leaderboard, its plots, its exports and the
README's block all read these, so they never disagree."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from benchmark.arenas import CHANCE, SEP, Arena
from benchmark.index import Index, canonical_runs
from benchmark.provenance import read_json

RUN, NA, NOT_RUN = "run", "n/a", "not run"
HONEST = ("fixed", "inner-val")  # selections whose figure is an honest estimate (no test-fold choice)
# Representation families (the README's block and the plots group by them); unlisted reps are their own family.
FAMILIES = {"tvl1": "pixel flow", "farneback": "pixel flow", "precomputed": "pixel flow",
            "mdmo": "flow statistics", "framediff": "frame difference",
            "apex": "appearance", "lbptop": "appearance", "frames": "appearance",
            "dface": "learned tokens", "dface-pairs": "learned tokens", "dfe": "learned tokens",
            "dfe-bow": "learned tokens"}
FAMILY_ORDER = ("pixel flow", "flow statistics", "frame difference", "appearance", "learned tokens")


def family(rep: str) -> str:
    return FAMILIES.get(rep, rep)


@dataclass(frozen=True)
class MatrixCell:
    """One cell as shown: its status, canonical run (an ``Entry`` of the leaderboard) and paired delta."""

    row: str
    column: str
    key: str
    rep: str | None
    status: str  # RUN, NA or NOT_RUN
    run: str | None = None
    entry: object = None  # benchmark.leaderboard.Entry (duck-typed: .result, .header)
    reason: str = ""  # why n/a
    delta: Mapping | None = None  # this cell's record of the comparisons file, when paired data exist

    @property
    def result(self):
        return self.entry.result if self.entry is not None else None

    def metric(self, name: str):
        return self.result.metrics.overall.metric(name) if self.result else None

    @property
    def n_seeds(self) -> int:
        return len(self.result.seeds) if self.result else 0

    @property
    def honest(self) -> bool:
        r = self.result
        return r is not None and r.selection in HONEST and not r.contaminated


@dataclass(frozen=True)
class Matrix:
    arena: Arena
    cells: tuple[MatrixCell, ...]  # row-major, spec order
    chance: MatrixCell | None
    paired: str  # "" when the comparisons file matches the runs, else why there is no paired data
    best_vs_second: tuple[Mapping, ...] = ()

    def cell(self, row: str, column: str) -> MatrixCell:
        return next(c for c in self.cells if (c.row, c.column) == (row, column))

    def label(self, column: str) -> str | None:
        """The column's label (its schedule, e.g. "CPU schedule: ..."), shown as a footnote."""
        return next((c.cfg.label for c in self.arena.cells if c.column == column and c.cfg and c.cfg.label), None)

    @property
    def reference(self) -> MatrixCell:
        return self.cell(*self.arena.reference)

    @property
    def finished(self) -> list[MatrixCell]:
        return [c for c in self.cells if c.status == RUN]

    def best(self, column: str, metric: str = "uf1") -> set[str]:
        """Rows holding the column's highest honest seed mean (ties share it); none while the column
        has fewer than two honest cells (a lone cell beats nothing)."""
        done = [c for c in self.cells if c.column == column and c.honest]
        if len(done) < 2:
            return set()
        top = max(round(c.metric(metric).mean, 4) for c in done)
        return {c.row for c in done if round(c.metric(metric).mean, 4) == top}

    @property
    def n(self) -> int | None:
        return next((c.result.metrics.overall.n for c in self.finished), None)

    @property
    def unit(self) -> str | None:
        return next((c.result.bootstrap_unit for c in self.finished), None)

    @property
    def n_boot(self) -> int | None:
        return next((c.metric("uf1").ci.n_boot for c in self.finished), None)


def read_comparisons(folder: Path, arena: str) -> dict | None:
    """``<folder>/<arena>.json`` (written by benchmark.comparisons), or None when absent."""
    path = Path(folder) / f"{arena}.json"
    return read_json(path) if path.exists() else None


def build(arenas: list[Arena], entries: Mapping[str, object], index: Index, run_dirs: list[Path],
          comparisons: Path | None = None) -> list[Matrix]:
    """Each arena's matrix from the run folders (``entries``: run id -> leaderboard Entry)."""
    out = []
    for arena in arenas:
        canonical: dict[str, str | None] = {}
        for d in run_dirs:  # several --runs folders: the first holding a cell's run serves it
            for key, run in canonical_runs(arena, index, d).items():
                canonical[key] = canonical.get(key) or run
        data = read_comparisons(comparisons, arena.name) if comparisons else None
        deltas, paired = _deltas(data, arena, canonical)
        reps = {c.row: c.cfg.rep for c in arena.cells if c.cfg}  # an n/a cell has no config, its row a rep
        cells = tuple(_cell(c, canonical.get(c.key), entries, deltas, reps.get(c.row)) for c in arena.cells)
        chance = (_cell(arena.chance, canonical.get(arena.chance.key), entries, {}, arena.chance.cfg.rep)
                  if arena.chance else None)
        best2 = tuple((data or {}).get("best_vs_second", []))  # checked against the current best where shown
        out.append(Matrix(arena, cells, chance, paired, best2))
    return out


def _cell(c, run, entries, deltas, rep) -> MatrixCell:
    if c.cfg is None:
        return MatrixCell(c.row, c.column, c.key, rep, NA, reason=c.reason)
    if run is None or run not in entries:
        return MatrixCell(c.row, c.column, c.key, rep, NOT_RUN)
    return MatrixCell(c.row, c.column, c.key, rep, RUN, run, entries[run], delta=deltas.get(c.key))


def _deltas(data: dict | None, arena: Arena, canonical: dict) -> tuple[dict, str]:
    """Cell key -> its comparison record, kept only where the record names the cell's current run
    (a comparisons file older than a rerun must not lend its figures to the new run)."""
    if data is None:
        return {}, "no comparisons file"
    ref, want = (data.get("reference") or {}).get("run"), canonical.get(arena.reference_cell.key)
    if want is None:
        return {}, "the reference cell is not run yet"
    if ref != want:
        return {}, "the comparisons file predates the reference cell's run"
    return {c["cell"]: c for c in data.get("comparisons", []) if canonical.get(c.get("cell")) == c.get("run")}, ""


def cell_label(row: str, column: str) -> str:
    """How a cell is named in prose: ``row × column`` (the chance cell is its row)."""
    return row if row == CHANCE or not column else f"{row} × {column}"


def split_key(key: str) -> tuple[str, str]:
    row, _, column = key.partition(SEP)
    return row, column
