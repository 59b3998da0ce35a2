"""Classical classifiers on fixed-length features (scikit-learn).

``svm``: a support vector machine on standardised features, the downstream
classifier of DFE's bag-of-words evaluation (papers/001: "We use Support Vector
Machines (SVM) for classification tasks") and a classical baseline on flattened
images.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from models import MODELS
from models.base import Model, EpochChoiceSet
from models.tuning import fit_tuned

FEATURES = ("auto", "raw", "bow")
KERNELS = ("rbf", "linear", "poly", "sigmoid", "linearsvc")


def bag_of_words(tokens: np.ndarray, n_codes: int) -> np.ndarray:
    """(N, ...) integer codes -> (N, n_codes) code frequencies (each row sums to 1
    over the codes below ``n_codes``; larger codes, unseen in training, are dropped)."""
    flat = np.asarray(tokens).reshape(len(tokens), -1).astype(np.int64)
    if (flat < 0).any():
        raise ValueError("token codes must be non-negative integers")
    counts = np.zeros((len(flat), n_codes))
    for i, row in enumerate(flat):
        counts[i] = np.bincount(row[row < n_codes], minlength=n_codes)
    return counts / max(flat.shape[1], 1)


@MODELS.register()
class SVM(Model):
    """Support vector machine on standardised features.

    Inputs: ``vector`` (N, D) as is; ``image`` / ``flow_image`` flattened;
    ``tokens`` (integer codes, any shape per sample) as a bag of words: the
    frequency of each code in the sample, over codes ``0 .. n_codes_-1`` with
    ``n_codes_`` = the largest training code + 1 (DFE's BoW). ``features``:
    ``"auto"`` (bag of words for integer arrays, else raw), ``"raw"``, ``"bow"``
    -- a token representation that stores codes as floats needs ``features=bow``.

    Args:
        kernel: ``rbf`` (default), ``linear``, ``poly``, ``sigmoid`` (libsvm
            ``SVC``, one-vs-one) or ``linearsvc`` (liblinear ``LinearSVC``,
            one-vs-rest, squared hinge).
        C, gamma: as in scikit-learn (``gamma`` only for SVC kernels).
        class_weight: ``None`` or ``"balanced"`` (inverse class frequency).
        standardize: zero mean / unit variance per feature, fitted on the
            training fold only (default True).
        probability: ``False`` (default): ``predict_proba`` is the softmax of
            ``decision_function`` (one-vs-rest scores; for two classes ``[-d, d]``);
            its arg-max is the SVM's decision, but it is not calibrated.
            ``True``: Platt scaling, ``CalibratedClassifierCV(SVC, method="sigmoid",
            cv=5, ensemble=False)`` (scikit-learn's replacement for the deprecated
            ``SVC(probability=True)``): slower, needs 5 training samples per class,
            and its arg-max can differ from the SVM's decision; SVC kernels only.
        features: see above.
        max_iter: solver iteration cap (-1: none for SVC; LinearSVC uses 10000 then).
        seed: solver random state (liblinear's coordinate order; SVC's is unused).

    ``groups`` (the training samples' subjects, passed by the runner under
    ``--selection inner-val`` only): ``kernel``, ``C`` and ``gamma`` are chosen by
    subject-grouped CV on the training fold (``models.tuning.fit_tuned``) from
    linear: C in {0.001, 0.01, 0.1, 1}, and rbf: C in {0.1, 1, 10, 100} x gamma in
    {0.1, 1, 10} / D (D features; 1/D is about ``"scale"`` for standardised features);
    the other arguments are kept.

    ``selection`` is ignored: there are no epochs to choose. Classes missing
    from the training fold get probability 0; a fold with one class predicts it.
    """

    accepts = frozenset({"vector", "tokens", "image", "flow_image"})

    def __init__(self, kernel: str = "rbf", C: float = 1.0, gamma: str | float = "scale",
                 class_weight: str | None = None, standardize: bool = True, probability: bool = False,
                 features: str = "auto", max_iter: int = -1, seed: int = 0):
        self.kernel = kernel
        self.C = C
        self.gamma = gamma
        self.class_weight = class_weight
        self.standardize = standardize
        self.probability = probability
        self.features = features
        self.max_iter = max_iter
        self.seed = seed

    def _check(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"unknown kernel {self.kernel!r} (known: {', '.join(KERNELS)})")
        if self.features not in FEATURES:
            raise ValueError(f"features must be one of {', '.join(FEATURES)}, not {self.features!r}")
        if self.probability and self.kernel == "linearsvc":
            raise ValueError("probability=True needs an SVC kernel (LinearSVC has no Platt scaling)")

    @staticmethod
    def tuning_grid(d: int) -> list[dict]:
        """The inner-val grid for ``d`` features (ties keep the earlier, more regularised point):
        linear C 1e-3..1, rbf C 0.1..1000 x gamma (0.01..10) / d (1/d is "scale" on standardised
        features). The rbf ranges were widened once, before any matrix run, because on real CASME II
        flow most inner searches of a narrower grid (C <= 100, gamma >= 0.1/d) ended on its corner."""
        return [{"kernel": ["linear"], "C": [1e-3, 1e-2, 1e-1, 1.0]},
                {"kernel": ["rbf"], "C": [0.1, 1.0, 10.0, 100.0, 1000.0],
                 "gamma": [f / d for f in (0.01, 0.1, 1.0, 10.0)]}]

    def _features(self, X) -> np.ndarray:
        X = np.asarray(X)
        if self.bow_:
            return bag_of_words(X, self.n_codes_)
        return X.reshape(len(X), -1).astype(np.float64)

    def _classifier(self):
        if self.kernel == "linearsvc":
            return LinearSVC(C=self.C, class_weight=self.class_weight, random_state=self.seed,
                             max_iter=self.max_iter if self.max_iter > 0 else 10_000)
        svc = SVC(kernel=self.kernel, C=self.C, gamma=self.gamma, class_weight=self.class_weight,
                  max_iter=self.max_iter, random_state=self.seed)
        return CalibratedClassifierCV(svc, method="sigmoid", cv=5, ensemble=False) if self.probability else svc

    def fit(self, X, y, n_classes: int, selection: EpochChoiceSet | None = None,
            class_names: Sequence[str] | None = None, groups=None) -> "SVM":
        self._check()
        X, y = np.asarray(X), np.asarray(y)
        self.bow_ = self.features == "bow" or (self.features == "auto" and X.dtype.kind in "iu")
        self.n_codes_ = int(X.max()) + 1 if self.bow_ else None
        if groups is not None:
            return fit_tuned(self, self.tuning_grid(self._features(X[:1]).shape[1]), X, y, groups, n_classes)
        F = self._features(X)
        self.scaler_ = StandardScaler().fit(F) if self.standardize else None
        if self.scaler_ is not None:
            F = self.scaler_.transform(F)
        self.n_classes_, self.classes_ = n_classes, np.unique(y)
        self.clf_ = self._classifier().fit(F, y) if len(self.classes_) > 1 else None
        self.weights_source_ = "scratch"
        return self

    def predict_proba(self, X) -> np.ndarray:
        F = self._features(X)
        if self.scaler_ is not None:
            F = self.scaler_.transform(F)
        out = np.zeros((len(F), self.n_classes_))
        if self.clf_ is None:
            out[:, self.classes_[0]] = 1.0
            return out
        if self.probability:
            p = self.clf_.predict_proba(F)
        else:
            d = self.clf_.decision_function(F)
            d = np.stack([-d, d], 1) if d.ndim == 1 else d
            e = np.exp(d - d.max(1, keepdims=True))
            p = e / e.sum(1, keepdims=True)
        out[:, self.clf_.classes_] = p
        return out
