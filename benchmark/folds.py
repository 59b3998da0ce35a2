"""Fold execution: one fold trained and scored (``run_fold``), or one seed's folds trained as a
stacked model (``run_fold_group``), and the units of work the parallel layer hands out.

Per fold: ``clone(rep).fit(train)`` when the representation learns (with the fold's parameters
from the plan, e.g. a cross-fitted checkpoint that never saw its test subject), the contamination check,
the data the epoch is chosen on (per ``--selection``), ``fold_model`` (the one place a model is
fitted, or a published checkpoint loaded), and the fold record written to disk.
"""
from __future__ import annotations

import inspect
import time

import numpy as np
from sklearn.base import clone

from benchmark.plan import Plan, training_path, worker_count
from benchmark.results import FoldRecord
from models.base import EpochChoiceSet
from protocols.base import Fold, carve_validation, missing_classes

Job = tuple[int, Fold, int]  # (fold index, fold, seed)


class ContaminationError(RuntimeError):
    """A learned component saw the test subject."""


def _epoch_choice_data(p: Plan, fold: Fold, X: np.ndarray, seed: int) -> tuple[np.ndarray, EpochChoiceSet | None]:
    """Training indices and the set the epoch is chosen on, per selection mode."""
    mode, y = p.cfg.selection, p.sel.y
    # published-weights trains nothing (fold_model); a tuning head has no epochs to choose, and
    # its nested subject-grouped CV (models/tuning.py) uses the whole training fold, not a carved split
    if mode in ("fixed", "published-weights") or (mode == "inner-val" and _tunes(p.model)):
        return fold.train, None
    if mode == "oracle":  # reproduces scripts that pick the epoch on the test subject
        return fold.train, EpochChoiceSet(X[fold.test], y[fold.test], "accuracy")
    if fold.val is not None:
        return fold.train, EpochChoiceSet(X[fold.val], y[fold.val], "uf1")
    train, val = carve_validation(fold.train, p.sel.groups, seed=seed)
    return train, EpochChoiceSet(X[val], y[val], "uf1")


def _tunes(model) -> bool:
    """Whether ``model`` chooses its hyperparameters itself under inner-val: its ``fit`` takes
    the training samples' subjects (``groups=``), which the runner passes under inner-val only."""
    return "groups" in inspect.signature(model.fit).parameters


def _contamination(p: Plan, learned, fold: Fold, what: str | None = None) -> list[str]:
    """Test subjects ``learned`` (the representation, or a model that records its training
    subjects) was trained on: an error unless contamination is allowed, then the row is marked."""
    leaked = learned.training_subjects() & set(p.sel.groups[fold.test])
    if leaked and not p.cfg.allow_contamination:
        raise ContaminationError(
            f"fold {fold.name}: {what or f'representation {p.cfg.rep!r}'} was trained on test subject(s) "
            f"{', '.join(sorted(leaked))}; pass --allow-contamination to run anyway (the row is marked)")
    return sorted(leaked)


def run_fold(p: Plan, fold: Fold, index: int, seed: int, X_shared: np.ndarray | None) -> FoldRecord:
    """Train and evaluate one fold; returns the fold record written to disk."""
    t0 = time.perf_counter()
    rep = p.rep
    if p.rep.learned:
        rep = clone(p.rep).set_params(**p.fold_rep_params.get(fold.name, {}))  # e.g. its cross-fitted checkpoint
        rep = rep.fit([p.sel.samples[i] for i in fold.train], p.sel.y[fold.train])
    leaked = _contamination(p, rep, fold)
    X = X_shared if X_shared is not None else rep.transform(p.sel.samples)
    fold_seed = _fold_seed(seed, index)
    train, selection = _epoch_choice_data(p, fold, X, fold_seed)
    model = fold_model(p, fold, X, train, selection, fold_seed, rep)
    if hasattr(model, "training_subjects"):  # e.g. dface-joint: its tokenizer's pretraining + fine-tuning subjects
        leaked = sorted(set(leaked) | set(_contamination(p, model, fold, f"model {p.cfg.model!r}")))
    return _record(p, fold, seed, model, model.predict_proba(X[fold.test]), train, leaked,
                   time.perf_counter() - t0, "sequential")


def fold_model(p: Plan, fold: Fold, X: np.ndarray, train: np.ndarray, selection, fold_seed: int, rep=None):
    """The fold's fitted model: trained on ``train`` (the one place a model is fitted for a fold),
    or under selection ``published-weights`` the fold's published checkpoint, loaded, not trained.
    A model that owns a copy of the representation's network (``bind_representation``, e.g.
    dface-joint's tokenizer) gets the fold's fitted ``rep``; one whose ``fit`` takes ``subjects``
    gets the training samples' subjects, which it records for the contamination check."""
    if p.weights is not None:
        from benchmark.evaluate import published_model

        return published_model(p, fold, X)
    model = clone(p.model)
    if "seed" in model.get_params():
        model.set_params(seed=fold_seed)
    tune = {"groups": p.sel.groups[train]} if p.cfg.selection == "inner-val" and _tunes(model) else {}
    if hasattr(model, "bind_representation"):
        model.bind_representation(p.rep if rep is None else rep)
    if "subjects" in inspect.signature(model.fit).parameters:
        tune["subjects"] = p.sel.groups[train]
    model.fit(X[train], p.sel.y[train], n_classes=len(p.sel.classes), selection=selection,
              class_names=p.sel.classes, **tune)
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
        seconds=round(seconds, 3), training=training, tuning=getattr(model, "tuning_", None),
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


def units(p: Plan, todo: list[Job]) -> list[list[Job]]:
    """Units of work: one fold each, or groups of one seed's folds trained stacked."""
    if not todo or training_path(p)["path"] != "fold-parallel":
        return [[job] for job in todo]
    units = []
    for seed in dict.fromkeys(s for _, _, s in todo):
        jobs = [j for j in todo if j[2] == seed]
        size = p.cfg.fold_group or -(-len(jobs) // worker_count(p))
        units += [jobs[i:i + size] for i in range(0, len(jobs), size)]
    return units


def run_unit(p: Plan, X_shared: np.ndarray | None, unit: list[Job]) -> list[FoldRecord]:
    if len(unit) == 1 and training_path(p)["path"] == "sequential":
        index, fold, seed = unit[0]
        return [run_fold(p, fold, index, seed, X_shared)]
    return run_fold_group(p, unit, X_shared)
