"""Percentile bootstrap CIs around any metric, resampling samples or subjects.

The resampling unit, iteration count and seed are recorded with every interval,
and the same seed gives the same interval on rerun. Subject (cluster) resampling
is the default for LOSO: samples of one subject are not independent.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from benchmark.core.metrics import Metric


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    unit: str
    n_boot: int
    seed: int
    level: float = 0.95

    def as_dict(self) -> dict:
        return asdict(self)


def _resample_indices(groups: np.ndarray | None, n: int, rng: np.random.Generator, n_boot: int):
    """Yield index arrays of bootstrap replicates (whole groups when given)."""
    if groups is None:
        for _ in range(n_boot):
            yield rng.integers(0, n, n)
        return
    uniq, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    for _ in range(n_boot):
        picks = rng.integers(0, len(uniq), len(uniq))
        yield np.concatenate([members[p] for p in picks])


def _seed_mean(metric: Metric, y_true: np.ndarray, y_pred: np.ndarray, idx) -> float:
    """``metric`` on rows ``idx``, averaged over seeds when ``y_pred`` is (seeds, n)."""
    if y_pred.ndim == 1:
        return metric(y_true[idx], y_pred[idx])
    return float(np.mean([metric(y_true[idx], row[idx]) for row in y_pred]))


def bootstrap_ci(metric: Metric, y_true, y_pred, *, groups=None, n_boot: int = 1000,
                 seed: int = 0, level: float = 0.95) -> Interval:
    """Percentile CI of ``metric``; ``groups`` (e.g. subjects) switches to cluster resampling.

    ``y_pred`` may be (seeds, n): each replicate then scores the seed-averaged
    metric on the same resampled units, so the interval is that of the
    seed-mean figure the leaderboard reports.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        raise ValueError("bootstrap_ci: no predictions to resample")
    if y_pred.shape[-1] != len(y_true):
        raise ValueError("bootstrap_ci: predictions and truth differ in length")
    rng = np.random.default_rng(seed)
    groups = None if groups is None else np.asarray(groups)
    stats = np.array([_seed_mean(metric, y_true, y_pred, i)
                      for i in _resample_indices(groups, len(y_true), rng, n_boot)])
    alpha = (1 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    unit = "sample" if groups is None else "subject"
    estimate = _seed_mean(metric, y_true, y_pred, np.arange(len(y_true)))
    return Interval(float(estimate), float(low), float(high), unit, n_boot, seed, level)


def paired_bootstrap(metric: Metric, y_true, pred_a, pred_b, *, groups=None, n_boot: int = 1000,
                     seed: int = 0) -> dict:
    """Paired test of ``metric(a) - metric(b)`` on the same samples and resamples.

    Returns the observed difference, its percentile 95% CI and a two-sided
    bootstrap p-value (twice the smaller tail mass around zero).
    """
    y_true, pred_a, pred_b = map(np.asarray, (y_true, pred_a, pred_b))
    if not (len(y_true) == len(pred_a) == len(pred_b)):
        raise ValueError("paired_bootstrap: the two runs must score the same samples")
    rng = np.random.default_rng(seed)
    groups = None if groups is None else np.asarray(groups)
    diffs = np.array([
        metric(y_true[i], pred_a[i]) - metric(y_true[i], pred_b[i])
        for i in _resample_indices(groups, len(y_true), rng, n_boot)
    ])
    p = 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())
    low, high = np.quantile(diffs, [0.025, 0.975])
    return {"difference": float(metric(y_true, pred_a) - metric(y_true, pred_b)),
            "low": float(low), "high": float(high), "p_value": float(min(1.0, p)),
            "unit": "sample" if groups is None else "subject", "n_boot": n_boot, "seed": seed}
