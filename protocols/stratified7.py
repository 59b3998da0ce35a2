"""CASME II 7-class stratified split (Preprocessing Paradox protocol).

One stratified train/val/test split of 78.8 / 10.2 / 11.0 %; macro-F1 over the
classes present in test; 1000x percentile bootstrap over test samples.
"""
from __future__ import annotations

import numpy as np

from protocols import PROTOCOLS
from protocols.base import Fold, Protocol, ProtocolError, LabelledSet

FRACTIONS = (0.788, 0.102, 0.110)  # train, val, test


@PROTOCOLS.register()
class Stratified7(Protocol):
    source = "casme2"
    label_set = "casme2-7"
    bootstrap_unit = "sample"
    subject_wise = False

    def __init__(self, dataset: str | None = None):
        super().__init__(dataset or "casme2")

    def split(self, sel: LabelledSet, seed: int = 0) -> list[Fold]:
        """Per-class allocation; classes too small for a test share stay in train."""
        rng = np.random.default_rng(seed)
        train, val, test = [], [], []
        for c in np.unique(sel.y):
            idx = rng.permutation(np.flatnonzero(sel.y == c))
            n_test = int(round(len(idx) * FRACTIONS[2]))
            n_val = int(round(len(idx) * FRACTIONS[1]))
            test += idx[:n_test].tolist()
            val += idx[n_test:n_test + n_val].tolist()
            train += idx[n_test + n_val:].tolist()
        if not test or not train:  # too few samples per class: an empty test set scores nothing
            raise ProtocolError(f"stratified7: {len(sel.y)} samples are too few for a "
                                f"{FRACTIONS[2]:.1%} test share of any class")
        return [Fold("split", np.sort(train), np.sort(test), np.sort(val))]
