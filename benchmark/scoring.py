"""Scoring: fold records -> pooled predictions -> metrics with bootstrap CIs -> a RunResult.

Pure functions of the records (which carry each test sample's key, subject, database and
label): no dataset is read and no file is written here (``benchmark.rundir`` writes).
UF1/UAR are pooled over all folds (the MEGC2019 definition), per seed, then summarised over
the seeds with CIs of the seed-mean figure.
"""
from __future__ import annotations

import json
from collections import Counter

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from benchmark.config import RunConfig
from benchmark.core.bootstrap import bootstrap_ci, paired_bootstrap
from benchmark.core.metrics import FAST_METRICS, summarize
from benchmark.provenance import now
from benchmark.results import (METRIC_NAMES, Block, FixedCompanion, FoldRecord, Metrics, MetricSummary,
                               OracleMinusFixed, PairedDifference, RunResult, SeedScores)


@dataclass(frozen=True)
class Pooled:
    """Every seed's predictions on the evaluated samples, in sample-list order."""

    index: np.ndarray  # positions in the protocol's sample list
    keys: np.ndarray
    subjects: np.ndarray
    databases: np.ndarray
    y: np.ndarray
    pred: np.ndarray  # (seeds, n)
    seeds: tuple[int, ...]


def pool(records: Sequence[FoldRecord], seeds: Sequence[int]) -> Pooled:
    """Align the records' predictions on the samples the first seed evaluated."""
    seeds = tuple(seeds)
    about = {i: (k, s, d, t) for r in records for i, k, s, d, t in zip(r.test, r.keys, r.subjects, r.databases, r.truth)}
    index = sorted({i for r in records if r.seed == seeds[0] for i in r.test})
    pos = {i: k for k, i in enumerate(index)}
    pred = np.full((len(seeds), len(index)), -1)
    for r in records:
        pred[seeds.index(r.seed), [pos[i] for i in r.test]] = r.pred
    keys, subjects, databases, y = (np.array(c) for c in zip(*(about[i] for i in index)))
    return Pooled(np.array(index), keys, subjects, databases, y.astype(int), pred, seeds)


def block(y: np.ndarray, pred: np.ndarray, groups: np.ndarray, n_classes: int, unit: str, n_boot: int) -> Block:
    """Point metrics per seed, their mean/std, and bootstrap CIs (sample and subject) of the seed mean."""
    per_seed = [summarize(y, row, n_classes) for row in pred]
    summaries = {}
    for name in METRIC_NAMES:
        fn, vals = FAST_METRICS[name], np.array([s[name] for s in per_seed])
        ci_s = bootstrap_ci(fn, y, pred, n_boot=n_boot, seed=0)
        ci_g = bootstrap_ci(fn, y, pred, groups=groups, n_boot=n_boot, seed=0) if len(set(groups)) > 1 else None
        summaries[name] = MetricSummary(float(vals.mean()), float(vals.std()), float(vals.min()), float(vals.max()),
                                        ci_s, ci_g, ci_g if unit == "subject" and ci_g else ci_s)
    seeds = tuple(SeedScores(s["uf1"], s["uar"], s["accuracy"], tuple(s["per_class_f1"]),
                             tuple(map(tuple, s["confusion"])), s["n"]) for s in per_seed)
    return Block(seeds, summaries["uf1"], summaries["uar"], summaries["accuracy"], int(len(y)))


def score(pooled: Pooled, n_classes: int, unit: str, n_boot: int) -> Metrics:
    """The overall block and, when the samples span several databases, one block per database."""
    y, pred, groups, dbs = pooled.y, pooled.pred, pooled.subjects, pooled.databases
    per_db = {}
    if len(set(dbs)) > 1:
        per_db = {db: block(y[dbs == db], pred[:, dbs == db], groups[dbs == db], n_classes, unit, n_boot)
                  for db in sorted(set(dbs))}
    return Metrics(block(y, pred, groups, n_classes, unit, n_boot), per_db)


