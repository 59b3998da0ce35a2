"""Paired comparison of two finished runs on the same samples (``benchmark compare A B``).

Both runs' ``predictions.csv`` are aligned on the sample key; each bootstrap
resample (the protocol's unit: subjects for LOSO) scores both runs on the same
samples, so the interval is that of the difference, much narrower than two
overlapping per-run intervals suggest. With several seeds the figure compared is
the seed mean (the seeds of each run are averaged, they need not match).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.core.bootstrap import paired_bootstrap
from benchmark.core.metrics import FAST_METRICS


def load_predictions(run: Path) -> tuple[pd.DataFrame, dict]:
    """(one row per sample with a prediction column per seed, metrics.json) of a run folder."""
    run = Path(run)
    pred_file, metrics_file = run / "predictions.csv", run / "metrics.json"
    for f in (pred_file, metrics_file):
        if not f.exists():
            raise FileNotFoundError(f"{f} not found: `compare` needs a finished run folder with its predictions")
    df = pd.read_csv(pred_file, dtype={"subject": str, "clip": str})
    wide = df.pivot_table(index=["sample", "subject", "truth"], columns="seed", values="prediction",
                          aggfunc="first").reset_index()
    return wide, json.loads(metrics_file.read_text())


def compare(run_a: Path, run_b: Path, n_boot: int = 1000, seed: int = 0) -> dict:
    """Differences ``a - b`` of UF1, UAR and accuracy with paired-bootstrap CIs and p-values."""
    a, ma = load_predictions(run_a)
    b, mb = load_predictions(run_b)
    if ma["classes"] != mb["classes"] or ma["protocol"] != mb["protocol"]:
        raise ValueError(f"runs differ in protocol or classes ({ma['protocol']} {ma['classes']} vs "
                         f"{mb['protocol']} {mb['classes']}): not comparable")
    if set(a["sample"]) != set(b["sample"]):
        only = sorted(set(a["sample"]) ^ set(b["sample"]))
        raise ValueError(f"the runs scored different samples ({len(only)} in one only, e.g. {only[0]})")
    both = a.merge(b, on="sample", suffixes=("_a", "_b"))
    if (both["truth_a"] != both["truth_b"]).any():
        raise ValueError("the runs disagree on a sample's true label: different label sets or data")
    classes = {c: i for i, c in enumerate(ma["classes"])}
    y = both["truth_a"].map(classes).to_numpy()
    pa = _codes(both, [c for c in a.columns if isinstance(c, (int, np.integer))], "_a", classes)
    pb = _codes(both, [c for c in b.columns if isinstance(c, (int, np.integer))], "_b", classes)
    unit = ma.get("bootstrap_unit", "sample")
    groups = both["subject_a"].to_numpy() if unit == "subject" else None
    return {"a": ma["run_id"], "b": mb["run_id"], **paired_metrics(y, pa, pb, groups, n_boot, seed)}


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


def _codes(df: pd.DataFrame, seeds: list, suffix: str, classes: dict) -> np.ndarray:
    cols = [f"{s}{suffix}" if f"{s}{suffix}" in df.columns else s for s in seeds]
    return np.stack([df[c].map(classes).to_numpy() for c in cols], axis=1)  # (n, seeds)


def format_text(res: dict) -> str:
    lines = [f"a = {res['a']}", f"b = {res['b']}",
             f"{res['n']} samples, {res['unit']} bootstrap ({next(iter(res['metrics'].values()))['n_boot']}x); "
             f"{res['predictions_differing']:.0%} of predictions differ",
             "| metric | a | b | a - b [95% CI] | p |", "|---|---|---|---|---|"]
    for name, m in res["metrics"].items():
        lines.append(f"| {name.upper()} | {m['a']:.4f} | {m['b']:.4f} | {m['difference']:+.4f} "
                     f"[{m['low']:+.3f}, {m['high']:+.3f}] | {m['p_value']:.3f} |")
    return "\n".join(lines)
