"""Hyperparameter choice of the classical heads under ``--selection inner-val``.

A grid search by cross-validation grouped by subject inside the training fold
(``GroupKFold(min(5, subjects))``, scored by UF1 = macro-F1 over the classes present),
then a refit on the whole training fold. The runner passes the training samples'
subjects (``groups``) only under inner-val; the test subject is never among them.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, GroupKFold
from threadpoolctl import threadpool_limits

from benchmark.core.metrics import uf1


def _uf1(estimator, X, y) -> float:
    return uf1(y, estimator.predict_proba(X).argmax(1))


def fit_tuned(model, grid: list[dict], X, y, groups, n_classes: int):
    """Set ``model``'s hyperparameters to the grid point of best grouped-CV UF1 (ties: the
    first in grid order), fit it on all of ``X`` and keep the search in ``model.tuning_``:
    ``{"grid", "chosen", "cv_uf1", "cv"}``. Fewer than two subjects is an error (no
    silent fallback to defaults, so a run's folds are all tuned or none)."""
    groups = np.asarray(groups)
    n = len(np.unique(groups))
    if n < 2:
        raise ValueError(f"{type(model).__name__}: choosing hyperparameters by subject-grouped CV "
                         f"needs at least two training subjects, this fold has {n}")
    cv = GroupKFold(n_splits=min(5, n))
    search = GridSearchCV(clone(model), grid, scoring=_uf1, cv=cv, refit=False, n_jobs=1)
    with threadpool_limits(1):  # dozens of small fits: extra BLAS threads only contend (30x slower on a busy CPU)
        search.fit(X, y, groups=groups, n_classes=n_classes)
        if not np.isfinite(search.best_score_):
            raise ValueError(f"{type(model).__name__}: every grid point failed in the inner CV")
        model.set_params(**search.best_params_)
        model.fit(X, y, n_classes)  # without groups: the plain fit, with the chosen values
    model.tuning_ = {"grid": grid, "chosen": dict(search.best_params_),
                     "cv_uf1": round(float(search.best_score_), 4), "cv": f"GroupKFold({cv.n_splits})"}
    return model
