"""Metric definitions pinned on hand-computed cases (MEGC2019 pooled scoring)."""
import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from benchmark.core.bootstrap import bootstrap_ci, paired_bootstrap
from benchmark.core.metrics import FAST_METRICS, METRICS, accuracy, summarize, uar, uf1

Y = np.array([0, 0, 0, 1, 1, 2])
P = np.array([0, 0, 1, 1, 2, 2])


def test_uf1_uar_hand_computed():
    # per-class F1: 0.8, 0.5, 2/3; recalls 2/3, 1/2, 1
    assert uf1(Y, P) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert uar(Y, P) == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert accuracy(Y, P) == pytest.approx(4 / 6)


def test_pooled_equals_megc_tp_fp_fn_sum_not_fold_mean():
    folds = [np.arange(0, 3), np.arange(3, 6)]
    # MEGC2019: sum TP/FP/FN of each class over folds, then average per-class F1
    f1s = []
    for c in range(3):
        tp = sum(((Y[f] == c) & (P[f] == c)).sum() for f in folds)
        fp = sum(((Y[f] != c) & (P[f] == c)).sum() for f in folds)
        fn = sum(((Y[f] == c) & (P[f] != c)).sum() for f in folds)
        f1s.append(2 * tp / (2 * tp + fp + fn))
    assert uf1(Y, P) == pytest.approx(np.mean(f1s))
    per_fold_mean = np.mean([uf1(Y[f], P[f]) for f in folds])
    assert abs(per_fold_mean - uf1(Y, P)) > 0.05  # the ill-posed alternative differs


def test_classes_absent_from_truth_are_not_averaged():
    y, p = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    assert uf1(y, p) == pytest.approx((2 / 3 + 1.0) / 2)
    assert uar(y, p) == pytest.approx(balanced_accuracy_score(y, p))


def test_agrees_with_sklearn_on_random_predictions():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    assert uf1(y, p) == pytest.approx(f1_score(y, p, average="macro"))
    assert uar(y, p) == pytest.approx(balanced_accuracy_score(y, p))
    s = summarize(y, p, 5)
    assert np.array(s["confusion"]).sum() == 300 and len(s["per_class_f1"]) == 5


def test_bootstrap_is_reproducible_and_brackets_estimate():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    p = np.where(rng.random(200) < 0.7, y, rng.integers(0, 3, 200))
    a = bootstrap_ci(uf1, y, p, n_boot=200, seed=3)
    b = bootstrap_ci(uf1, y, p, n_boot=200, seed=3)
    assert a == b
    assert a.low < a.estimate < a.high and a.unit == "sample"
    c = bootstrap_ci(uf1, y, p, n_boot=200, seed=4)
    assert (c.low, c.high) != (a.low, a.high)


def test_subject_bootstrap_is_wider_when_subjects_are_homogeneous():
    # Each subject is either all right or all wrong: cluster resampling must see
    # that the effective sample size is the number of subjects, not samples.
    y = np.tile([0, 1], 200)
    groups = np.repeat(np.arange(20), 20)
    p = np.where(groups % 2 == 0, y, 1 - y)
    ci_s = bootstrap_ci(accuracy, y, p, n_boot=300, seed=0)
    ci_g = bootstrap_ci(accuracy, y, p, groups=groups, n_boot=300, seed=0)
    assert ci_g.unit == "subject"
    assert (ci_g.high - ci_g.low) > 2 * (ci_s.high - ci_s.low)


def test_bootstrap_of_seed_mean():
    y = np.array([0, 1, 0, 1, 0, 1])
    preds = np.array([[0, 1, 0, 1, 0, 1], [1, 0, 1, 0, 1, 0]])
    ci = bootstrap_ci(accuracy, y, preds, n_boot=50, seed=0)
    assert ci.estimate == pytest.approx(0.5)


def test_paired_bootstrap_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 300)
    good = np.where(rng.random(300) < 0.8, y, (y + 1) % 3)
    bad = np.where(rng.random(300) < 0.4, y, (y + 1) % 3)
    res = paired_bootstrap(uf1, y, good, bad, n_boot=300, seed=0)
    assert res["difference"] > 0.3 and res["p_value"] < 0.01 and res["low"] > 0
    same = paired_bootstrap(uf1, y, good, good, n_boot=100, seed=0)
    assert same["difference"] == 0 and same["p_value"] == 1.0
    with pytest.raises(ValueError):
        paired_bootstrap(uf1, y, good, bad[:-1])


def test_fast_bootstrap_metrics_equal_sklearn_definitions():
    rng = np.random.default_rng(5)
    for n, k in [(6, 3), (50, 3), (300, 7), (5, 5)]:
        y, p = rng.integers(0, k, n), rng.integers(0, k, n)
        for name in METRICS:
            assert FAST_METRICS[name](y, p) == pytest.approx(METRICS[name](y, p)), name
    y, p = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])  # class predicted but absent from truth
    assert FAST_METRICS["uf1"](y, p) == pytest.approx(uf1(y, p))
