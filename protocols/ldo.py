"""LDO: leave-one-database-out over the MEGC2019 composite (MEGC2018's holdout-database test).

Three folds, named after the held-out database: train on two of CASME II / SAMM / SMIC,
test on the third, on the composite's three classes (negative / positive / surprise).
Subjects are database-qualified (``casme2/sub01``), so no subject of the test database is
ever in training, by construction. Each sample is tested exactly once; the pooled
UF1/UAR and the per-database blocks of the run's metrics come out of the ordinary scoring:
the block of a database is the score of the fold that held it out. Confidence intervals
resample samples (``bootstrap_unit = "sample"``): a database is one fold, so there is no
fold-level unit to resample, and the subject-level interval is stored beside it.

Every database must be in the selection: ``--dataset`` (one database), a list without one
of them, or ``on_missing=drop`` removing all of a database's samples is a ProtocolError.
"""
from __future__ import annotations

import numpy as np

from protocols import PROTOCOLS
from protocols.base import Fold, Protocol, ProtocolError, LabelledSet


@PROTOCOLS.register()
class LDO(Protocol):
    source = "megc2019"
    label_set = "megc3"
    bootstrap_unit = "sample"
    databases = ("casme2", "samm", "smic")

    def split(self, sel: LabelledSet, seed: int = 0) -> list[Fold]:
        dbs = np.array([s.dataset for s in sel.samples])
        present = [d for d in self.databases if (dbs == d).any()]
        absent = [d for d in self.databases if d not in present]
        if absent:
            why = f" (--dataset {self.dataset} keeps one database)" if self.dataset else ""
            raise ProtocolError(f"ldo: leave-one-database-out needs samples of {', '.join(self.databases)}; "
                                f"none of {', '.join(absent)} in the selection{why}")
        other = sorted(set(dbs) - set(self.databases))
        if other:
            raise ProtocolError(f"ldo: samples of unknown database(s) {', '.join(other)}")
        folds = []
        for d in self.databases:
            test, train = np.flatnonzero(dbs == d), np.flatnonzero(dbs != d)
            folds.append(Fold(d, train, test))
        return folds

    def describe(self) -> dict:
        return {**super().describe(), "databases": list(self.databases),
                "folds": "one per database: train on the other two, test on it",
                "subjects": "no subject of the test database is ever in training (by construction: "
                            "each fold's test set is a whole database)"}
