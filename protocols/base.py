"""Shared protocol machinery: label selection, folds, subject-disjoint validation."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, LeaveOneGroupOut

from protocols.labels import LABEL_SETS
from benchmark.core.samples import DatasetReport, Sample


class ProtocolError(ValueError):
    """A protocol cannot be applied to the data it was given."""


@dataclass(frozen=True)
class Fold:
    name: str
    train: np.ndarray
    test: np.ndarray
    val: np.ndarray | None = None


@dataclass
class LabelledSet:
    """Samples a protocol evaluates, their integer labels and what was left out."""

    samples: list[Sample]
    y: np.ndarray
    classes: tuple[str, ...]
    excluded: dict[str, int] = field(default_factory=dict)  # emotion -> count left out

    @property
    def groups(self) -> np.ndarray:
        return np.array([s.subject for s in self.samples])


class Protocol:
    """Base: read ``source`` dataset, map emotions with ``label_set``, split."""

    source = "casme2"
    label_set = "casme2-5"
    bootstrap_unit = "subject"
    databases: Sequence[str] = ()
    subject_wise = True  # no fold's test subject is in its training set (False: folds over samples)

    def __init__(self, dataset: str | None = None):
        self.dataset = dataset

    def describe(self) -> dict:
        return {"protocol": type(self).registry_name, "source": self.source,
                "label_set": self.label_set, "dataset": self.dataset,
                "bootstrap_unit": self.bootstrap_unit}

    def select(self, report: DatasetReport) -> LabelledSet:
        mapping, classes = LABEL_SETS[self.label_set]
        keep, y, excluded = [], [], Counter()
        for s in report.samples:
            if self.dataset and s.dataset != self.dataset:
                continue
            cls = mapping.get(s.emotion)
            if cls is None:
                excluded[s.emotion] += 1
                continue
            keep.append(s)
            y.append(classes.index(cls))
        if not keep:
            what = f" for dataset {self.dataset!r}" if self.dataset else ""
            raise ProtocolError(f"{type(self).registry_name}: no samples with labels in {self.label_set}{what}")
        return LabelledSet(keep, np.array(y), classes, dict(excluded))

    def split(self, sel: LabelledSet, seed: int = 0) -> list[Fold]:
        return loso_folds(sel.groups)


def loso_folds(groups: np.ndarray) -> list[Fold]:
    """Leave-one-subject-out folds, named after the test subject."""
    if len(np.unique(groups)) < 2:
        raise ProtocolError("leave-one-subject-out needs at least two subjects")
    idx = np.zeros(len(groups))
    return [Fold(str(groups[test[0]]), train, test)
            for train, test in LeaveOneGroupOut().split(idx, groups=groups)]


def carve_validation(train: np.ndarray, groups: np.ndarray, frac: float = 0.15, seed: int = 0):
    """Split a training fold into (train, val) with disjoint subjects."""
    sub_groups = groups[train]
    if len(np.unique(sub_groups)) < 2:
        raise ProtocolError("inner validation needs at least two training subjects")
    gss = GroupShuffleSplit(n_splits=1, test_size=frac, random_state=seed)
    tr, va = next(gss.split(train, groups=sub_groups))
    return train[tr], train[va]


def missing_classes(y_train: np.ndarray, n_classes: int) -> list[int]:
    """Classes absent from a training fold (recorded by the runner, not fatal)."""
    return sorted(set(range(n_classes)) - set(np.unique(y_train).tolist()))
