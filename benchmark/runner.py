"""The runner: the one place where datasets, protocols, representations and models meet.

A run is four steps, the same for ``execute`` (one process) and ``benchmark.sweep`` (folds
cut into units, possibly on other machines):

    open_run         plan (read dataset, protocol.select/split, templates) + config.json
    shared_features  one transform of every sample, unless the representation learns per fold
    run_listed_folds per fold: clone(rep).fit(train), transform, clone(model).fit(train),
                     predict test -> fold file (atomic; finished folds are read back)
    finalize_run     pool + score (benchmark.scoring), the oracle twin (benchmark.twin),
                     metrics.json and friends (benchmark.rundir)
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sklearn.base import clone

from benchmark import rundir, scoring
from benchmark.config import RunConfig, check_params
from benchmark.core.device import resolve_device
from benchmark.core.samples import DatasetReport
from benchmark.datasets import read_dataset
from benchmark.inputs import apply_frames_policy, inputs_record
from benchmark.parallel import run_units
from benchmark.plugins import load_plugins
from benchmark.provenance import (checkpoint_records, data_fingerprint, git_commit, input_fingerprint, machine, now,
                                  package_versions)
from benchmark.results import FoldRecord, load_result
from benchmark.twin import fixed_companion
from models import MODELS
from models.base import Model, EpochChoiceSet, TorchClassifier
from protocols import PROTOCOLS
from protocols.base import Fold, Protocol, LabelledSet, carve_validation, missing_classes
from representations import REPRESENTATIONS
from representations.base import Representation

Job = tuple[int, Fold, int]  # (fold index, fold, seed)


class IncompatibleError(ValueError):
    """A representation/model pair that cannot work together."""


class ContaminationError(RuntimeError):
    """A learned component saw the test subject."""


def check_compatible(rep_name: str, model_name: str) -> None:
    rep, model = REPRESENTATIONS.get(rep_name), MODELS.get(model_name)
    if rep.kind not in model.accepts:
        raise IncompatibleError(
            f"representation {rep_name!r} produces {rep.kind!r} inputs but model {model_name!r} "
            f"accepts {', '.join(sorted(model.accepts))}")


def data_root(cfg: RunConfig) -> Path:
    if cfg.data == "synthetic":
        from benchmark.datasets.synthetic import ensure_synthetic

        return ensure_synthetic()
    root = Path(cfg.data_root)
    if not root.is_dir():
        raise FileNotFoundError(f"--data-root {root} {'is a file, not a folder' if root.exists() else 'does not exist'}")
    return root


@dataclass(frozen=True)
class Plan:
    """Everything fixed before training: the protocol's samples, its folds and the templates."""

    cfg: RunConfig
    sel: LabelledSet
    folds: tuple[Fold, ...]
    rep: Representation
    model: Model
    report: DatasetReport
    protocol: Protocol
    weights: dict | None = None  # published-weights: the checked checkpoint folder (benchmark/evaluate.py)

    @property
    def folder(self) -> Path:
        return Path(self.cfg.out) / self.cfg.run_id()

    def jobs(self) -> list[tuple[str, int]]:
        """Every (fold name, seed) of the run, seed by seed."""
        return [(f.name, seed) for seed in self.cfg.seeds for f in self.folds]

    def records(self) -> list[FoldRecord | None]:
        """The fold files on disk, in ``jobs`` order (None: not finished)."""
        return [rundir.load_fold(self.folder, seed, name, self.sel.samples, self.sel.y) for name, seed in self.jobs()]


