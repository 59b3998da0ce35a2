"""Planning a run: everything fixed before any fold trains.

``plan(cfg)`` loads the plugins, checks the names and parameters, reads the dataset, lets the
protocol select and split the samples, decides which samples without frames are dropped or
blanked (``benchmark.inputs``), builds the representation's resources (``prepare``; a
cross-fitting representation's K checkpoints, ``benchmark.crossfit``) and the model
template, and checks published weights; ``run_header`` is what config.json records of
it; ``training_path`` and ``worker_count`` decide how the folds will be trained.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmark import rundir
from benchmark.config import RunConfig, check_params
from benchmark.core.device import resolve_device
from benchmark.core.samples import DatasetReport
from benchmark.crossfit import build_crossfit, crossfit_assignment
from benchmark.datasets import read_dataset
from benchmark.inputs import apply_frames_policy, inputs_record
from benchmark.plugins import load_plugins
from benchmark.provenance import (checkpoint_records, data_fingerprint, git_commit, input_fingerprint, machine, now,
                                  package_versions)
from benchmark.results import FoldRecord
from models import MODELS
from models.base import Model, TorchClassifier
from protocols import PROTOCOLS
from protocols.base import Fold, LabelledSet, Protocol
from representations import REPRESENTATIONS
from representations.base import Representation


class IncompatibleError(ValueError):
    """A representation/model pair that cannot work together."""


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
    plugins: tuple[dict, ...] = ()  # what load_plugins() recorded of the user code this run imported
    crossfit: dict | None = None  # cross-fitted pretraining: groups, checkpoints, cost (config.json)
    fold_rep_params: dict = field(default_factory=dict)  # fold name -> set_params of the fold's representation

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
    plugins = tuple(load_plugins(cfg.plugins))  # user entries register before their names are looked up
    check_compatible(cfg.rep, cfg.model)
    check_params(cfg)  # parameter names and epochs, before any data is read
    protocol = PROTOCOLS.get(cfg.protocol)(dataset=cfg.dataset)
    report = read_dataset(protocol.source, data_root(cfg) / protocol.source, **cfg.data_params)
    sel, rep_params = apply_frames_policy(cfg, report, protocol.select(report))  # benchmark/inputs.py
    folds = protocol.split(sel, seed=cfg.split_seed)
    rep = REPRESENTATIONS.get(cfg.rep)(**rep_params)
    groups = crossfit_assignment(rep, report, sel, folds, cfg.split_seed,  # its errors come before any work
                                 subject_wise=protocol.subject_wise)
    rep.prepare()  # e.g. a default checkpoint, built once
    crossfit, fold_rep_params = None, {}
    if groups:
        rep, crossfit, fold_rep_params = build_crossfit(rep, report, sel, folds, groups, cfg.split_seed,
                                                        cfg.allow_contamination, subject_wise=protocol.subject_wise)
    params = dict(cfg.model_params)
    if cfg.epochs is not None:
        params["epochs"] = cfg.epochs
    model = MODELS.get(cfg.model)(**params)
    if "device" in model.get_params():
        model.set_params(device=str(resolve_device(cfg.device)))
    p = Plan(cfg, sel, tuple(folds), rep, model, report, protocol, plugins=plugins, crossfit=crossfit,
             fold_rep_params=fold_rep_params)
    if cfg.weights or cfg.selection == "published-weights":  # every checkpoint checked before any prediction
        from benchmark.evaluate import check_weights

        p = replace(p, weights=check_weights(p))
    return p


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
        **({"crossfit": p.crossfit} if p.crossfit is not None else {}),
        "packages": package_versions(), "plugins": list(p.plugins),
        "git_commit": git_commit(), "machine": machine(), "started": now(),
    }
