"""Metrics as pure functions of pooled predictions (scikit-learn underneath).

MEGC2019 pools TP/FP/FN of each class over all LOSO folds and then averages the
per-class F1 (UF1) and recall (UAR). On the concatenated out-of-fold predictions
that is exactly macro-F1 and macro-recall over the classes present in the
ground truth, which is what these functions compute. Per-fold averaging is
deliberately absent (8 CDE folds hold one sample).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

Metric = Callable[[np.ndarray, np.ndarray], float]


def _present(y_true: np.ndarray) -> np.ndarray:
    return np.unique(np.asarray(y_true))


def uf1(y_true, y_pred) -> float:
    """Unweighted F1: mean per-class F1 over the classes present in ``y_true``."""
    return float(f1_score(y_true, y_pred, labels=_present(y_true), average="macro", zero_division=0))


def uar(y_true, y_pred) -> float:
    """Unweighted average recall over the classes present in ``y_true``."""
    return float(recall_score(y_true, y_pred, labels=_present(y_true), average="macro", zero_division=0))


def accuracy(y_true, y_pred) -> float:
    return float(accuracy_score(y_true, y_pred))


METRICS: dict[str, Metric] = {"uf1": uf1, "uar": uar, "accuracy": accuracy}


def _counts(y_true: np.ndarray, y_pred: np.ndarray):
    """Per-class TP, FP, FN and the mask of classes present in the truth."""
    k = int(max(y_true.max(), y_pred.max())) + 1
    cm = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)
    tp = np.diag(cm)
    return tp, cm.sum(0) - tp, cm.sum(1) - tp, cm.sum(1) > 0


def _fast_uf1(y_true, y_pred) -> float:
    tp, fp, fn, present = _counts(y_true, y_pred)
    return float(np.mean(2 * tp[present] / (2 * tp[present] + fp[present] + fn[present])))


def _fast_uar(y_true, y_pred) -> float:
    tp, _, fn, present = _counts(y_true, y_pred)
    return float(np.mean(tp[present] / (tp[present] + fn[present])))


def _fast_accuracy(y_true, y_pred) -> float:
    return float(np.mean(y_true == y_pred))


# The same definitions from one bincount, for the bootstrap's thousands of
# replicates (sklearn's input validation costs ~1000x more per call);
# tests/test_metrics.py pins them to the scikit-learn versions above.
FAST_METRICS: dict[str, Metric] = {"uf1": _fast_uf1, "uar": _fast_uar, "accuracy": _fast_accuracy}
HIGHER_IS_BETTER = {"uf1": True, "uar": True, "accuracy": True}


def per_class_f1(y_true, y_pred, n_classes: int) -> list[float]:
    return [float(v) for v in f1_score(y_true, y_pred, labels=list(range(n_classes)), average=None, zero_division=0)]


def confusion(y_true, y_pred, n_classes: int) -> list[list[int]]:
    return confusion_matrix(y_true, y_pred, labels=list(range(n_classes))).tolist()


def summarize(y_true, y_pred, n_classes: int) -> dict:
    """All point metrics of one pooled prediction set."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    out = {name: fn(y_true, y_pred) for name, fn in METRICS.items()}
    out["per_class_f1"] = per_class_f1(y_true, y_pred, n_classes)
    out["confusion"] = confusion(y_true, y_pred, n_classes)
    out["n"] = int(len(y_true))
    return out
