"""Hyperparameter choice of the classical heads under ``--selection inner-val`` (models/tuning.py):
subject-grouped CV inside the training fold, recorded per fold; ``fixed`` is untouched."""
from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import models.linear
from benchmark.folds import _epoch_choice_data, fold_model
from benchmark.results import FoldRecord
from models.classical import SVM
from models.linear import LogReg
from protocols.base import Fold

HEADS = (LogReg, SVM)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Many tiny fits on a shared 2-core machine: extra BLAS threads make them ~20x slower."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def _planted(seed: int = 0, n_sub: int = 6, per: int = 12, d: int = 20):
    """Training subjects with a weak class signal in feature 0, then a test subject "T" of 40
    samples whose labels follow features 1..5 strongly: were it in the search, C would change."""
    rng = np.random.default_rng(seed)
    y = np.arange(n_sub * per) % 2
    X = rng.normal(size=(len(y), d))
    X[:, 0] += 0.8 * (2 * y - 1)
    yt = np.arange(40) % 2
    Xt = rng.normal(size=(40, d))
    Xt[:, 1:6] += 1.5 * (2 * yt[:, None] - 1)
    groups = np.r_[np.repeat([f"s{i}" for i in range(n_sub)], per), ["T"] * 40]
    return np.vstack([X, Xt]), np.r_[y, yt], groups


def _plan(model, X_y_groups, selection="inner-val"):
    _, y, groups = X_y_groups
    return SimpleNamespace(cfg=SimpleNamespace(selection=selection), model=model, weights=None,
                           sel=SimpleNamespace(y=y, groups=groups, classes=("a", "b")))


@pytest.mark.parametrize("head", HEADS)
def test_the_tuned_head_never_sees_the_test_subject(head, monkeypatch):
    data = X, y, groups = _planted()
    fold = Fold("T", np.flatnonzero(groups != "T"), np.flatnonzero(groups == "T"))
    seen = []
    module = sys.modules[head.__module__]
    real = module.fit_tuned
    monkeypatch.setattr(module, "fit_tuned", lambda m, *a: seen.append(a[3]) or real(m, *a))  # a[3]: groups

    p = _plan(head(), data)
    train, selection = _epoch_choice_data(p, fold, X, 0)
    assert selection is None and np.array_equal(train, fold.train)  # all of the training fold, no carved split
    chosen = fold_model(p, fold, X, train, selection, 0).tuning_["chosen"]
    assert sorted(set(seen[0])) == [f"s{i}" for i in range(6)]  # the subjects passed are the training fold's

    # the test subject's labels and features do not reach the search ...
    y2, X2 = y.copy(), X.copy()
    y2[fold.test], X2[fold.test] = 1 - y2[fold.test], 0.0
    assert fold_model(_plan(head(), (X2, y2, groups)), fold, X2, train, None, 0).tuning_["chosen"] == chosen
    # ... and they would have changed the choice had they been in it
    assert head().fit(X, y, 2, groups=groups).tuning_["chosen"] != chosen


@pytest.mark.parametrize("head", HEADS)
def test_fixed_selection_is_the_untuned_fit(head):
    data = X, y, groups = _planted()
    fold = Fold("T", np.flatnonzero(groups != "T"), np.flatnonzero(groups == "T"))
    p = _plan(head(), data, selection="fixed")
    train, selection = _epoch_choice_data(p, fold, X, 0)
    model = fold_model(p, fold, X, train, selection, 0)
    assert not hasattr(model, "tuning_") and model.get_params() == head(seed=0).get_params()
    plain = head(seed=0).fit(X[fold.train], y[fold.train], 2).predict_proba(X[fold.test])
    assert np.array_equal(model.predict_proba(X[fold.test]), plain)


