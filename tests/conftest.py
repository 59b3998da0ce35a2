"""Shared pytest fixtures (keep each fixture self-contained; append new ones below)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO_ROOT.parent / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the repository (real data, read in place, never copied)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not found (tests on real data skipped)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synthetic_tiny(tmp_path_factory) -> Path:
    """The synthetic dataset at ``scale="tiny"`` (all databases with frames), generated once per session."""
    from benchmark.datasets.synthetic import generate

    return generate(tmp_path_factory.mktemp("synthetic-tiny") / "root", seed=0, scale="tiny")


@pytest.fixture
def rep_cache(tmp_path, monkeypatch) -> Path:
    """A private representation cache (``$MER_BENCHMARK_CACHE``) and one extraction thread."""
    monkeypatch.setenv("MER_BENCHMARK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MER_BENCHMARK_JOBS", "1")
    return tmp_path / "cache" / "reps"


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors on a shared 2-core machine: a second thread costs more than it gives.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def toy_images(n_per_class: int = 4, shape=(3, 28, 28), seed: int = 0):
    """Random 0..255 float32 inputs of ``shape`` and balanced labels of three classes."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 255, (3 * n_per_class, *shape)).astype(np.float32)
    return X, np.repeat(np.arange(3), n_per_class)
