"""A linear probe: multinomial logistic regression on standardised, flattened inputs.

Used by the ``identity`` protocol (can the subject be read off a representation
with a linear map?), and usable as a plain linear baseline under any protocol.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from models import MODELS
from models.base import Model, EpochChoiceSet
from models.tuning import fit_tuned

# inner-val grid (models/tuning.py): C from strong to weak regularisation (ties keep the stronger)
GRID = [{"C": [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]}]


@MODELS.register()
class LogReg(Model):
    """scikit-learn ``LogisticRegression`` (lbfgs, L2) on flattened inputs.

    Args:
        C: inverse L2 strength (scikit-learn's default 1.0).
        max_iter: lbfgs iterations.
        standardize: zero mean / unit variance per feature, fitted on the
            training fold only.
        class_weight: ``None`` or ``"balanced"``.
        seed: random_state (lbfgs is deterministic; kept for the runner's seeding).

    ``groups`` (the training samples' subjects, passed by the runner under
    ``--selection inner-val`` only): ``C`` is chosen from ``GRID`` (1e-3 .. 1e2)
    by subject-grouped CV on the training fold (``models.tuning.fit_tuned``).
    """

    accepts = frozenset({"vector", "flow_image", "image", "tokens"})  # tokens: flattened like the rest

    def __init__(self, C: float = 1.0, max_iter: int = 2000, standardize: bool = True,
                 class_weight: str | None = None, seed: int = 0):
        self.C = C
        self.max_iter = max_iter
        self.standardize = standardize
        self.class_weight = class_weight
        self.seed = seed

    @staticmethod
    def _flat(X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return X.reshape(len(X), -1)

    def fit(self, X, y, n_classes: int, selection: EpochChoiceSet | None = None,
            class_names: Sequence[str] | None = None, groups=None) -> "LogReg":
        # selection (epoch choice) has no meaning for a convex model: ignored
        if groups is not None:
            return fit_tuned(self, GRID, X, y, groups, n_classes)
        X = self._flat(X)
        self.scaler_ = StandardScaler().fit(X) if self.standardize else None
        if self.scaler_ is not None:
            X = self.scaler_.transform(X)
        self.n_classes_ = n_classes
        self.clf_ = LogisticRegression(C=self.C, max_iter=self.max_iter, class_weight=self.class_weight,
                                       random_state=self.seed).fit(X, np.asarray(y))
        return self

    def predict_proba(self, X) -> np.ndarray:
        X = self._flat(X)
        if self.scaler_ is not None:
            X = self.scaler_.transform(X)
        out = np.zeros((len(X), self.n_classes_))
        out[:, self.clf_.classes_] = self.clf_.predict_proba(X)  # classes absent in training get 0
        return out
