"""Planning a run: everything fixed before any fold trains.

``plan(cfg)`` loads the plugins, checks the names and parameters, reads the dataset, lets the
protocol select and split the samples, decides which samples without frames are dropped or
blanked (``benchmark.inputs``), builds the representation's resources (``prepare``; a
cross-fitting representation's K checkpoints, see ``crossfit_assignment``) and the model
template, and checks published weights; ``run_header`` is what config.json records of
it; ``training_path`` and ``worker_count`` decide how the folds will be trained.
"""
from __future__ import annotations

import os
import time
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from benchmark import rundir
from benchmark.config import RunConfig, check_params
from benchmark.core.device import resolve_device
from benchmark.core.samples import DatasetReport
from benchmark.datasets import read_dataset
from benchmark.inputs import apply_frames_policy, inputs_record
from benchmark.plugins import load_plugins
from benchmark.provenance import (checkpoint_records, data_fingerprint, git_commit, input_fingerprint, machine, now,
                                  package_versions, portable_paths)
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
    groups = crossfit_assignment(rep, report, sel, folds, cfg.split_seed)  # its errors come before any work
    rep.prepare()  # e.g. a default checkpoint, built once
    crossfit, fold_rep_params = (_crossfit(rep, report, sel, folds, groups, cfg.split_seed, cfg.allow_contamination)
                                 if groups else (None, {}))
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


def crossfit_assignment(rep: Representation, report: DatasetReport, sel: LabelledSet, folds,
                        split_seed: int) -> dict[str, int] | None:
    """Subject -> cross-fitting group (None: ``rep`` does not cross-fit). Each database's subjects
    are shuffled with the split seed (not a run seed) and dealt into K groups, so every seed and
    every run on that database share the groups and hence the checkpoints. Refused: K above the
    run's subjects, a fold whose test subjects lie in two groups (a subject-wise split is needed)."""
    k = rep.crossfit_groups()
    if not k:
        return None
    n = len(set(sel.groups))
    if k > n:
        raise ValueError(f"crossfit_k={k}: the run has only {n} subjects (each group needs one)")
    groups = {}
    for db in sorted({s.dataset for s in sel.samples}):
        subjects = sorted({s.subject for s in [*report.samples, *sel.samples] if s.dataset == db})
        rng = np.random.default_rng([split_seed, zlib.crc32(db.encode())])
        groups.update({str(s): i % k for i, s in enumerate(rng.permutation(subjects))})
    for f in folds:
        if len(in_test := {groups[s] for s in sel.groups[f.test]}) != 1:
            raise ValueError(f"pretrain=crossfit: fold {f.name}'s test subjects lie in {len(in_test)} of the {k} "
                             "subject groups; cross-fitting needs subject-wise folds (e.g. leave-one-subject-out)")
    return groups


def _crossfit(rep: Representation, report: DatasetReport, sel: LabelledSet, folds, groups: dict[str, int],
              split_seed: int, allow_contamination: bool = False) -> tuple[dict, dict]:
    """The K checkpoints, trained on every clip (with frames) of the run's databases, and each
    fold's ``checkpoint=``: the one whose group holds its test subject(s), which it never saw.

    The starting checkpoint may come from other databases or face videos (``pretrain dface
    --frames ... --datasets ...``, passed as ``checkpoint=``); one that saw a subject of this
    run is refused here, before K checkpoints are built on it (``--allow-contamination``: built,
    and the runner marks the folds). ``init`` records its sha256, datasets and build cost."""
    seen = rep.training_subjects() & {str(g) for g in sel.groups}
    if seen and not allow_contamination:
        raise ValueError(f"pretrain=crossfit: the starting checkpoint was trained on {len(seen)} subject(s) of "
                         f"this run ({', '.join(sorted(seen)[:5])}{', ...' if len(seen) > 5 else ''}); start from "
                         "one pretrained on other databases (pretrain dface --datasets) or pass --allow-contamination")
    t0 = time.perf_counter()
    dbs = {s.dataset for s in sel.samples}
    pool = [s for s in report.samples if s.dataset in dbs and len(s.frames) >= 2]
    ckpts = rep.crossfit_checkpoints(pool, [groups[s.subject] for s in pool])
    init = next((c["init"] for c in ckpts if "init" in c), None)
    ckpts = [{k: v for k, v in c.items() if k != "init"} for c in ckpts]
    fold_group = {f.name: groups[sel.groups[f.test[0]]] for f in folds}
    record = {"k": len(ckpts), "split_seed": split_seed, "databases": sorted(dbs), "clips": len(pool),
              "seconds": round(time.perf_counter() - t0, 1),  # this run's: ~0 when the checkpoints were cached
              "build_seconds": round(sum(c["seconds"] for c in ckpts), 1), "groups": groups, "fold_groups": fold_group,
              **({"init": portable_paths(init)} if init is not None else {}), "checkpoints": portable_paths(ckpts)}
    return record, {name: {"checkpoint": ckpts[g]["path"]} for name, g in fold_group.items()}


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
