"""Motion representations: scikit-learn-style estimators from samples to arrays."""
from benchmark.core.registry import Registry

REPRESENTATIONS = Registry("representation")
REPRESENTATIONS.register_lazy("precomputed", "representations.precomputed:Precomputed")
REPRESENTATIONS.register_lazy("apex", "representations.apex:Apex")
REPRESENTATIONS.register_lazy("tvl1", "representations.flow:TVL1")
REPRESENTATIONS.register_lazy("farneback", "representations.flow:Farneback")
REPRESENTATIONS.register_lazy("framediff", "representations.framediff:FrameDiff")
REPRESENTATIONS.register_lazy("frames", "representations.sampling:Frames")
REPRESENTATIONS.register_lazy("dface", "representations.dface:DFace")
REPRESENTATIONS.register_lazy("dfe", "representations.dfe:DFE")
REPRESENTATIONS.register_lazy("dfe-bow", "representations.dfe:DFEBow")
