"""The runner: the one place where datasets, protocols, representations and models meet.

A run is four steps, the same for ``execute`` (one process) and ``benchmark.sweep`` (folds
cut into units, possibly on other machines):

    open_run         plan (benchmark.plan: dataset, protocol.select/split, templates) + config.json
    shared_features  one transform of every sample, unless the representation learns per fold
    run_listed_folds per fold (benchmark.folds): clone(rep).fit(train), transform,
                     clone(model).fit(train), predict test -> fold file (atomic; finished folds
                     are read back), in worker processes (benchmark.parallel)
    finalize_run     pool + score (benchmark.scoring), the oracle twin (benchmark.twin),
                     metrics.json and friends (benchmark.rundir)
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from benchmark import rundir, scoring
from benchmark.config import RunConfig
from benchmark.folds import ContaminationError, fold_model, run_fold, run_unit, units  # noqa: F401 - API
from benchmark.parallel import run_units
from benchmark.plan import (IncompatibleError, Plan, check_compatible, plan, run_header,  # noqa: F401 - API
                            training_path, worker_count)
from benchmark.provenance import data_fingerprint
from benchmark.results import FoldRecord, load_result
from benchmark.twin import fixed_companion


# ---------------------------------------------------------------- the four steps of a run


def open_run(cfg: RunConfig, planned: Plan | None = None) -> tuple[Plan, Path]:
    """Plan ``cfg`` (unless ``planned``) and create (or reopen) its run folder with ``config.json``."""
    p = planned or plan(cfg)
    return p, rundir.prepare(p.folder, {**run_header(p), "training": {**training_path(p), "workers": worker_count(p)}})


def shared_features(p: Plan) -> np.ndarray | None:
    """The template representation's features of every sample (None when it is learned per fold);
    its fallbacks (nearest frame, no face found, spotted apex...) go to ``rep_report.json``."""
    if p.rep.learned:
        return None
    X = p.rep.transform(p.sel.samples)
    events = getattr(p.rep, "report_", None)
    if events is not None:
        rundir.write_rep_report(p.folder, p.rep.recipe(), events, getattr(p.rep, "cache_stats_", None))
    return X


def run_listed_folds(p: Plan, jobs: list[tuple[str, int]], X_shared: np.ndarray | None = None,
                     progress: bool = False) -> list[FoldRecord]:
    """Train the ``(fold name, seed)`` jobs of a planned run into its run folder, ``workers`` at a
    time; folds already on disk are read back, not retrained. Returns the records in ``jobs`` order."""
    index = {f.name: (i, f) for i, f in enumerate(p.folds)}
    todo = [(*index[name], seed) for name, seed in jobs if not rundir.has_fold(p.folder, seed, name)]
    if todo and X_shared is None:
        X_shared = shared_features(p)
    done, bar = {}, _progress(len(jobs), len(jobs) - len(todo), progress)
    for rec in run_units(run_unit, units(p, todo), worker_count(p), p, X_shared):
        rundir.save_fold(p.folder, rec)
        done[(rec.fold, rec.seed)] = rec
        bar.update(1)
    bar.close()
    return [done.get((name, seed)) or rundir.load_fold(p.folder, seed, name, p.sel.samples, p.sel.y)
            for name, seed in jobs]


def finalize_run(p: Plan, wall_s: float) -> Path:
    """Score every fold file of a planned run into metrics.json, predictions.csv, ... (and an
    oracle run's fixed twin); a missing fold is an error."""
    records = p.records()
    missing = [f"seed{seed}/{name}" for (name, seed), r in zip(p.jobs(), records) if r is None]
    if missing:
        raise RuntimeError(f"{p.folder}: {len(missing)} fold(s) not finished, e.g. {missing[0]}")
    result = scoring.run_result(p.cfg, p.sel.classes, p.protocol.bootstrap_unit, p.model.get_params().get("epochs"),
                                records, wall_s, companion=fixed_companion(p, records, run_header),
                                derived_from=(rundir.read_header(p.folder) or {}).get("derived_from"))
    rundir.write_run(p.folder, result, records)
    return p.folder


def execute(cfg: RunConfig, progress: bool = True, planned: Plan | None = None) -> Path:
    """Run (or resume) ``cfg``: the four steps in this process; returns the run folder.

    Finished folds are read back from the run folder, so an interrupted run resumes where it
    stopped. With ``workers > 1`` the remaining folds train in parallel processes (one torch
    thread each); every fold has its own seed, so the numbers do not depend on the worker
    count beyond floating-point noise.
    """
    t0 = time.perf_counter()
    planned = planned or plan(cfg)  # bad input fails here, before anything is written
    with rundir.run_lock(planned.folder):  # a second identical run is refused, not doubled
        p, _ = open_run(cfg, planned)
        run_listed_folds(p, p.jobs(), shared_features(p), progress=progress)
        return finalize_run(p, wall_s=time.perf_counter() - t0)


def _replan(run: Path, out: Path) -> tuple[dict, RunConfig, Plan]:
    """A committed run's header, its config with run folders under ``out``, and its plan; an error
    when the folder is not its config's run id or the data are not those it was made on."""
    from benchmark.config import resolve

    header = json.loads((run / "config.json").read_text())
    cfg = resolve({**header["config"], "out": str(out)})
    if cfg.run_id() != run.name:
        raise ValueError(f"{run}: folder name is not the run id of its config ({cfg.run_id()})")
    p = plan(cfg)
    if data_fingerprint(p.report.files, p.sel.samples, p.sel.y) != header.get("data_fingerprint"):
        raise RuntimeError(f"{run}: the data under {cfg.data_root} are not those the run was made on")
    return header, cfg, p


def refinalize(run: Path) -> Path:
    """Score a finished run's fold files again with the current code (metrics.json, predictions,
    an oracle run's fixed-counterpart note), keeping its config.json and wall time: for runs
    made before a field existed. The data must be the data the run was made on."""
    run = Path(run)
    header, cfg, p = _replan(run, run.parent)
    if not all(rundir.has_fold(run, seed, name) for name, seed in p.jobs()):
        raise RuntimeError(f"{run}: not finished (fold files missing); resume it with `benchmark run`")
    return finalize_run(p, wall_s=load_result(run).wall_s if (run / "metrics.json").exists() else 0.0)


def _per_seed(metrics: dict) -> list[dict]:
    return [{k: s[k] for k in ("uf1", "uar", "confusion", "n")} for s in metrics["metrics"]["overall"]["per_seed"]]


def replay(run: Path, scratch: Path) -> Path:
    """Retrain a committed run whose per-sample files (``folds/``, ``predictions.csv``: never
    committed) are not on this machine, into ``scratch``, with its own config; if every seed's
    confusion matrix, UF1 and UAR equal the committed ``metrics.json``, copy the per-sample files
    into the run folder (its config.json and metrics.json stay as committed). Otherwise an error
    says what differs (the code or the data changed since the run) and the run folder is untouched.
    This is what paired comparisons need on a fresh machine."""
    import shutil

    import torch

    run = Path(run)
    committed = json.loads((run / "metrics.json").read_text())
    header, cfg, p = _replan(run, Path(scratch))
    before = torch.get_num_threads()
    # summation order: the run's own thread count gives its floats
    torch.set_num_threads(int((header.get("machine") or {}).get("torch_threads") or before))
    try:
        again = execute(cfg, progress=False, planned=p)
    finally:
        torch.set_num_threads(before)
    mine, theirs = _per_seed(json.loads((again / "metrics.json").read_text())), _per_seed(committed)
    if len(mine) != len(theirs):
        raise RuntimeError(f"{run}: replayed {len(mine)} seed(s), committed {len(theirs)}")
    for seed, a, b in zip(cfg.seeds, mine, theirs):
        for k in ("confusion", "n", "uf1", "uar"):
            if a[k] != b[k] and not (k in ("uf1", "uar") and abs(a[k] - b[k]) < 1e-12):
                raise RuntimeError(f"{run}: seed {seed} replayed {k} {a[k]} != committed {b[k]}; "
                                   f"per-sample files not restored (code or data changed since {header.get('git_commit')})")
    shutil.copy2(again / "predictions.csv", run / "predictions.csv")
    shutil.rmtree(run / "folds", ignore_errors=True)
    shutil.copytree(again / "folds", run / "folds")
    return run


def load_metrics(run: Path) -> dict:
    """A run's metrics.json as plain JSON types, migrated to the current schema (for scripts;
    the suite's readers take the typed ``benchmark.results.load_result``)."""
    return load_result(run).to_json()


def _progress(total: int, done: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc="folds", unit="fold", disable=not enabled, leave=False)
