"""Protocols as splitters: subject-disjoint folds, stratified fractions, label maps."""
from pathlib import Path

import numpy as np
import pytest

from benchmark.core.samples import DatasetReport, Sample
from protocols.base import ProtocolError, carve_validation, loso_folds
from protocols.cde import CDE
from protocols.loso import LOSO
from protocols.stratified7 import Stratified7


def _report(emotions_per_subject: dict, dataset="casme2"):
    samples = [Sample(dataset, f"{dataset}/{sub}", f"c{i}", emo)
               for sub, emos in emotions_per_subject.items() for i, emo in enumerate(emos)]
    return DatasetReport(dataset, Path("."), samples)


def test_loso_each_subject_tested_once_and_never_trained_on():
    groups = np.array(["a", "a", "b", "c", "c", "c"])
    folds = loso_folds(groups)
    assert sorted(f.name for f in folds) == ["a", "b", "c"]
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(6))
    for f in folds:
        assert set(groups[f.test]) == {f.name} and f.name not in set(groups[f.train])


def test_loso_needs_two_subjects():
    with pytest.raises(ProtocolError):
        loso_folds(np.array(["a", "a"]))


def test_inner_validation_is_subject_disjoint():
    groups = np.repeat([f"s{i}" for i in range(10)], 3)
    train, val = carve_validation(np.arange(30), groups, frac=0.2, seed=0)
    assert set(groups[train]).isdisjoint(groups[val]) and len(val) > 0


def test_loso_casme2_five_classes_excludes_and_counts_others():
    rep = _report({"sub01": ["happiness", "others", "fear"], "sub02": ["disgust", "surprise", "repression"]})
    sel = LOSO(dataset="casme2").select(rep)
    assert sel.classes == ("happiness", "surprise", "disgust", "repression", "others")
    assert len(sel.samples) == 5 and sel.excluded == {"fear": 1}


def test_loso_rejects_unknown_dataset_and_label_set():
    with pytest.raises(ProtocolError, match="unsupported dataset"):
        LOSO(dataset="nope")
    with pytest.raises(ProtocolError, match="unknown label set"):
        LOSO(dataset="casme2", label_set="nope")


def test_cde_dataset_filter():
    samples = [Sample(db, f"{db}/s{i}", f"c{i}", emo) for i, (db, emo) in enumerate(
        [("casme2", "negative"), ("samm", "positive"), ("smic", "surprise"), ("casme2", "surprise")])]
    sel = CDE(dataset="casme2").select(DatasetReport("megc2019", Path("."), samples))
    assert [s.dataset for s in sel.samples] == ["casme2", "casme2"]
    with pytest.raises(ProtocolError, match="no samples"):
        CDE(dataset="casme3").select(DatasetReport("megc2019", Path("."), samples))


def test_stratified7_fractions_and_disjointness():
    counts = {"others": 99, "disgust": 63, "happiness": 32, "repression": 27, "surprise": 25, "sadness": 7, "fear": 2}
    emos = [e for e, n in counts.items() for _ in range(n)]
    rep = _report({f"sub{i:02d}": emos[i::26] for i in range(26)})
    p = Stratified7()
    sel = p.select(rep)
    (fold,) = p.split(sel, seed=0)
    n = len(sel.y)
    assert n == 255
    parts = [set(fold.train), set(fold.val), set(fold.test)]
    assert sum(map(len, parts)) == n and len(set().union(*parts)) == n
    assert abs(len(fold.test) / n - 0.110) < 0.02 and abs(len(fold.val) / n - 0.102) < 0.02
    # every class with enough samples appears in test; fear (2) stays in train
    assert set(sel.y[fold.test]) == set(range(6))
    (again,) = p.split(sel, seed=0)
    np.testing.assert_array_equal(fold.test, again.test)