@pytest.mark.parametrize("head", HEADS)
def test_the_tuned_fit_is_the_chosen_values_refit_on_the_whole_training_fold(head):
    X, y, groups = _planted()
    m = head().fit(X, y, 2, groups=groups)
    t = m.tuning_
    assert set(t) == {"grid", "chosen", "cv_uf1", "cv"} and t["cv"] == "GroupKFold(5)" and 0 <= t["cv_uf1"] <= 1
    assert any(all(t["chosen"][k] in point[k] for k in t["chosen"]) for point in t["grid"])
    json.dumps(t)  # goes into the fold file as is
    refit = head().set_params(**t["chosen"]).fit(X, y, 2)
    assert np.array_equal(m.predict_proba(X), refit.predict_proba(X))


@pytest.mark.parametrize("head", HEADS)
def test_one_training_subject_is_a_clear_error(head):
    X, y, _ = _planted()
    with pytest.raises(ValueError, match="at least two training subjects"):
        head().fit(X, y, 2, groups=["s0"] * len(y))


def test_fold_record_tuning_is_optional_in_the_file():
    base = dict(fold="f", seed=0, test=(0,), keys=("s/c",), subjects=("s",), databases=("d",), truth=(0,),
                proba=((1.0, 0.0),), pred=(0,), best_epoch=None, missing_train_classes=(),
                contaminated_subjects=(), weights_source="scratch", seconds=0.1, training="sequential")
    plain = FoldRecord(**base)
    assert "tuning" not in plain.to_json()  # untuned folds write the file they always wrote
    assert FoldRecord.from_json(plain.to_json()) == plain
    tuned = FoldRecord(**base, tuning={"grid": [{"C": [0.1, 1.0]}], "chosen": {"C": 1.0}, "cv_uf1": 0.5,
                                       "cv": "GroupKFold(2)"})
    assert FoldRecord.from_json(json.loads(json.dumps(tuned.to_json()))) == tuned
    hash(tuned)


def test_an_inner_val_run_records_each_folds_choice(tmp_path, rep_cache, monkeypatch):
    from benchmark.config import resolve
    from benchmark.plan import plan
    from benchmark.results import load_result
    from benchmark.runner import execute
    from tests.test_runner import write_flow_root

    monkeypatch.setattr(models.linear, "GRID", [{"C": [0.01, 1.0]}])  # two points keep the run short
    root = write_flow_root(tmp_path / "data", n_sub=2)
    cfg = dict(rep="precomputed", model="logreg", protocol="cde", data_root=str(root), n_boot=20)
    run = execute(resolve({**cfg, "selection": "inner-val", "out": str(tmp_path / "tuned")}), progress=False)
    fixed = execute(resolve({**cfg, "out": str(tmp_path / "fixed")}), progress=False)
    assert load_result(run).selection == "inner-val"
    p = plan(resolve({**cfg, "selection": "inner-val", "out": str(tmp_path / "tuned")}))
    X = p.rep.transform(p.sel.samples)
    records = p.records()
    assert len(records) == len(p.folds) == 6
    for fold, rec in zip(p.folds, records):
        assert rec.tuning["grid"] == [{"C": [0.01, 1.0]}] and rec.tuning["chosen"]["C"] in (0.01, 1.0)
        assert rec.tuning["cv"] == "GroupKFold(5)"
        refit = LogReg(**rec.tuning["chosen"]).fit(X[fold.train], p.sel.y[fold.train], len(p.sel.classes))
        assert rec.proba == tuple(map(tuple, refit.predict_proba(X[fold.test]).round(6).tolist()))
    for f in (fixed / "folds").rglob("*.json"):
        assert "tuning" not in json.loads(f.read_text())
    # the committed metrics.json carries the choices (fold files are not committed)
    summary = load_result(run).tuning
    assert summary["grid"] == [{"C": [0.01, 1.0]}] and summary["cv"] == "GroupKFold(5)"
    assert sum(c["folds"] for c in summary["chosen"]) == len(records)
    assert {c["params"]["C"] for c in summary["chosen"]} <= {0.01, 1.0}
    assert load_result(fixed).tuning is None and "tuning" not in json.loads((fixed / "metrics.json").read_text())
