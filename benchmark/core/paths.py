"""The one place that knows where derived data is cached.

The root is ``$MER_BENCHMARK_CACHE`` (read here and nowhere else) or
``~/.cache/mer-benchmark``. Worker processes inherit it through the environment,
which is why :func:`use_cache_root` sets the variable rather than a global.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

CACHE_ENV = "MER_BENCHMARK_CACHE"


def cache_root() -> Path:
    """Root of every cache: synthetic data, representation arrays, checkpoints."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mer-benchmark"


def cache_dir(kind: str) -> Path:
    """Sub-folder of the cache root for one kind of artefact (``reps``, ``dface``...)."""
    return cache_root() / kind


@contextlib.contextmanager
def use_cache_root(path: str | Path) -> Iterator[Path]:
    """Point the cache (of this process and the workers it starts) at ``path`` for a while."""
    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(path)
    try:
        yield Path(path)
    finally:
        if old is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = old
