"""Paired comparison of two finished runs on the same samples (``benchmark compare A B``).

Both runs' ``predictions.csv`` are aligned on the sample key; each bootstrap
resample (the protocol's unit: subjects for LOSO) scores both runs on the same
samples, so the interval is that of the difference, much narrower than two
overlapping per-run intervals suggest. With several seeds the figure compared is
the seed mean (the seeds of each run are averaged, they need not match).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.results import RunResult, load_result
from benchmark.scoring import paired_metrics


def load_predictions(run: Path) -> tuple[pd.DataFrame, RunResult]:
    """(one row per sample with a prediction column per seed, the run's result) of a run folder."""
    run = Path(run)
    pred_file, metrics_file = run / "predictions.csv", run / "metrics.json"
    for f in (pred_file, metrics_file):
        if not f.exists():
            raise FileNotFoundError(f"{f} not found: `compare` needs a finished run folder with its predictions")
    df = pd.read_csv(pred_file, dtype={"subject": str, "clip": str})
    wide = df.pivot_table(index=["sample", "subject", "truth"], columns="seed", values="prediction",
                          aggfunc="first").reset_index()
    return wide, load_result(metrics_file)


def compare(run_a: Path, run_b: Path, n_boot: int = 1000, seed: int = 0) -> dict:
    """Differences ``a - b`` of UF1, UAR and accuracy with paired-bootstrap CIs and p-values."""
    return paired(load_predictions(run_a), load_predictions(run_b), n_boot, seed)


def paired(run_a: tuple[pd.DataFrame, RunResult], run_b: tuple[pd.DataFrame, RunResult],
           n_boot: int = 1000, seed: int = 0) -> dict:
    """``compare`` of two runs already read by ``load_predictions`` (so a reference is read once)."""
    (a, ma), (b, mb) = run_a, run_b
    if ma.classes != mb.classes or ma.protocol != mb.protocol:
        raise ValueError(f"runs differ in protocol or classes ({ma.protocol} {list(ma.classes)} vs "
                         f"{mb.protocol} {list(mb.classes)}): not comparable")
    if set(a["sample"]) != set(b["sample"]):
        only = sorted(set(a["sample"]) ^ set(b["sample"]))
        raise ValueError(f"the runs scored different samples ({len(only)} in one only, e.g. {only[0]})")
    both = a.merge(b, on="sample", suffixes=("_a", "_b"))
    if (both["truth_a"] != both["truth_b"]).any():
        raise ValueError("the runs disagree on a sample's true label: different label sets or data")
    classes = {c: i for i, c in enumerate(ma.classes)}
    y = both["truth_a"].map(classes).to_numpy()
    pa = _codes(both, [c for c in a.columns if isinstance(c, (int, np.integer))], "_a", classes)
    pb = _codes(both, [c for c in b.columns if isinstance(c, (int, np.integer))], "_b", classes)
    groups = both["subject_a"].to_numpy() if ma.bootstrap_unit == "subject" else None
    return {"a": ma.run_id, "b": mb.run_id, **paired_metrics(y, pa, pb, groups, n_boot, seed)}


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