def plan(cfg: RunConfig) -> Plan:
    load_plugins(cfg.plugins)  # user entries register before their names are looked up
    check_compatible(cfg.rep, cfg.model)
    check_params(cfg)  # parameter names and epochs, before any data is read
    protocol = PROTOCOLS.get(cfg.protocol)(dataset=cfg.dataset)
    report = read_dataset(protocol.source, data_root(cfg) / protocol.source, **cfg.data_params)
    sel, rep_params = apply_frames_policy(cfg, report, protocol.select(report))  # benchmark/inputs.py
    folds = protocol.split(sel, seed=cfg.split_seed)
    rep = REPRESENTATIONS.get(cfg.rep)(**rep_params).prepare()  # e.g. a default checkpoint, built once
    params = dict(cfg.model_params)
    if cfg.epochs is not None:
        params["epochs"] = cfg.epochs
    model = MODELS.get(cfg.model)(**params)
    if "device" in model.get_params():
        model.set_params(device=str(resolve_device(cfg.device)))
    p = Plan(cfg, sel, tuple(folds), rep, model, report, protocol)
    if cfg.weights or cfg.selection == "published-weights":  # every checkpoint checked before any prediction
        from benchmark.evaluate import check_weights

        p = replace(p, weights=check_weights(p))
    return p


def _epoch_choice_data(p: Plan, fold: Fold, X: np.ndarray, seed: int) -> tuple[np.ndarray, EpochChoiceSet | None]:
    """Training indices and the set the epoch is chosen on, per selection mode."""
    mode, y = p.cfg.selection, p.sel.y
    if mode in ("fixed", "published-weights"):  # the latter trains nothing (fold_model)
        return fold.train, None
    if mode == "oracle":  # reproduces scripts that pick the epoch on the test subject
        return fold.train, EpochChoiceSet(X[fold.test], y[fold.test], "accuracy")
    if fold.val is not None:
        return fold.train, EpochChoiceSet(X[fold.val], y[fold.val], "uf1")
    train, val = carve_validation(fold.train, p.sel.groups, seed=seed)
    return train, EpochChoiceSet(X[val], y[val], "uf1")


def _contamination(p: Plan, rep, fold: Fold) -> list[str]:
    leaked = rep.training_subjects() & set(p.sel.groups[fold.test])
    if leaked and not p.cfg.allow_contamination:
        raise ContaminationError(
            f"fold {fold.name}: representation {p.cfg.rep!r} was trained on test subject(s) "
            f"{', '.join(sorted(leaked))}; pass --allow-contamination to run anyway (the row is marked)")
    return sorted(leaked)


def run_fold(p: Plan, fold: Fold, index: int, seed: int, X_shared: np.ndarray | None) -> FoldRecord:
    """Train and evaluate one fold; returns the fold record written to disk."""
    t0 = time.perf_counter()
    rep = p.rep
    if p.rep.learned:
        rep = clone(p.rep).fit([p.sel.samples[i] for i in fold.train], p.sel.y[fold.train])
    leaked = _contamination(p, rep, fold)
    X = X_shared if X_shared is not None else rep.transform(p.sel.samples)
    fold_seed = _fold_seed(seed, index)
    train, selection = _epoch_choice_data(p, fold, X, fold_seed)
    model = fold_model(p, fold, X, train, selection, fold_seed)
    return _record(p, fold, seed, model, model.predict_proba(X[fold.test]), train, leaked,
                   time.perf_counter() - t0, "sequential")


def fold_model(p: Plan, fold: Fold, X: np.ndarray, train: np.ndarray, selection, fold_seed: int):
    """The fold's fitted model: trained on ``train`` (the one place a model is fitted for a fold),
    or under selection ``published-weights`` the fold's published checkpoint, loaded, not trained."""
    if p.weights is not None:
        from benchmark.evaluate import published_model

        return published_model(p, fold, X)
    model = clone(p.model)
    if "seed" in model.get_params():
        model.set_params(seed=fold_seed)
    model.fit(X[train], p.sel.y[train], n_classes=len(p.sel.classes), selection=selection,
              class_names=p.sel.classes)
    return model


def _fold_seed(seed: int, index: int) -> int:
    return seed * 100_003 + index


