"""Base class of every representation.

``__init__`` only stores hyperparameters (scikit-learn convention, so
``sklearn.base.clone`` gives the runner a fresh copy per fold); ``fit`` learns
per-fold state on training samples only; ``transform`` maps samples to one
array whose first axis is the sample axis.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.base import BaseEstimator

from benchmark.samples import Sample

# Input kinds a representation produces and a model declares it accepts.
KINDS = ("flow_image", "image", "frames", "tokens", "vector")


class Representation(BaseEstimator):
    """Stateless by default; learned representations override ``fit``."""

    kind: str = "image"
    learned: bool = False  # True: fit() learns from training samples (refit per fold)

    def fit(self, samples: Sequence[Sample], y: np.ndarray | None = None) -> "Representation":
        return self

    def transform(self, samples: Sequence[Sample]) -> np.ndarray:
        raise NotImplementedError

    def recipe(self) -> dict:
        """Everything that determines the output; the cache key is built from it."""
        return {"rep": type(self).registry_name, **self.get_params()}

    def training_subjects(self) -> set[str]:
        """Subjects whose data shaped this representation (contamination check)."""
        return set(getattr(self, "trained_on_", ()) or ())
