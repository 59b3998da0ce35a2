"""Classifiers: scikit-learn-style estimators declaring the input kinds they accept."""
from benchmark.registry import Registry

MODELS = Registry("model")
MODELS.register_lazy("ststnet", "models.ststnet:STSTNet")
