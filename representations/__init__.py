"""Motion representations: scikit-learn-style estimators from samples to arrays.

This table is the one place a built-in representation is named; its class carries
a bare ``@REPRESENTATIONS.register()``. ``kind`` is the input kind it produces
(``representations.base.KINDS``), declared here so ``benchmark list`` needs no import.
"""
from benchmark.core.registry import Registry

REPRESENTATIONS = Registry("representation")
REPRESENTATIONS.register_lazy("precomputed", "representations.precomputed:Precomputed", kind="flow_image")
REPRESENTATIONS.register_lazy("apex", "representations.apex:Apex", kind="image")
REPRESENTATIONS.register_lazy("tvl1", "representations.flow:TVL1", kind="flow_image")
REPRESENTATIONS.register_lazy("farneback", "representations.flow:Farneback", kind="flow_image")
REPRESENTATIONS.register_lazy("framediff", "representations.framediff:FrameDiff", kind="image")
REPRESENTATIONS.register_lazy("frames", "representations.sampling:Frames", kind="frames")
REPRESENTATIONS.register_lazy("dface", "representations.dface:DFace", kind="tokens")
REPRESENTATIONS.register_lazy("dface-pairs", "representations.dface:DFacePairs", kind="pairs")
REPRESENTATIONS.register_lazy("dfe", "representations.dfe:DFE", kind="tokens")
REPRESENTATIONS.register_lazy("dfe-bow", "representations.dfe:DFEBow", kind="vector")
REPRESENTATIONS.register_lazy("lbptop", "representations.lbptop:LBPTOP", kind="vector")
REPRESENTATIONS.register_lazy("mdmo", "representations.mdmo:MDMO", kind="vector")
REPRESENTATIONS.register_lazy("effnet-lite0", "representations.imagenet:EffNetLite0", kind="vector")
