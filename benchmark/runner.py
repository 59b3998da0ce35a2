"""The runner: the one place where datasets, protocols, representations and models meet.

    read dataset -> protocol.select/split -> per fold: clone(rep).fit(train),
    transform, clone(model).fit(train) -> predict test -> fold file (atomic)
    -> pooled metrics + bootstrap CIs -> run folder
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sklearn.base import clone

from benchmark import rundir
from benchmark.config import RunConfig
from benchmark.datasets import read_dataset
from benchmark.provenance import data_fingerprint, git_commit, machine, now, package_versions
from models import MODELS
from benchmark.core.device import resolve_device
from models.base import SelectionSet
from protocols import PROTOCOLS
from protocols.base import Fold, Selection, carve_validation, missing_classes
from representations import REPRESENTATIONS

log = logging.getLogger("benchmark")


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
        raise FileNotFoundError(f"--data-root {root} does not exist")
    return root


@dataclass
class Plan:
    """Everything fixed before training: the selection, its folds and templates."""

    cfg: RunConfig
    sel: Selection
    folds: list[Fold]
    rep: object
    model: object
    report: object
    protocol: object
    weights: dict | None = None  # published-weights: the checked checkpoint folder (benchmark/evaluate.py)


def plan(cfg: RunConfig) -> Plan:
    check_compatible(cfg.rep, cfg.model)
    protocol = PROTOCOLS.get(cfg.protocol)(dataset=cfg.dataset)
    report = read_dataset(protocol.source, data_root(cfg) / protocol.source, **cfg.data_params)
    sel = protocol.select(report)
    folds = protocol.split(sel, seed=cfg.split_seed)
    rep = REPRESENTATIONS.get(cfg.rep)(**cfg.rep_params)
    params = dict(cfg.model_params)
    if cfg.epochs is not None:
        params["epochs"] = cfg.epochs
    model = MODELS.get(cfg.model)(**params)
    if "device" in model.get_params():
        model.set_params(device=str(resolve_device(cfg.device)))
    p = Plan(cfg, sel, folds, rep, model, report, protocol)
    if cfg.weights or cfg.selection == "published-weights":  # every checkpoint checked before any prediction
        from benchmark.evaluate import check_weights

        p.weights = check_weights(p)
    return p


def _selection(p: Plan, fold: Fold, X: np.ndarray, seed: int) -> tuple[np.ndarray, SelectionSet | None]:
    """Training indices and the set the epoch is chosen on, per selection mode."""
    mode, y = p.cfg.selection, p.sel.y
    if mode in ("fixed", "published-weights"):  # the latter trains nothing (fold_model)
        return fold.train, None
    if mode == "oracle":  # reproduces scripts that pick the epoch on the test subject
        return fold.train, SelectionSet(X[fold.test], y[fold.test], "accuracy")
    if fold.val is not None:
        return fold.train, SelectionSet(X[fold.val], y[fold.val], "uf1")
    train, val = carve_validation(fold.train, p.sel.groups, seed=seed)
    return train, SelectionSet(X[val], y[val], "uf1")


def _contamination(p: Plan, rep, fold: Fold) -> list[str]:
    leaked = rep.training_subjects() & set(p.sel.groups[fold.test])
    if leaked and not p.cfg.allow_contamination:
        raise ContaminationError(
            f"fold {fold.name}: representation {p.cfg.rep!r} was trained on test subject(s) "
            f"{', '.join(sorted(leaked))}; pass --allow-contamination to run anyway (the row is marked)")
    return sorted(leaked)


def run_fold(p: Plan, fold: Fold, index: int, seed: int, X_shared: np.ndarray | None) -> dict:
    """Train and evaluate one fold; returns the fold record written to disk."""
    t0 = time.perf_counter()
    rep = p.rep
    if getattr(p.rep, "learned", False):
        rep = clone(p.rep).fit([p.sel.samples[i] for i in fold.train], p.sel.y[fold.train])
    leaked = _contamination(p, rep, fold)
    X = X_shared if X_shared is not None else rep.transform(p.sel.samples)
    fold_seed = _fold_seed(seed, index)
    train, selection = _selection(p, fold, X, fold_seed)
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


def _record(p: Plan, fold: Fold, seed: int, model, proba, train, leaked, seconds: float, training: str) -> dict:
    rec = {
        "fold": fold.name, "seed": seed, "test": fold.test.tolist(), "proba": proba.round(6).tolist(),
        "pred": proba.argmax(1).tolist(), "best_epoch": getattr(model, "best_epoch_", None),
        "missing_train_classes": [p.sel.classes[c] for c in missing_classes(p.sel.y[train], len(p.sel.classes))],
        "contaminated_subjects": leaked, "weights_source": getattr(model, "weights_source_", None),
        "seconds": round(seconds, 3), "training": training,
    }
    last = getattr(model, "last_selection_proba_", None)
    if p.cfg.selection == "oracle" and last is not None:  # the test fold's last epoch: see fixed_companion
        rec["last_epoch_proba"] = np.asarray(last).round(6).tolist()
        rec["last_epoch_pred"] = np.asarray(last).argmax(1).tolist()
    return rec


def fixed_companion(p: Plan, records: list[dict]) -> dict | None:
    """The ``fixed`` counterpart of an oracle run, and the paired oracle-minus-fixed difference.

    Oracle selection trains exactly what ``fixed`` trains (the per-epoch test
    scoring runs in eval mode under no_grad and draws no random numbers; see
    ``models.base.EpochChoice``) and records each fold's last-epoch test
    predictions, which are the fixed run's. They are written as the fixed
    configuration's own run folder (``derived_from`` in its config.json), so
    every oracle row comes with its honest counterpart at no extra training.
    Folds that a direct fixed run already wrote are kept, not replaced (the note
    counts how many of their predictions agree); an older oracle run without
    last-epoch predictions is compared with a finished direct fixed run.
    """
    if not records:
        return None
    q = Plan(**{**p.__dict__, "cfg": replace(p.cfg, selection="fixed")})
    out = Path(q.cfg.out) / q.cfg.run_id()
    on_disk = [rundir.load_fold(out, r["seed"], r["fold"]) for r in records]
    tag = f"last epoch of oracle run {p.cfg.run_id()}"
    direct = [d if d is not None and tag not in d.get("training", "") else None for d in on_disk]
    n_direct = sum(d is not None for d in direct)
    finished = all(d is not None for d in on_disk) and (out / "metrics.json").exists()
    note = {"run_id": q.cfg.run_id(), "derived_folds": 0, "direct_folds": n_direct}
    if any("last_epoch_pred" not in r for r in records):
        if not finished:
            return None
        fixed = on_disk
    else:
        derived = []
        for r in records:
            rec = {k: v for k, v in r.items() if not k.startswith("last_epoch_")}
            rec.update(proba=r["last_epoch_proba"], pred=r["last_epoch_pred"],
                       best_epoch=q.model.get_params().get("epochs"),
                       training=f"{r.get('training', 'sequential')}; {tag}")
            derived.append(rec)
        agree = sum(int(np.sum(np.array(d["pred"]) == np.array(e["pred"]))) for d, e in zip(direct, derived) if d)
        note.update(derived_folds=len(records) - n_direct,
                    direct_predictions_agreeing=f"{agree}/{sum(len(d['pred']) for d in direct if d)}")
        fixed = [old or rec for rec, old in zip(derived, direct)]  # a direct run's folds win
        if not finished:
            origin = Path(p.cfg.out) / p.cfg.run_id() / "config.json"
            trained = json.loads(origin.read_text()) if origin.exists() else {}
            header = {**_header(q), "derived_from": p.cfg.run_id(),
                      "training": {"path": "derived", "reason": f"last epoch of oracle run {p.cfg.run_id()}"},
                      **{k: trained[k] for k in ("git_commit", "started") if k in trained}}  # when it was trained
            try:
                rundir.prepare(out, header)
            except RuntimeError as err:  # e.g. a run on other data in that folder: keep the oracle run
                log.warning("fixed companion not written: %s", err)
                return {**note, "error": str(err)}
            for rec, old in zip(derived, on_disk):
                if old is None:
                    rundir.save_fold(out, rec)
            rundir.finalize(out, q, fixed, wall_s=0.0)
    note["oracle_minus_fixed"] = _oracle_minus_fixed(p, records, fixed)
    return note


def _oracle_minus_fixed(p: Plan, oracle: list[dict], fixed: list[dict]) -> dict:
    from benchmark.compare import paired_metrics

    test, po, _ = rundir.pool_predictions(p, oracle)
    _, pf, _ = rundir.pool_predictions(p, fixed)
    groups = np.array([p.sel.samples[i].subject for i in test])
    unit_groups = groups if p.protocol.bootstrap_unit == "subject" and len(set(groups)) > 1 else None
    res = paired_metrics(p.sel.y[test], po.T, pf.T, unit_groups, n_boot=p.cfg.n_boot)
    return {"n": res["n"], "unit": res["unit"], "predictions_differing": res["predictions_differing"],
            **{k: {f: m[f] for f in ("difference", "low", "high", "p_value")} for k, m in res["metrics"].items()}}


def run_fold_group(p: Plan, jobs: list[tuple[int, Fold, int]], X_shared: np.ndarray) -> list[dict]:
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


def training_path(p: Plan, X_shared: np.ndarray | None) -> dict:
    """Fold-parallel or sequential, and why: recorded in the run folder's config.json."""
    mode = p.cfg.fold_parallel
    if p.weights is not None:
        return {"path": "sequential", "reason": "published-weights: each fold's checkpoint is loaded, nothing is trained"}
    if mode == "off":
        return {"path": "sequential", "reason": "fold_parallel=off"}
    if mode == "auto" and resolve_device(p.cfg.device).type != "cuda":
        return {"path": "sequential",
                "reason": "fold_parallel=auto uses the stacked path on CUDA only (on CPU it is slower: see results/PERF.md)"}
    if X_shared is None:
        return {"path": "sequential", "reason": f"representation {p.cfg.rep!r} is fitted per fold"}
    from models.fold_parallel import unsupported

    why = unsupported(p.model, p.cfg.selection, [f.train for f in p.folds], p.sel.y)
    if why:
        return {"path": "sequential", "reason": why}
    return {"path": "fold-parallel", "reason": f"fold_parallel={mode}"}


