"""Fold-parallel training equals sequential training fold by fold (models/fold_parallel.py)."""
import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.runner import execute
from models.fold_parallel import fit_folds, unsupported
from models.ststnet import STSTNet
from tests.test_runner import _cfg, write_flow_root


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(0, 40, (n, 3, 28, 28)).astype(np.float32)
    X[np.arange(n), y] += 60  # learnable
    return X, y


def test_stacked_folds_match_sequential_fits_weights_and_predictions():
    X, y = _data()
    # Different training-set sizes, so the last batch differs between folds and the
    # masked BatchNorm/loss path runs; dropout on (the published 0.5).
    trains = [np.setdiff1d(np.arange(len(y)), np.arange(j * 7, j * 7 + 7 + j)) for j in range(4)]
    seeds = [5, 17, 23, 42]
    template = STSTNet(epochs=6, batch_size=32, lr=2e-3)
    assert unsupported(template, "fixed", trains, y) is None
    stacked = fit_folds(template, X, y, trains, seeds, 3)
    for train, seed, par in zip(trains, seeds, stacked):
        seq = STSTNet(epochs=6, batch_size=32, lr=2e-3, seed=seed).fit(X[train], y[train], 3)
        # rtol 1e-3: a BatchNorm running variance near 64 drifts by ~1e-4 relative between the
        # grouped and the plain convolutions' summation orders (one thread); a fold mix-up moves it by far more.
        for a, b in zip(seq.net_.state_dict().values(), par.net_.state_dict().values()):
            torch.testing.assert_close(a.float(), b.float(), atol=1e-4, rtol=1e-3)
        np.testing.assert_allclose(seq.predict_proba(X), par.predict_proba(X), atol=1e-4)


def test_stacked_training_learns_and_never_depends_on_other_folds_test_samples():
    X, y = _data(seed=1)
    trains = [np.arange(0, 60), np.arange(30, 96)]
    a = fit_folds(STSTNet(epochs=20, batch_size=32, lr=5e-3), X, y, trains, [1, 2], 3)
    # Changing samples outside fold 0's training set changes nothing in fold 0.
    X2 = X.copy()
    X2[60:] = 0
    b = fit_folds(STSTNet(epochs=20, batch_size=32, lr=5e-3), X2, y, trains[:1], [1], 3)
    np.testing.assert_allclose(a[0].predict_proba(X), b[0].predict_proba(X), atol=1e-4)
    test = np.arange(60, 96)
    assert (a[0].predict_proba(X[test]).argmax(1) == y[test]).mean() > 0.6


def test_unsupported_cases_are_named():
    y = np.zeros(40, int)
    ok = [np.arange(30), np.arange(10, 40)]
    assert "selection" in unsupported(STSTNet(), "oracle", ok, y)
    assert "loss" in unsupported(STSTNet(loss="focal"), "fixed", ok, y)
    assert "mini-batches" in unsupported(STSTNet(batch_size=16), "fixed", [np.arange(30), np.arange(33)], y)
    from models.offapexnet import OFFApexNet

    assert "no stacked implementation" in unsupported(OFFApexNet(), "fixed", ok, y)


def test_runner_fold_parallel_equals_sequential_and_records_the_path(tmp_path):
    root = write_flow_root(tmp_path / "data")
    runs = {}
    for mode, workers in (("off", 1), ("on", 1), ("on", 2)):
        out = execute(_cfg(root, tmp_path / f"{mode}{workers}", epochs=4, fold_parallel=mode,
                           workers=workers, fold_group=4 if workers == 1 else 0), progress=False)
        runs[(mode, workers)] = out
    header = json.loads((runs[("on", 1)] / "config.json").read_text())
    assert header["training"]["path"] == "fold-parallel"
    assert json.loads((runs[("off", 1)] / "config.json").read_text())["training"]["path"] == "sequential"
    metrics = json.loads((runs[("on", 1)] / "metrics.json").read_text())
    assert metrics["training"] == ["fold-parallel:1", "fold-parallel:4"]  # 9 folds in groups of 4
    seq = pd.read_csv(runs[("off", 1)] / "predictions.csv").sort_values("sample")
    for key in (("on", 1), ("on", 2)):
        par = pd.read_csv(runs[key] / "predictions.csv").sort_values("sample")
        assert (seq.prediction.values == par.prediction.values).all()
        cols = [c for c in seq.columns if c.startswith("p_")]
        np.testing.assert_allclose(seq[cols].values, par[cols].values, atol=1e-3)


def test_runner_falls_back_to_sequential_with_the_reason(tmp_path):
    root = write_flow_root(tmp_path / "data")
    out = execute(_cfg(root, tmp_path / "o", epochs=2, fold_parallel="on", selection="oracle"), progress=False)
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["path"] == "sequential" and "selection" in training["reason"]
    assert json.loads((out / "metrics.json").read_text())["training"] == ["sequential"]


@pytest.mark.parametrize("mode", ["off", "auto"])
def test_auto_and_off_stay_sequential_on_cpu(tmp_path, mode):
    root = write_flow_root(tmp_path / "data", n_sub=1, n_per=3)
    out = execute(_cfg(root, tmp_path / mode, epochs=1, fold_parallel=mode, device="cpu"), progress=False)
    assert json.loads((out / "config.json").read_text())["training"]["path"] == "sequential"


def test_perf_training_table_compares_paths_on_the_same_folds(tmp_path):
    from benchmark.perf_training import flops_table, training_table

    root = write_flow_root(tmp_path / "data")
    table = training_table(root, folds=2, epochs=2, workers=1, echo=False)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "path" not in line]
    assert len(rows) == 4 and rows[0].startswith("| reference loop")
    assert all("100%" in r for r in rows)  # same seeds -> same predictions as the reference loop
    assert "share of peak" in flops_table(echo=False, repeats=2, gemm_n=256)


def test_step_profile_accounts_for_the_whole_step_and_plots_a_roofline(tmp_path):
    from benchmark.perf_training import PARTS, flops_table, step_profile

    prof = step_profile(1, batch=16, repeats=2)
    parts = prof["parts"]
    assert abs(sum(p["seconds"] for p in parts.values()) - prof["step_seconds"]) < 1e-9  # shares of the real step
    assert {"convolution (forward)", "convolution (backward)", "batch norm", "ReLU", "dropout"} <= set(parts)
    assert set(parts) <= {name for name, _ in PARTS} | {"other (loss, autograd, small ops)"}
    assert parts["convolution (forward)"]["flops"] > 0 and parts["batch norm"]["flops"] == 0
    assert all(p["bytes"] > 0 for k, p in parts.items() if k in ("batch norm", "ReLU", "max-pool"))
    png = tmp_path / "roof.png"
    text = flops_table(echo=False, repeats=2, gemm_n=256, plot=png, link="plots/roof.png")
    assert png.stat().st_size > 10_000 and "[plots/roof.png](plots/roof.png)" in text
    assert "copy bandwidth" in text and text.count("| batch norm |") == len({1, os.cpu_count() or 1})
