"""Motion representations: scikit-learn-style estimators from samples to arrays."""
from benchmark.registry import Registry

REPRESENTATIONS = Registry("representation")
REPRESENTATIONS.register_lazy("precomputed", "representations.precomputed:Precomputed")
REPRESENTATIONS.register_lazy("apex", "representations.apex:Apex")