def execute(cfg: RunConfig, progress: bool = True) -> Path:
    """Run (or resume) ``cfg``; returns the run folder.

    Finished folds are read back from the run folder, so an interrupted run
    resumes where it stopped. With ``workers > 1`` the remaining folds train in
    parallel processes (one torch thread each); every fold has its own seed, so
    the numbers do not depend on the worker count beyond floating-point noise.
    """
    t0 = time.perf_counter()
    p = plan(cfg)
    X_shared = None if getattr(p.rep, "learned", False) else p.rep.transform(p.sel.samples)
    out = rundir.prepare(Path(cfg.out) / cfg.run_id(), {**_header(p), "training": training_path(p, X_shared)})
    _write_rep_report(out, p.rep)
    jobs = [(i, f, seed) for seed in cfg.seeds for i, f in enumerate(p.folds)]
    todo = [j for j in jobs if rundir.load_fold(out, j[2], j[1].name) is None]
    bar = _progress(len(jobs), len(jobs) - len(todo), progress)
    for rec in _train(p, todo, X_shared):
        rundir.save_fold(out, rec)
        bar.update(1)
    bar.close()
    records = [rundir.load_fold(out, seed, f.name) for _, f, seed in jobs]
    rundir.finalize(out, p, records, wall_s=time.perf_counter() - t0, companion=fixed_companion(p, records))
    return out