def _record(p: Plan, fold: Fold, seed: int, model, proba, train, leaked, seconds: float,
            training: str) -> FoldRecord:
    picked = [p.sel.samples[i] for i in fold.test]
    last = getattr(model, "last_selection_proba_", None)
    last = np.asarray(last) if p.cfg.selection == "oracle" and last is not None else None  # see benchmark.twin
    return FoldRecord(
        fold=fold.name, seed=seed, test=tuple(fold.test.tolist()), keys=tuple(s.key for s in picked),
        subjects=tuple(s.subject for s in picked), databases=tuple(s.dataset for s in picked),
        truth=tuple(p.sel.y[fold.test].tolist()), proba=tuple(map(tuple, proba.round(6).tolist())),
        pred=tuple(proba.argmax(1).tolist()), best_epoch=getattr(model, "best_epoch_", None),
        missing_train_classes=tuple(p.sel.classes[c] for c in missing_classes(p.sel.y[train], len(p.sel.classes))),
        contaminated_subjects=tuple(leaked), weights_source=getattr(model, "weights_source_", None),
        seconds=round(seconds, 3), training=training,
        last_epoch_proba=None if last is None else tuple(map(tuple, last.round(6).tolist())),
        last_epoch_pred=None if last is None else tuple(last.argmax(1).tolist()))


def run_fold_group(p: Plan, jobs: list[Job], X_shared: np.ndarray) -> list[FoldRecord]:
    """Train the folds of ``jobs`` (one seed) as one stacked model (``models/fold_parallel.py``);
    each fold's weights, batches and dropout are those its own ``run_fold`` would draw."""
    from models.fold_parallel import fit_folds

    t0 = time.perf_counter()
    leaked = [_contamination(p, p.rep, fold) for _, fold, _ in jobs]
    trains = [fold.train for _, fold, _ in jobs]
    seeds = [_fold_seed(seed, index) for index, _, seed in jobs]
    models = fit_folds(p.model, X_shared, p.sel.y, trains, seeds, len(p.sel.classes))
    seconds = (time.perf_counter() - t0) / len(jobs)  # the group's time, shared evenly
    tag = f"fold-parallel:{len(jobs)}"
    return [_record(p, fold, seed, m, m.predict_proba(X_shared[fold.test]), fold.train, lk, seconds, tag)
            for (_, fold, seed), m, lk in zip(jobs, models, leaked)]


def training_path(p: Plan) -> dict:
    """Fold-parallel or sequential, and why: recorded in the run folder's config.json."""
    mode = p.cfg.fold_parallel
    if p.weights is not None:
        return {"path": "sequential", "reason": "published-weights: each fold's checkpoint is loaded, nothing is trained"}
    if mode == "off":
        return {"path": "sequential", "reason": "fold_parallel=off"}
    if mode == "auto" and resolve_device(p.cfg.device).type != "cuda":
        return {"path": "sequential",
                "reason": "fold_parallel=auto uses the stacked path on CUDA only (on CPU it is slower: see results/PERF.md)"}
    if p.rep.learned:
        return {"path": "sequential", "reason": f"representation {p.cfg.rep!r} is fitted per fold"}
    from models.fold_parallel import unsupported

    why = unsupported(p.model, p.cfg.selection, [f.train for f in p.folds], p.sel.y)
    if why:
        return {"path": "sequential", "reason": why}
    return {"path": "fold-parallel", "reason": f"fold_parallel={mode}"}


def worker_count(p: Plan) -> int:
    """``workers`` as a number. ``auto``: one fold process per core (up to the number of folds)
    for torch models trained one fold at a time on the CPU, whose small steps keep one thread
    busy each; else 1 (a scikit-learn head finishes a fold before a worker has started, and a
    GPU trains folds stacked)."""
    if p.cfg.workers != "auto":
        return p.cfg.workers
    if (not isinstance(p.model, TorchClassifier) or resolve_device(p.cfg.device).type != "cpu"
            or p.weights is not None or training_path(p)["path"] != "sequential"):
        return 1
    return max(1, min(os.cpu_count() or 1, len(p.folds) * len(p.cfg.seeds)))


