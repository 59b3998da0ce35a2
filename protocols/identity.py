"""Identity-leakage probe: how well a representation predicts the *subject*.

A motion representation that carries who the person is (face shape, skin
texture surviving in flow edges or difference images) lets a classifier
shortcut emotion recognition within a database, and fails across subjects.
D-FACE claims action tokens are identity-invariant while flow is not; this
protocol makes that measurable for every representation: the classes are the
subjects, folds are stratified over samples (every subject is in every
training fold), and a linear probe (``--model logreg``) is scored with
accuracy and balanced accuracy (UAR) against chance.

Subjects with fewer than ``min_samples`` samples (default 2) cannot be both
trained on and tested, and are left out (listed in the selection's
``excluded`` as ``subject:<name>``). Subjects with fewer samples than folds
are kept: they are tested in as many folds as they have samples and trained
on in the others. Chance levels (majority-class accuracy, ``1/n_subjects``
balanced accuracy) are in ``describe()``, i.e. in the run's config.json.

``--dataset casme2`` probes the CASME II part of the MEGC2019 composite (the
145 CDE samples).
"""
from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
from sklearn.model_selection import StratifiedKFold

from benchmark.core.samples import DatasetReport
from protocols import PROTOCOLS
from protocols.base import Fold, Protocol, ProtocolError, LabelledSet


@PROTOCOLS.register()
class Identity(Protocol):
    source = "megc2019"
    label_set = "subject"
    bootstrap_unit = "sample"
    subject_wise = False
    n_folds = 5
    min_samples = 2

    def __init__(self, dataset: str | None = None):
        super().__init__(dataset)
        self._chance: dict = {}

    def select(self, report: DatasetReport) -> LabelledSet:
        samples = [s for s in report.samples if not self.dataset or s.dataset == self.dataset]
        if not samples:
            raise ProtocolError(f"identity: no samples for dataset {self.dataset!r}")
        counts = Counter(s.subject for s in samples)
        keep_subjects = sorted(k for k, n in counts.items() if n >= self.min_samples)
        if len(keep_subjects) < 2:
            raise ProtocolError("identity: needs at least two subjects with "
                                f"{self.min_samples}+ samples")
        excluded = {f"subject:{k}": n for k, n in sorted(counts.items()) if n < self.min_samples}
        kept = [s for s in samples if s.subject in set(keep_subjects)]
        y = np.array([keep_subjects.index(s.subject) for s in kept])
        n_per = np.bincount(y)
        self._chance = {"n_subjects": len(keep_subjects), "n_samples": len(kept),
                        "majority_accuracy": float(n_per.max() / len(kept)),
                        "balanced_accuracy": 1.0 / len(keep_subjects),
                        "subjects_below_n_folds": int((n_per < self.n_folds).sum())}
        return LabelledSet(kept, y, tuple(keep_subjects), excluded)

    def split(self, sel: LabelledSet, seed: int = 0) -> list[Fold]:
        if np.bincount(sel.y).max() < self.n_folds:  # sklearn's own message names no protocol
            raise ProtocolError(f"identity: {self.n_folds}-fold probe needs a subject with {self.n_folds}+ "
                                f"samples; the largest has {np.bincount(sel.y).max()}")
        skf = StratifiedKFold(n_splits=self.n_folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():  # small subjects are expected and recorded in describe()
            warnings.filterwarnings("ignore", message="The least populated class")
            splits = list(skf.split(np.zeros(len(sel.y)), sel.y))
        return [Fold(f"fold{k + 1}", np.sort(tr), np.sort(te)) for k, (tr, te) in enumerate(splits)]

    def describe(self) -> dict:
        return {**super().describe(), "n_folds": self.n_folds, "min_samples_per_subject": self.min_samples,
                "folds": "StratifiedKFold over samples, shuffled with the split seed", "chance": self._chance}