def _write_rep_report(out: Path, rep) -> None:
    """Fallbacks a representation recorded in ``report_`` (nearest frame, no face
    found, spotted apex...) -> ``rep_report.json`` in the run folder."""
    events = getattr(rep, "report_", None)
    if events is None:
        return
    from collections import Counter

    report = {"recipe": rep.recipe(), "counts": dict(Counter(e.get("kind", "?") for e in events)),
              "cache": getattr(rep, "cache_stats_", None), "events": events}
    rundir.write_atomic(out / "rep_report.json", json.dumps(report, indent=1, default=str))


def _train(p: Plan, todo: list, X_shared):
    """Yield fold records, in-process or from a pool of worker processes; a unit of work is
    one fold, or a group of one seed's folds trained stacked (see ``training_path``)."""
    units = _units(p, todo, X_shared)
    if p.cfg.workers == 1 or len(units) <= 1:
        for unit in units:
            yield from _run_unit(p, unit, X_shared)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")  # fork after torch/OpenMP start-up can deadlock
    with ProcessPoolExecutor(p.cfg.workers, mp_context=ctx, initializer=_worker_init,
                             initargs=(p, X_shared)) as pool:
        futures = [pool.submit(_worker_unit, unit) for unit in units]
        for fut in as_completed(futures):
            yield from fut.result()


