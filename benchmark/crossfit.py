"""Cross-fitted pretraining: K checkpoints trained on the run's own clips, none on its test subjects.

A representation that cross-fits (D-FACE ``pretrain=crossfit``) has its subjects dealt into K groups
(``crossfit_assignment``) and K checkpoints built, the k-th on every clip but group k's
(``build_crossfit``). How a run uses them depends on its folds:

- subject-wise folds (LOSO, CDE): each fold's clone of the representation gets the checkpoint of
  its test subject's group (``fold_rep_params``), which never saw that subject;
- folds over samples (the identity probe, whose classes are the subjects and whose every fold
  holds every subject): ``OwnGroupEncoding`` encodes *each sample* with the checkpoint of its own
  subject's group, so no sample's encoder saw its subject, whichever fold it falls in.
"""
from __future__ import annotations

import time
import zlib
from collections.abc import Sequence

import numpy as np
from sklearn.base import clone

from benchmark.core.samples import DatasetReport, Sample
from benchmark.provenance import portable_paths
from protocols.base import LabelledSet
from representations.base import Representation


def crossfit_assignment(rep: Representation, report: DatasetReport, sel: LabelledSet, folds,
                        split_seed: int, subject_wise: bool = True) -> dict[str, int] | None:
    """Subject -> cross-fitting group (None: ``rep`` does not cross-fit). Each database's subjects
    are shuffled with the split seed (not a run seed) and dealt into K groups, so every seed and
    every run on that database share the groups and hence the checkpoints. Refused: K above the
    run's subjects; with ``subject_wise`` folds, a fold whose test subjects lie in two groups."""
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
    for f in folds if subject_wise else ():
        if len(in_test := {groups[s] for s in sel.groups[f.test]}) != 1:
            raise ValueError(f"pretrain=crossfit: fold {f.name}'s test subjects lie in {len(in_test)} of the {k} "
                             "subject groups; cross-fitting needs subject-wise folds (e.g. leave-one-subject-out)")
    return groups


def build_crossfit(rep: Representation, report: DatasetReport, sel: LabelledSet, folds, groups: dict[str, int],
                   split_seed: int, allow_contamination: bool = False,
                   subject_wise: bool = True) -> tuple[Representation, dict, dict]:
    """The K checkpoints, trained on every clip (with frames) of the run's databases. Returns the
    run's representation, its record of them (config.json) and each fold's ``set_params``: with
    ``subject_wise`` folds ``rep`` itself and each fold's ``checkpoint=``, the one whose group holds
    its test subject(s), which it never saw; else an ``OwnGroupEncoding`` of ``rep`` and none.

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
    paths = [c["path"] for c in ckpts]
    record = {"k": len(ckpts), "split_seed": split_seed, "databases": sorted(dbs), "clips": len(pool),
              "seconds": round(time.perf_counter() - t0, 1),  # this run's: ~0 when the checkpoints were cached
              "build_seconds": round(sum(c["seconds"] for c in ckpts), 1), "groups": groups,
              **({"init": portable_paths(init)} if init is not None else {}),
              "checkpoints": portable_paths([{k: v for k, v in c.items() if k != "init"} for c in ckpts])}
    if not subject_wise:  # e.g. the identity probe: each sample by its own group's checkpoint
        return (OwnGroupEncoding(rep, {s: paths[g] for s, g in groups.items()}),
                {**record, "fold_groups": {}, "encoding": OwnGroupEncoding.encoding}, {})
    fold_group = {f.name: groups[sel.groups[f.test[0]]] for f in folds}  # one group each: crossfit_assignment
    return rep, {**record, "fold_groups": fold_group}, {name: {"checkpoint": paths[g]} for name, g in fold_group.items()}


class OwnGroupEncoding(Representation):
    """A cross-fitting representation for folds over samples: sample ``s`` is encoded with
    ``checkpoints[s.subject]``, the checkpoint of its subject's group, trained without it.

    Not learned per fold (the encodings are the same in every fold), and no sample's encoder
    saw its subject, so ``training_subjects`` is empty (the base's). The checkpoints differ
    between groups, so a probe can partly tell groups apart by the encoder alone (measured in
    results/DFACE.md, identity probe)."""

    encoding = "own-group: each sample by the cross-fitted checkpoint that never saw its subject"

    def __init__(self, rep: Representation, checkpoints: dict[str, str]):
        self.rep = rep
        self.checkpoints = checkpoints
        self.kind = rep.kind

    def needs_frames(self) -> bool:
        return self.rep.needs_frames()

    def has_inputs(self, sample: Sample) -> bool:
        return self.rep.has_inputs(sample)

    def recipe(self) -> dict:
        return {**self.rep.recipe(), "encoding": self.encoding}

    def transform(self, samples: Sequence[Sample]) -> np.ndarray:
        by_ckpt: dict[str, list[int]] = {}
        for i, s in enumerate(samples):
            by_ckpt.setdefault(self.checkpoints[str(s.subject)], []).append(i)
        out, report, stats = None, [], {}
        for path, idx in sorted(by_ckpt.items()):
            part = [samples[i] for i in idx]
            rep = clone(self.rep).set_params(checkpoint=path).fit(part)
            X = rep.transform(part)
            if out is None:
                out = np.zeros((len(samples), *X.shape[1:]), X.dtype)
            out[idx] = X
            report += getattr(rep, "report_", None) or []
            for k, v in (getattr(rep, "cache_stats_", None) or {}).items():
                if isinstance(v, int):
                    stats[k] = stats.get(k, 0) + v
        self.report_, self.cache_stats_ = report, stats
        return out
