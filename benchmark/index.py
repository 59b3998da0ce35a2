"""The results index (``results/index.yaml``): the role of every committed run folder.

A matrix cell's canonical run is the run folder whose id its arena spec gives
(``benchmark/matrix/*.yaml``); the index adds what the specs cannot know::

    reuse:        # a cell served by a committed run of the same configuration under another id
      - {arena: cde-casme2, cell: "farneback · face | STSTNet", run: <run id>, why: "..."}
    ablations:    # one table each: the base run and the runs that change one thing
      - {title: "...", base: <run id>, runs: [<run id>, ...]}
    superseded:   # kept for the record, never in a main table
      - {run: <run id>, by: <run id or cell>, why: "..."}
    studies:      # runs outside the matrix, kept for a named purpose
      - {study: "...", runs: [<run id>, ...]}

Every run folder under ``results/runs`` is a canonical cell or named here;
``benchmark check`` reports the rest, and an entry naming a missing run folder.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from benchmark.config import ConfigError, load_yaml

INDEX = Path("results/index.yaml")
SECTIONS = ("reuse", "ablations", "superseded", "studies")


@dataclass(frozen=True)
class Ablation:
    title: str
    base: str
    runs: tuple[str, ...]


@dataclass(frozen=True)
class Index:
    reuse: dict = field(default_factory=dict)        # (arena, cell key) -> (run id, why)
    ablations: tuple[Ablation, ...] = ()
    superseded: dict = field(default_factory=dict)   # run id -> (by, why)
    studies: dict = field(default_factory=dict)      # run id -> study title

    def named_runs(self) -> dict[str, str]:
        """Run id -> its role, for every run the index names."""
        out = {run: f"study: {s}" for run, s in self.studies.items()}
        for a in self.ablations:
            out[a.base] = out.get(a.base) or f"ablation base: {a.title}"
            out.update({r: f"ablation: {a.title}" for r in a.runs})
        out.update({run: f"superseded by {by}" for run, (by, _) in self.superseded.items()})
        out.update({run: f"canonical (reused): {arena} / {cell}" for (arena, cell), (run, _) in self.reuse.items()})
        return out


def _list(data: dict, key: str, where: str, need: tuple[str, ...]) -> list[dict]:
    items = data.get(key) or []
    if not isinstance(items, list):
        raise ConfigError(f"{where}: {key}: a list of mappings")
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not set(need) <= set(item):
            raise ConfigError(f"{where}: {key}[{i}]: needs {', '.join(need)}")
    return items


def load_index(path: str | Path = INDEX) -> Index:
    """The index, or an empty one when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return Index()
    data = load_yaml(path) or {}
    where = str(path)
    if not isinstance(data, dict) or set(data) - set(SECTIONS):
        raise ConfigError(f"{where}: a mapping with keys among {', '.join(SECTIONS)}")
    reuse = {(e["arena"], e["cell"]): (e["run"], e.get("why", ""))
             for e in _list(data, "reuse", where, ("arena", "cell", "run", "why"))}
    ablations = tuple(Ablation(e["title"], e["base"], tuple(e["runs"]))
                      for e in _list(data, "ablations", where, ("title", "base", "runs")))
    superseded = {e["run"]: (e["by"], e["why"]) for e in _list(data, "superseded", where, ("run", "by", "why"))}
    studies = {run: e["study"] for e in _list(data, "studies", where, ("study", "runs")) for run in e["runs"]}
    return Index(reuse, ablations, superseded, studies)


def canonical_runs(arena, index: Index, runs_dir: str | Path) -> dict[str, str | None]:
    """Cell key -> the id of its canonical run folder under ``runs_dir`` (finished), or None
    (not run yet, or n/a). The chance cell is included under its own key."""
    runs_dir = Path(runs_dir)
    out = {}
    for cell in [*arena.cells, *([arena.chance] if arena.chance else [])]:
        run = None
        if cell.cfg is not None:
            run = index.reuse.get((arena.name, cell.key), (cell.run_id, ""))[0]
            if not (runs_dir / run / "metrics.json").exists():
                run = None
        out[cell.key] = run
    return out


def problems(arenas, index: Index, runs_dir: str | Path) -> list[str]:
    """Index entries naming missing runs or unknown cells, and run folders in no entry."""
    runs_dir = Path(runs_dir)
    present = {p.parent.name for p in runs_dir.glob("*/metrics.json")}
    out = []
    cells = {(a.name, c.key): c for a in arenas for c in [*a.cells, *([a.chance] if a.chance else [])]}
    for (arena, cell), (run, _) in index.reuse.items():
        c = cells.get((arena, cell))
        if c is None:
            out.append(f"index reuse: {arena} / {cell!r} is not a cell of an arena spec")
        elif c.cfg is None:
            out.append(f"index reuse: {arena} / {cell!r} is n/a: {c.reason}")
    named = index.named_runs()
    for run in sorted(named):
        if run not in present:
            out.append(f"index: {run} ({named[run]}) has no run folder under {runs_dir}")
    canonical = {r for a in arenas for r in canonical_runs(a, index, runs_dir).values() if r}
    for run in sorted(present - canonical - set(named)):
        out.append(f"{runs_dir / run}: in no index entry (not a matrix cell; add it to {INDEX} or remove it)")
    return out
