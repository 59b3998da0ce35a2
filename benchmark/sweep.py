"""Sweeps: representations x models x protocols, each run cut into units of folds.

A spec (YAML) names the lists and the settings every run shares::

    reps: [precomputed, framediff]     # required
    models: [logreg, ststnet: {epochs: 100}]   # required; an entry may carry its own run settings
    protocols: [cde]                   # required
    seeds: [0, 1, 2]                   # one run folder per (rep, model, protocol), all seeds in it
    folds_per_unit: 8                  # folds per unit of work (default 8)
    leaderboard: results/LEADERBOARD.md  # regenerated at the end (default <out>/LEADERBOARD.md)
    data: synthetic                    # ... and any other RunConfig key: data_root, dataset, epochs,
    epochs: 100                        #     selection, rep_params, model_params, out, n_boot, ...

(``fold_group`` is such a run setting: folds per stacked model on CUDA, within a unit.)

Each (rep, model, protocol) is one ``RunConfig`` with the run id, folder, fold files
and metrics.json that ``benchmark run`` gives it. A unit is (config, seed, fold
names); units run in this process (``local``) or as Ray tasks (``ray``), write
their fold files as each fold finishes, and the driver finalizes a run folder as
soon as its last unit is in. A unit whose fold files all exist is never
scheduled, so an interrupted sweep restarts where it stopped.

On a Ray cluster (``--address``) every node needs this package installed, and
``out`` / ``data_root`` must name the same folders on every node (a shared
filesystem): tasks run in the workers' working directory, which is the driver's
only on a local instance. Fold records also come back to the driver, which
writes any its filesystem lacks.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Sequence

from benchmark import rundir
from benchmark.config import ConfigError, RunConfig, check_params, load_yaml, resolve
from benchmark.plugins import load_plugins

log = logging.getLogger("benchmark")

LIST_KEYS = ("reps", "models", "protocols")
SPEC_ONLY_KEYS = {*LIST_KEYS, "folds_per_unit", "leaderboard"}
DEFAULT_FOLDS_PER_UNIT = 8
EXECUTORS = ("local", "ray")
ENV_PREFIX = "MER_BENCHMARK"  # cache folder, extraction threads...: workers must see the driver's


@dataclass(frozen=True)
class Sweep:
    """A validated spec: the run configs, folds per unit, leaderboard path (None: none)."""

    configs: tuple[RunConfig, ...]
    folds_per_unit: int = DEFAULT_FOLDS_PER_UNIT
    leaderboard: Path | None = None
    notes: tuple[str, ...] = ()  # shared settings left out for entries that do not take them


@dataclass(frozen=True)
class Unit:
    """One unit of work: some folds of one run for one seed."""

    cfg: RunConfig
    seed: int
    folds: tuple[str, ...]
    sweep_id: str = field(default="", compare=False)  # workers reuse a plan within one sweep only

    def __str__(self) -> str:
        span = self.folds[0] if len(self.folds) == 1 else f"{self.folds[0]}..{self.folds[-1]}"
        return f"{self.cfg.run_id()} seed {self.seed} folds {span}"


@dataclass
class SweepResult:
    runs: list[Path]  # every run folder of the sweep
    finalized: list[Path]  # those whose metrics.json was (re)written now
    units: int  # units in the sweep
    ran: list[Unit] = field(default_factory=list)  # units scheduled now
    failed: list[tuple[Unit, str]] = field(default_factory=list)
    leaderboard: Path | None = None


# ------------------------------------------------------------------ spec


def load_spec(path: str | Path, plugins: Sequence[str] = (), rows: Sequence[str] = (),
              columns: Sequence[str] = ()) -> Sweep:
    """Read and validate a sweep spec (YAML); every error is one line naming the key.
    ``plugins`` (``--plugin``) are added to the spec's own ``plugins:``. An arena spec
    (``benchmark/matrix/*.yaml``, key ``arena``) runs its runnable cells, optionally only
    those of the ``rows`` / ``columns`` named (labels)."""
    spec = load_yaml(path)
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: expected a mapping at top level")
    if "arena" in spec:
        if plugins:
            raise ConfigError(f"{path}: an arena spec takes no plugins")
        return _arena_sweep(spec, str(path), rows, columns)
    if rows or columns:
        raise ConfigError(f"{path}: --rows / --columns select cells of an arena spec; this is a plain sweep spec")
    if plugins:
        spec["plugins"] = [*(spec.get("plugins") or []), *plugins]
    return expand(spec, where=str(path))


def _arena_sweep(spec: dict, where: str, rows: Sequence[str], columns: Sequence[str]) -> Sweep:
    from benchmark.arenas import CHANCE, expand as expand_arena

    arena = expand_arena(spec, where)
    for asked, known, what in ((rows, (*arena.rows, CHANCE), "row"), (columns, arena.columns, "column")):
        unknown = [x for x in asked if x not in known]
        if unknown:
            raise ConfigError(f"{where}: no {what} {unknown[0]!r} (known: {', '.join(known)})")
    def wanted(c) -> bool:
        if c.row == CHANCE:  # the chance row comes along unless rows are named without it
            return not rows or CHANCE in rows
        return (not rows or c.row in rows) and (not columns or c.column in columns)

    cells = [c for c in arena.runnable() if wanted(c)]
    notes = tuple(f"n/a: {c.key}: {c.reason}" for c in arena.cells if c.cfg is None
                  and (not rows or c.row in rows) and (not columns or c.column in columns))
    return Sweep(tuple(c.cfg for c in cells), _folds_per_unit(spec, where), None, notes)


def expand(spec: dict, where: str = "sweep spec") -> Sweep:
    """Cross product of ``reps`` x ``models`` x ``protocols`` -> RunConfigs, all checked
    (names, rep/model compatibility, settings) before any work starts."""
    from benchmark.runner import check_compatible
    from protocols import PROTOCOLS

    for key in ("rep", "model", "protocol"):
        if key in spec:
            raise ConfigError(f"{where}: key {key!r} is not a sweep key; list values under {key + 's'!r}")
    unknown = sorted(set(spec) - SPEC_ONLY_KEYS - _RUN_KEYS)
    if unknown:
        known = ", ".join(sorted(SPEC_ONLY_KEYS | _RUN_KEYS))
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {known})")
    load_plugins(spec.get("plugins") or ())  # their names must be known before the pairs are checked
    lists = [_entries(spec, key, where) for key in LIST_KEYS]
    shared = _settings({k: v for k, v in spec.items() if k not in SPEC_ONLY_KEYS}, where)
    configs, notes = {}, {}
    for (rep, r), (model, m), (protocol, pr) in product(*lists):
        try:
            PROTOCOLS.get(protocol)
            check_compatible(rep, model)
            values = _merge(_applicable(shared, rep, model, notes), r, m, pr)
            values.setdefault("workers", 1)  # a sweep runs its units side by side instead
            if "data" not in values:  # as on the command line: synthetic unless a data root is given
                values["data"] = "real" if values.get("data_root") else "synthetic"
            cfg = resolve({**values, "rep": rep, "model": model, "protocol": protocol})
            check_params(cfg)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"{where}: {rep} + {model} + {protocol}: {exc}") from None
        configs.setdefault(cfg.run_id(), cfg)  # a name listed twice is one run
    return Sweep(tuple(configs.values()), _folds_per_unit(spec, where), _leaderboard(spec, configs),
                 tuple(notes))


def _applicable(shared: dict, rep: str, model: str, notes: dict) -> dict:
    """The shared settings that ``rep`` / ``model`` take: a shared ``epochs`` or a shared
    rep/model parameter is left out for the entries without it, and ``notes`` says so
    (an entry's own settings are never left out: there a wrong key is an error)."""
    from models import MODELS
    from representations import REPRESENTATIONS

    takes = {"rep_params": set(REPRESENTATIONS.get(rep)._get_param_names()),
             "model_params": set(MODELS.get(model)._get_param_names())}
    out = dict(shared)
    if "epochs" in out and "epochs" not in takes["model_params"]:
        del out["epochs"]
        notes.setdefault(f"shared epochs not applied to {model} (not trained in epochs)", None)
    for key, name in (("rep_params", rep), ("model_params", model)):
        if key in out:
            skipped = sorted(set(out[key]) - takes[key])
            out[key] = {k: v for k, v in out[key].items() if k in takes[key]}
            if skipped:
                notes.setdefault(f"shared {key} {', '.join(skipped)} not applied to {name} (no such parameter)", None)
    return out


_RUN_KEYS = {f.name for f in dataclasses.fields(RunConfig)} - {"rep", "model", "protocol"}
_PARAM_KEYS = ("rep_params", "model_params")


def _entries(spec: dict, key: str, where: str) -> list[tuple[str, dict]]:
    """``[name, {name: {settings}}, ...]`` -> ``[(name, settings)]``; settings override the shared ones."""
    value = spec.get(key)
    value = [value] if isinstance(value, (str, dict)) else value
    if not value or not isinstance(value, list):
        raise ConfigError(f"{where}: key {key!r} must be a non-empty list of names")
    out = []
    for item in value:
        if isinstance(item, str):
            out.append((item, {}))
        elif isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item)), str):
            name, settings = next(iter(item.items()))
            if not isinstance(settings or {}, dict):
                raise ConfigError(f"{where}: {key}: {name}: settings must be a mapping of run settings")
            out.append((name, _settings(settings or {}, f"{where}: {key}: {name}")))
        else:
            raise ConfigError(f"{where}: key {key!r}: each entry is a name or {{name: {{settings}}}}, not {item!r}")
    return out


def _settings(values: dict, where: str) -> dict:
    unknown = sorted(set(values) - _RUN_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_RUN_KEYS))})")
    values = dict(values)
    if "seeds" in values:
        values["seeds"] = _seeds(values["seeds"], where)
    for key in _PARAM_KEYS:
        if key in values and not isinstance(values[key], dict):
            raise ConfigError(f"{where}: key {key!r} must be a mapping")
    return values


def _merge(*layers: dict) -> dict:
    """Later layers win; ``rep_params`` / ``model_params`` merge key by key."""
    out: dict = {}
    for layer in layers:
        for k, v in layer.items():
            out[k] = {**out.get(k, {}), **v} if k in _PARAM_KEYS else v
    return out


def _seeds(value, where: str) -> list[int]:
    value = [value] if isinstance(value, int) else value
    if not isinstance(value, list) or not value or not all(type(s) is int for s in value):  # bool is no seed
        raise ConfigError(f"{where}: key 'seeds' must be a non-empty list of integers")
    return value


def _folds_per_unit(spec: dict, where: str) -> int:
    n = spec.get("folds_per_unit", DEFAULT_FOLDS_PER_UNIT)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"{where}: key 'folds_per_unit' must be an integer >= 1, not {n!r}")
    return n


def _leaderboard(spec: dict, configs: dict) -> Path | None:
    if "leaderboard" in spec:
        return Path(spec["leaderboard"]) if spec["leaderboard"] else None  # null/false: no leaderboard
    return Path(next(iter(configs.values())).out) / "LEADERBOARD.md"


# ------------------------------------------------------------------ units


def units_of(p, folds_per_unit: int, sweep_id: str = "") -> list[Unit]:
    """A planned run's folds, per seed, in groups of ``folds_per_unit``."""
    names = [f.name for f in p.folds]
    return [Unit(p.cfg, seed, tuple(names[i:i + folds_per_unit]), sweep_id)
            for seed in p.cfg.seeds for i in range(0, len(names), folds_per_unit)]


def unit_done(unit: Unit) -> bool:
    out = Path(unit.cfg.out) / unit.cfg.run_id()
    return all(rundir.has_fold(out, unit.seed, name) for name in unit.folds)


_WORKER_CACHE: dict = {}  # per process: the last run's plan and features, reused by its next unit


def run_unit(unit: Unit) -> dict:
    """Train one unit's folds into its run folder (the task body on every executor)."""
    from benchmark.runner import plan, run_listed_folds, shared_features

    t0 = time.perf_counter()
    key = unit.sweep_id + json.dumps(unit.cfg.as_dict(), sort_keys=True, default=str)
    if key not in _WORKER_CACHE:
        _WORKER_CACHE.clear()  # one run's features at a time: memory stays bounded
        p = plan(unit.cfg)
        _WORKER_CACHE[key] = (p, shared_features(p))
    p, X = _WORKER_CACHE[key]
    records = run_listed_folds(p, [(name, unit.seed) for name in unit.folds], X)
    return {"records": records, "seconds": time.perf_counter() - t0}


# ------------------------------------------------------------------ executors


def _local(units: list[Unit], **_):
    """In this process, one unit after another (each may use ``workers`` fold processes)."""
    try:
        for unit in units:
            try:
                yield unit, run_unit(unit), None
            except Exception as exc:  # noqa: BLE001 -- one failed run must not stop the others
                yield unit, None, f"{type(exc).__name__}: {exc}"
    finally:
        _WORKER_CACHE.clear()


def start_local_ray(num_cpus: int | None = None) -> None:
    """A fresh local Ray instance (even if another cluster runs here) set up for this work;
    its workers inherit this process's environment (``MER_BENCHMARK_CACHE``...)."""
    import ray

    ray.init(address="local", num_cpus=num_cpus or len(os.sched_getaffinity(0)), log_to_driver=False,
             include_dashboard=False,  # nothing to serve; it would take a port and a process
             # Units pass only small fold records through the object store: no need for the
             # default 30 % of RAM in /dev/shm.
             object_store_memory=256 * 2**20,
             # Ray nices its workers to 15 by default; they do all the training here, and on a
             # shared machine niced workers starve (a 2-unit test sweep sat idle for minutes).
             _system_config={"worker_niceness": 0})


def _gpus_per_unit(units: list[Unit], cluster_gpus: float) -> dict[str, int]:
    """run id -> GPUs a unit reserves: one where it would train a torch model on CUDA (Ray hides
    the GPUs from a task that reserves none)."""
    from models import MODELS

    out = {}
    for cfg in {u.cfg.run_id(): u.cfg for u in units}.values():
        cuda = cfg.device == "cuda" or (cfg.device == "auto" and cluster_gpus > 0)
        if cfg.device == "cuda" and not cluster_gpus:
            raise ConfigError(f"{cfg.run_id()}: device cuda, but the Ray cluster has no GPU")
        out[cfg.run_id()] = int(cuda and "device" in MODELS.get(cfg.model)().get_params())
    return out


def _ray(units: list[Unit], address: str | None = None, num_cpus: int | None = None):
    """Ray tasks, one per unit, each reserving ``workers`` CPUs; reuses a connected Ray."""
    import ray

    started = not ray.is_initialized()
    if started and address:
        # A cluster's workers do not inherit this shell's environment (a local instance's do).
        env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
        ray.init(address=address, log_to_driver=False, runtime_env={"env_vars": env} if env else None)
    elif started:
        start_local_ray(num_cpus)
    gpus = _gpus_per_unit(units, ray.cluster_resources().get("GPU", 0))
    task = ray.remote(run_unit)
    pending = {task.options(num_cpus=u.cfg.workers if isinstance(u.cfg.workers, int) else 1, num_gpus=gpus[u.cfg.run_id()], max_retries=1).remote(u): u
               for u in units}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            unit = pending.pop(ready[0])
            try:
                yield unit, ray.get(ready[0]), None
            except ray.exceptions.RayError as exc:
                cause = getattr(exc, "cause", None) or exc
                last = (str(cause).strip().splitlines() or [""])[-1]  # not Ray's remote traceback
                yield unit, None, f"{type(cause).__name__}: {last}"
    finally:
        for ref in pending:
            ray.cancel(ref)
        if started:
            ray.shutdown()


# ------------------------------------------------------------------ driver


def run_sweep(sweep: Sweep, executor: str = "local", address: str | None = None,
              num_cpus: int | None = None, progress: bool = True) -> SweepResult:
    """Run every unfinished unit, finalize each run folder when its units are in, then
    regenerate the leaderboard. Failed units are reported in the result, not raised."""
    from benchmark.runner import finalize_run, open_run

    if executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {', '.join(EXECUTORS)}, not {executor!r}")
    if address and executor != "ray":
        raise ConfigError("--address needs --executor ray")
    plans, todo, total, sweep_id, done = {}, [], 0, uuid.uuid4().hex, []
    for cfg in sweep.configs:
        folder = Path(cfg.out) / cfg.run_id()
        if (folder / "metrics.json").exists() and not (folder / "folds").is_dir():
            done.append(folder)  # finished, its fold files not kept (a committed run)
            continue
        p, out = open_run(cfg)  # config.json and folder now, as `benchmark run` does
        plans[cfg.run_id()] = (p, out)
        units = units_of(p, sweep.folds_per_unit, sweep_id)
        total += len(units)
        todo += [u for u in units if not unit_done(u)]
    left = Counter(u.cfg.run_id() for u in todo)
    result = SweepResult(runs=[*done, *(out for _, out in plans.values())], finalized=[], units=total, ran=list(todo))
    wall = Counter()
    for rid, (p, out) in plans.items():  # finished earlier, but not finalized (interrupted at the end)
        if not left[rid] and not (out / "metrics.json").exists():
            result.finalized.append(finalize_run(p, wall_s=0.0))
    bar = _progress(len(todo), progress)
    run = _ray if executor == "ray" and todo else _local  # nothing to do: no cluster to start
    for unit, res, error in run(todo, address=address, num_cpus=num_cpus):
        rid = unit.cfg.run_id()
        bar.update(1)
        if error:
            log.error("unit %s failed: %s", unit, error)
            result.failed.append((unit, error))
            continue
        p, out = plans[rid]
        for rec in res["records"]:  # the driver may not share the workers' filesystem
            if not rundir.has_fold(out, rec.seed, rec.fold):
                rundir.save_fold(out, rec)
        wall[rid] += res["seconds"]
        left[rid] -= 1
        if not left[rid]:
            result.finalized.append(finalize_run(p, wall_s=wall[rid]))
    bar.close()
    if sweep.leaderboard:
        from benchmark.leaderboard import write_leaderboard

        parents = sorted({Path(cfg.out) for cfg in sweep.configs})
        result.leaderboard = write_leaderboard(parents, sweep.leaderboard)
    return result


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="units", unit="unit", disable=not enabled or not total, leave=False)