def _units(p: Plan, todo: list[Job]) -> list[list[Job]]:
    """Units of work: one fold each, or groups of one seed's folds trained stacked."""
    if not todo or training_path(p)["path"] != "fold-parallel":
        return [[job] for job in todo]
    units = []
    for seed in dict.fromkeys(s for _, _, s in todo):
        jobs = [j for j in todo if j[2] == seed]
        size = p.cfg.fold_group or -(-len(jobs) // worker_count(p))
        units += [jobs[i:i + size] for i in range(0, len(jobs), size)]
    return units


def _run_unit(p: Plan, X_shared: np.ndarray | None, unit: list[Job]) -> list[FoldRecord]:
    if len(unit) == 1 and training_path(p)["path"] == "sequential":
        index, fold, seed = unit[0]
        return [run_fold(p, fold, index, seed, X_shared)]
    return run_fold_group(p, unit, X_shared)


# ---------------------------------------------------------------- the four steps of a run


def open_run(cfg: RunConfig) -> tuple[Plan, Path]:
    """Plan ``cfg`` and create (or reopen) its run folder with ``config.json``."""
    p = plan(cfg)
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
    for rec in run_units(_run_unit, _units(p, todo), worker_count(p), p, X_shared):
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


def execute(cfg: RunConfig, progress: bool = True) -> Path:
    """Run (or resume) ``cfg``: the four steps in this process; returns the run folder.

    Finished folds are read back from the run folder, so an interrupted run resumes where it
    stopped. With ``workers > 1`` the remaining folds train in parallel processes (one torch
    thread each); every fold has its own seed, so the numbers do not depend on the worker
    count beyond floating-point noise.
    """
    t0 = time.perf_counter()
    with rundir.run_lock(Path(cfg.out) / cfg.run_id()):  # a second identical run is refused, not doubled
        p, _ = open_run(cfg)
        run_listed_folds(p, p.jobs(), shared_features(p), progress=progress)
        return finalize_run(p, wall_s=time.perf_counter() - t0)


def refinalize(run: Path) -> Path:
    """Score a finished run's fold files again with the current code (metrics.json, predictions,
    an oracle run's fixed-counterpart note), keeping its config.json and wall time: for runs
    made before a field existed. The data must be the data the run was made on."""
    from benchmark.config import resolve

    run = Path(run)
    header = json.loads((run / "config.json").read_text())
    cfg = resolve({**header["config"], "out": str(run.parent)})
    if cfg.run_id() != run.name:
        raise ValueError(f"{run}: folder name is not the run id of its config ({cfg.run_id()})")
    p = plan(cfg)
    if data_fingerprint(p.report.files, p.sel.samples, p.sel.y) != header.get("data_fingerprint"):
        raise RuntimeError(f"{run}: the data under {cfg.data_root} are not those the run was made on")
    if not all(rundir.has_fold(run, seed, name) for name, seed in p.jobs()):
        raise RuntimeError(f"{run}: not finished (fold files missing); resume it with `benchmark run`")
    return finalize_run(p, wall_s=load_result(run).wall_s if (run / "metrics.json").exists() else 0.0)


def load_metrics(run: Path) -> dict:
    """A run's metrics.json as plain JSON types, migrated to the current schema (for scripts;
    the suite's readers take the typed ``benchmark.results.load_result``)."""
    return load_result(run).to_json()


def run_header(p: Plan) -> dict:
    """A planned run's config.json: resolved config, recipe, counts, provenance."""
    return {
        "config": p.cfg.as_dict(), "run_id": p.cfg.run_id(), "protocol": p.protocol.describe(),
        "rep_recipe": p.rep.recipe(), "model_params": p.model.get_params(), "classes": list(p.sel.classes),
        "n_samples": len(p.sel.samples), "n_subjects": len(set(p.sel.groups)), "n_folds": len(p.folds),
        "excluded_emotions": p.sel.excluded,
        "dataset_defects": [d.__dict__ for d in p.report.defects],
        "data_fingerprint": data_fingerprint(p.report.files, p.sel.samples, p.sel.y),
        "input_fingerprint": input_fingerprint(p.sel.samples), "inputs": inputs_record(p),
        "checkpoints": checkpoint_records(p.rep, p.model),
        **({"published_weights": p.weights} if p.weights is not None else {}),
        "packages": package_versions(), "plugins": load_plugins(p.cfg.plugins),
        "git_commit": git_commit(), "machine": machine(), "started": now(),
    }


def _progress(total: int, done: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc="folds", unit="fold", disable=not enabled, leave=False)