def _units(p: Plan, todo: list, X_shared) -> list[list]:
    if not todo or training_path(p, X_shared)["path"] != "fold-parallel":
        return [[job] for job in todo]
    units = []
    for seed in dict.fromkeys(s for _, _, s in todo):
        jobs = [j for j in todo if j[2] == seed]
        size = p.cfg.fold_group or -(-len(jobs) // p.cfg.workers)
        units += [jobs[i:i + size] for i in range(0, len(jobs), size)]
    return units


def _run_unit(p: Plan, unit: list, X_shared) -> list[dict]:
    if len(unit) == 1 and training_path(p, X_shared)["path"] == "sequential":
        index, fold, seed = unit[0]
        return [run_fold(p, fold, index, seed, X_shared)]
    return run_fold_group(p, unit, X_shared)


_WORKER: dict = {}


def _worker_init(p: Plan, X_shared) -> None:
    import torch

    _end_with_parent()
    torch.set_num_threads(1)
    _WORKER.update(plan=p, X=X_shared)


def _end_with_parent() -> None:
    """Linux: a worker gets SIGTERM when the run's process dies, so killing a run does not
    leave its workers training folds nobody will collect."""
    import multiprocessing as mp
    import os
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    parent = mp.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it died before the call above
        os._exit(1)


def _worker_unit(unit: list) -> list[dict]:
    return _run_unit(_WORKER["plan"], unit, _WORKER["X"])


def _header(p: Plan) -> dict:
    return {
        "config": p.cfg.as_dict(), "run_id": p.cfg.run_id(), "protocol": p.protocol.describe(),
        "rep_recipe": p.rep.recipe(), "model_params": p.model.get_params(), "classes": list(p.sel.classes),
        "n_samples": len(p.sel.samples), "n_subjects": len(set(p.sel.groups)), "n_folds": len(p.folds),
        "excluded_emotions": p.sel.excluded,
        "dataset_defects": [d.__dict__ for d in p.report.defects],
        "data_fingerprint": data_fingerprint(p.report.files, p.sel.samples, p.sel.y),
        **({"published_weights": p.weights} if p.weights is not None else {}),
        "packages": package_versions(), "git_commit": git_commit(), "machine": machine(), "started": now(),
    }


def _progress(total: int, done: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc="folds", unit="fold", disable=not enabled, leave=False)


def refinalize(run: Path) -> Path:
    """Pool a finished run's fold files again with the current code (metrics.json, predictions,
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
    records = [rundir.load_fold(run, seed, f.name) for seed in cfg.seeds for f in p.folds]
    if any(r is None for r in records):
        raise RuntimeError(f"{run}: not finished (fold files missing); resume it with `benchmark run`")
    wall = json.loads((run / "metrics.json").read_text())["wall_s"] if (run / "metrics.json").exists() else 0.0
    rundir.finalize(run, p, records, wall_s=wall, companion=fixed_companion(p, records))
    return run


def load_metrics(run: Path) -> dict:
    return json.loads((Path(run) / "metrics.json").read_text())


# ---- plumbing for sweeps (benchmark/sweep.py): one run split into units of folds, possibly on
# other machines; each step does what ``execute`` does, so the run folder comes out the same.

def open_run(cfg: RunConfig) -> tuple[Plan, Path]:
    """Plan ``cfg`` and create (or reopen) its run folder with ``config.json`` (features are
    not computed here: ``training_path`` only asks whether they are shared)."""
    p = plan(cfg)
    shared = None if getattr(p.rep, "learned", False) else np.empty(0)
    return p, rundir.prepare(Path(cfg.out) / cfg.run_id(), {**_header(p), "training": training_path(p, shared)})


def shared_features(p: Plan) -> np.ndarray | None:
    """The template representation's features of every sample (None when it is learned per fold);
    writes ``rep_report.json`` like ``execute``."""
    if getattr(p.rep, "learned", False):
        return None
    X = p.rep.transform(p.sel.samples)
    _write_rep_report(Path(p.cfg.out) / p.cfg.run_id(), p.rep)
    return X


def run_listed_folds(p: Plan, jobs: list[tuple[str, int]], X_shared=None) -> list[dict]:
    """Train the ``(fold name, seed)`` jobs of a planned run into its run folder; folds already
    on disk are read back, not retrained. Returns the records in ``jobs`` order."""
    out = Path(p.cfg.out) / p.cfg.run_id()
    index = {f.name: (i, f) for i, f in enumerate(p.folds)}
    todo = [(*index[name], seed) for name, seed in jobs if rundir.load_fold(out, seed, name) is None]
    if todo and X_shared is None:
        X_shared = shared_features(p)
    done = {}
    for rec in _train(p, todo, X_shared):
        rundir.save_fold(out, rec)
        done[(rec["fold"], rec["seed"])] = rec
    return [done.get((name, seed)) or rundir.load_fold(out, seed, name) for name, seed in jobs]


def finalize_run(p: Plan, wall_s: float) -> Path:
    """Pool every fold file of a planned run into metrics.json, predictions.csv, ...; a missing
    fold is an error."""
    out = Path(p.cfg.out) / p.cfg.run_id()
    keys = [(seed, f.name) for seed in p.cfg.seeds for f in p.folds]
    records = [rundir.load_fold(out, seed, name) for seed, name in keys]
    missing = [f"seed{seed}/{name}" for (seed, name), r in zip(keys, records) if r is None]
    if missing:
        raise RuntimeError(f"{out}: {len(missing)} fold(s) not finished, e.g. {missing[0]}")
    rundir.finalize(out, p, records, wall_s=wall_s, companion=fixed_companion(p, records))
    return out
