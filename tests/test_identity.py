"""The identity-leakage protocol and the logistic-regression probe."""
import json

import cv2
import numpy as np
import pytest

from benchmark.core.samples import DatasetReport, Sample
from models import MODELS
from protocols import PROTOCOLS


def _report(counts: dict[str, int]) -> DatasetReport:
    samples = [Sample("casme2", f"casme2/{sub}", f"EP{k:02d}", "negative")
               for sub, n in counts.items() for k in range(n)]
    samples.append(Sample("samm", "samm/006", "006_1_1", "negative"))
    return DatasetReport("megc2019", None, samples)


def test_select_uses_subjects_as_classes_and_records_exclusions():
    proto = PROTOCOLS.get("identity")(dataset="casme2")
    sel = proto.select(_report({"sub01": 6, "sub02": 3, "sub03": 1, "sub04": 10}))
    assert sel.classes == ("casme2/sub01", "casme2/sub02", "casme2/sub04")
    assert sel.excluded == {"subject:casme2/sub03": 1}
    assert len(sel.y) == 19 and proto.bootstrap_unit == "sample"
    chance = proto.describe()["chance"]
    assert chance["majority_accuracy"] == pytest.approx(10 / 19)
    assert chance["balanced_accuracy"] == pytest.approx(1 / 3) and chance["subjects_below_n_folds"] == 1


def test_folds_are_stratified_and_every_subject_is_trained_on():
    proto = PROTOCOLS.get("identity")(dataset="casme2")
    sel = proto.select(_report({"sub01": 6, "sub02": 2, "sub04": 12, "sub05": 5}))
    folds = proto.split(sel, seed=0)
    assert len(folds) == 5 and [f.name for f in folds] == [f"fold{k}" for k in range(1, 6)]
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(len(sel.y)))
    for f in folds:
        assert set(sel.y[f.train]) == set(range(4))  # no subject missing from training
        assert np.bincount(sel.y[f.test], minlength=4)[2] in (2, 3)  # 12 samples over 5 folds
    assert [f.test.tolist() for f in folds] == [f.test.tolist() for f in proto.split(sel, seed=0)]
    assert [f.test.tolist() for f in folds] != [f.test.tolist() for f in proto.split(sel, seed=1)]


def test_logreg_probe_fills_missing_classes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3, 4, 4)).astype(np.float32)
    y = np.repeat([0, 2], 15)
    X[y == 2, 0] += 3
    model = MODELS.get("logreg")().fit(X, y, n_classes=3)
    p = model.predict_proba(X)
    assert p.shape == (30, 3) and np.allclose(p.sum(1), 1) and (p[:, 1] == 0).all()
    assert (p.argmax(1) == y).mean() > 0.9
    assert {"vector", "flow_image", "image"} <= MODELS.get("logreg").accepts


def _identity_root(root, n_sub=4, n_per=6, seed=0):
    """megc2019/ whose 28x28 flow images carry the subject (a per-subject pattern) and noise."""
    rng = np.random.default_rng(seed)
    meg = root / "megc2019"
    (meg / "STSNet_whole_norm_u_v_os").mkdir(parents=True)
    lines = []
    for i in range(n_sub):
        sub = f"sub{i + 1:02d}"
        pattern = rng.integers(0, 255, (28, 28, 3))
        for k in range(n_per):
            clip = f"EP{k + 1:02d}_01"
            lines.append(f"casme2,{sub},{clip},{k % 3}")
            img = np.clip(0.6 * pattern + rng.normal(0, 40, (28, 28, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(meg / "STSNet_whole_norm_u_v_os" / f"{sub}_{clip} .png"), img)
    (meg / "combined_3class_gt.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return root


def test_identity_run_end_to_end(tmp_path):
    from benchmark.config import resolve
    from benchmark.runner import execute, load_metrics

    root = _identity_root(tmp_path / "data")
    cfg = resolve(dict(rep="precomputed", model="logreg", protocol="identity", dataset="casme2",
                       data_root=str(root), out=str(tmp_path / "runs"), n_boot=50))
    run = execute(cfg, progress=False)
    m = load_metrics(run)
    header = json.loads((run / "config.json").read_text())
    assert m["classes"] == [f"casme2/sub{i:02d}" for i in range(1, 5)] and header["n_folds"] == 5
    assert header["protocol"]["chance"]["balanced_accuracy"] == 0.25
    assert m["metrics"]["overall"]["uar"]["mean"] > 0.9  # the subject is plainly in the images
    assert m["bootstrap_unit"] == "sample"
