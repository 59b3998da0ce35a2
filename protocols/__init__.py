"""Evaluation protocols: splitters over samples with groups = subject."""
from benchmark.core.registry import Registry

PROTOCOLS = Registry("protocol")
PROTOCOLS.register_lazy("cde", "protocols.cde:CDE")
PROTOCOLS.register_lazy("loso", "protocols.loso:LOSO")
PROTOCOLS.register_lazy("stratified7", "protocols.stratified7:Stratified7")
PROTOCOLS.register_lazy("identity", "protocols.identity:Identity")
PROTOCOLS.register_lazy("ldo", "protocols.ldo:LDO")