def run_result(cfg: RunConfig, classes: Sequence[str], unit: str, epochs: int | None,
               records: Sequence[FoldRecord], wall_s: float, companion: FixedCompanion | None = None,
               derived_from: str | None = None) -> RunResult:
    """Score a run's fold records into its result."""
    pooled = pool(records, cfg.seeds)
    return RunResult(
        run_id=cfg.run_id(), rep=cfg.rep, model=cfg.model, protocol=cfg.protocol, dataset=cfg.dataset,
        data=cfg.data, selection=cfg.selection, seeds=pooled.seeds, epochs=epochs, label=cfg.label,
        classes=tuple(classes), bootstrap_unit=unit,
        contaminated=tuple(sorted({s for r in records for s in r.contaminated_subjects})),
        weights=tuple(sorted({r.weights_source or "scratch" for r in records})),
        folds_missing_classes=tuple(sorted({r.fold for r in records if r.missing_train_classes})),
        best_epochs=tuple(r.best_epoch for r in records) if cfg.selection != "fixed" else None,
        training=tuple(sorted({r.training for r in records})),
        wall_s=round(wall_s, 1), fold_seconds=round(sum(r.seconds for r in records), 1), finished=now(),
        metrics=score(pooled, len(classes), unit, cfg.n_boot), fixed_companion=companion, derived_from=derived_from,
        tuning=tuning_summary(records))


def tuning_summary(records: Sequence[FoldRecord]) -> dict | None:
    """How often each hyperparameter setting was chosen over the folds (and seeds) of a tuned run."""
    tuned = [r.tuning for r in records if r.tuning]
    if not tuned:
        return None
    counts = Counter(json.dumps(t["chosen"], sort_keys=True) for t in tuned)
    return {"grid": tuned[0]["grid"], "cv": tuned[0].get("cv"),
            "chosen": [{"params": json.loads(k), "folds": n} for k, n in counts.most_common()]}


def paired_metrics(y: np.ndarray, pa: np.ndarray, pb: np.ndarray, groups: np.ndarray | None,
                   n_boot: int = 1000, seed: int = 0) -> dict:
    """Seed-mean UF1/UAR/accuracy of predictions ``pa`` and ``pb`` (n, seeds) and the paired
    bootstrap of ``a - b`` (resampling ``groups`` when given, else samples)."""
    # seed by seed when the runs have as many seeds, else between their first seeds
    differ = (pa != pb).mean() if pa.shape == pb.shape else (pa[:, 0] != pb[:, 0]).mean()
    out = {"n": int(len(y)), "unit": "subject" if groups is not None else "sample",
           "predictions_differing": float(differ), "metrics": {}}
    for name, fn in FAST_METRICS.items():
        def seed_mean(y_true, pred, fn=fn):
            return float(np.mean([fn(y_true, pred[:, s]) for s in range(pred.shape[1])]))

        out["metrics"][name] = {"a": seed_mean(y, pa), "b": seed_mean(y, pb),
                                **paired_bootstrap(seed_mean, y, pa, pb, groups=groups, n_boot=n_boot, seed=seed)}
    return out


def oracle_minus_fixed(oracle: Sequence[FoldRecord], fixed: Sequence[FoldRecord], seeds: Sequence[int],
                       unit: str, n_boot: int) -> OracleMinusFixed:
    """Paired difference of an oracle run and its fixed twin on the same samples and resamples."""
    po, pf = pool(oracle, seeds), pool(fixed, seeds)
    groups = po.subjects if unit == "subject" and len(set(po.subjects)) > 1 else None
    res = paired_metrics(po.y, po.pred.T, pf.pred.T, groups, n_boot=n_boot)
    diffs = {k: PairedDifference(*(m[f] for f in ("difference", "low", "high", "p_value")))
             for k, m in res["metrics"].items()}
    return OracleMinusFixed(res["n"], res["unit"], res["predictions_differing"], **diffs)
