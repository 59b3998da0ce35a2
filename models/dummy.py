"""Chance: scikit-learn's ``DummyClassifier(strategy="stratified")``.

It ignores the inputs and draws each test sample's class at random from the training
fold's class frequencies, so a pooled UF1/UAR is what chance scores under the protocol's
class balance (both about ``1 / n_classes`` in expectation: per class, precision and recall
are both about the class's share). The draws are seeded by ``seed`` (the runner sets it
per fold), so a run is reproducible; ``predict_proba`` returns the draws as one-hot rows
(what ``DummyClassifier.predict_proba`` gives for this strategy).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.dummy import DummyClassifier

from models import MODELS
from models.base import Model, EpochChoiceSet

STRATEGIES = ("stratified", "uniform", "most_frequent", "prior")


@MODELS.register()
class Dummy(Model):
    """Stratified random predictions (a chance row for every table).

    Args:
        strategy: ``"stratified"`` (default), or another ``DummyClassifier`` strategy
            (``uniform``, ``most_frequent``, ``prior``) for other chance baselines.
        seed: random_state of the draws.

    Accepts every input kind (only the number of samples is read). ``selection`` is ignored.
    Classes missing from the training fold get probability 0.
    """

    accepts = frozenset({"flow_image", "image", "frames", "tokens", "vector"})

    def __init__(self, strategy: str = "stratified", seed: int = 0):
        self.strategy = strategy
        self.seed = seed

    def fit(self, X, y, n_classes: int, selection: EpochChoiceSet | None = None,
            class_names: Sequence[str] | None = None) -> "Dummy":
        if self.strategy not in STRATEGIES:
            raise ValueError(f"dummy: strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        y = np.asarray(y)
        if len(X) != len(y):
            raise ValueError(f"dummy: {len(X)} inputs but {len(y)} labels")
        self.n_classes_ = n_classes
        self.clf_ = DummyClassifier(strategy=self.strategy, random_state=self.seed).fit(np.zeros((len(y), 1)), y)
        return self

    def predict_proba(self, X) -> np.ndarray:
        out = np.zeros((len(X), self.n_classes_))
        out[:, self.clf_.classes_] = self.clf_.predict_proba(np.zeros((len(X), 1)))
        return out
