"""The core every other layer stands on: samples, registries, metrics, bootstrap,
the cache root (``paths``) and the compute device (``device``). It imports nothing
from the rest of the project."""
