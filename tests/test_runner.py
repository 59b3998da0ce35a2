"""The runner end to end on a small generated MEGC2019-format folder."""
import json
import shutil

import cv2
import numpy as np
import pytest

from benchmark.cli import main
from benchmark.config import ConfigError, resolve
from benchmark.core.metrics import uar, uf1
from benchmark.results import load_result
from benchmark.runner import ContaminationError, execute
from representations import REPRESENTATIONS
from representations.base import Representation


def write_flow_root(root, n_sub=3, n_per=6, seed=0, signal=150):
    """megc2019/ with the official list and 28x28 flow PNGs whose class is learnable."""
    rng = np.random.default_rng(seed)
    meg = root / "megc2019"
    (meg / "STSNet_whole_norm_u_v_os").mkdir(parents=True)
    lines = []
    for db, subs in (("casme2", [f"sub{i + 1:02d}" for i in range(n_sub)]),
                     ("smic", [f"s{i + 1:02d}" for i in range(n_sub)]),
                     ("samm", [str(6 + i) for i in range(n_sub)])):
        for sub in subs:
            for k in range(n_per):
                label = k % 3
                clip = {"casme2": f"EP{k + 1:02d}_01", "smic": f"{sub}_ne_{k + 1:02d}",
                        "samm": f"{sub.zfill(3)}_{k + 1}_1"}[db]
                lines.append(f"{db},{sub},{clip},{label}")
                img = rng.integers(0, 60, (28, 28, 3)).astype(np.uint8)
                img[:, :, label] += signal  # class shows in one channel
                name = f"{sub.zfill(3) if db == 'samm' else sub}_{clip} .png"
                cv2.imwrite(str(meg / "STSNet_whole_norm_u_v_os" / name), img)
    (meg / "combined_3class_gt.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return root


@pytest.fixture
def flow_root(tmp_path):
    return write_flow_root(tmp_path / "data")


def _cfg(root, out, **kw):
    base = dict(rep="precomputed", model="ststnet", protocol="cde", data_root=str(root), out=str(out),
                epochs=15, n_boot=50, model_params={"lr": 5e-3, "batch_size": 32})
    base.update(kw)
    return resolve(base)


def test_run_writes_a_complete_run_folder(flow_root, tmp_path):
    run = execute(_cfg(flow_root, tmp_path / "runs"), progress=False)
    for f in ("config.json", "metrics.json", "predictions.csv", "megc2019_log.txt", "confusion.png"):
        assert (run / f).exists(), f
    m = load_result(run)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["n_samples"] == 54 and cfg["n_subjects"] == 9 and cfg["n_folds"] == 9
    assert cfg["packages"]["torch"] and cfg["data_fingerprint"]
    import pandas as pd

    pred = pd.read_csv(run / "predictions.csv")
    assert len(pred) == 54 and set(pred.fold) == set(pred.subject)
    classes = list(m.classes)
    y, p = pred.truth.map(classes.index), pred.prediction.map(classes.index)
    o = m.metrics.overall
    assert o.uf1.mean == pytest.approx(uf1(y, p)) and o.uar.mean == pytest.approx(uar(y, p))
    assert o.uf1.mean > 0.8  # the class is plainly visible: the pipeline must learn it
    assert set(m.metrics.per_database) == {"casme2", "samm", "smic"}
    assert o.uf1.ci.unit == "subject" and o.uf1.ci.low <= o.uf1.mean <= o.uf1.ci.high
    assert json.loads((run / "metrics.json").read_text())["schema_version"] == m.schema_version == 2


def _as_version_1(fold_file):
    """A fold file as written before records carried their samples (indices only)."""
    rec = json.loads(fold_file.read_text())
    for k in ("schema_version", "keys", "subjects", "databases", "truth", "training", "weights_source",
              "last_epoch_proba", "last_epoch_pred"):
        rec.pop(k)
    fold_file.write_text(json.dumps(rec))


def test_interrupted_run_resumes_without_retraining_finished_folds(flow_root, tmp_path, monkeypatch):
    cfg = _cfg(flow_root, tmp_path / "runs", epochs=2)
    run = execute(cfg, progress=False)
    first, predictions = load_result(run), (run / "predictions.csv").read_text()
    (run / "metrics.json").unlink()
    fold_files = sorted((run / "folds" / "seed0").glob("*.json"))
    fold_files[0].unlink()
    for f in fold_files[1:4]:  # an old run: its finished folds in the first fold-file version
        _as_version_1(f)
    calls = []
    import benchmark.folds as runner  # where run_unit looks run_fold up

    original = runner.run_fold
    monkeypatch.setattr(runner, "run_fold", lambda *a, **k: calls.append(1) or original(*a, **k))
    execute(cfg, progress=False)
    assert len(calls) == 1
    assert load_result(run).metrics.overall.uf1.mean == pytest.approx(first.metrics.overall.uf1.mean)
    assert (run / "predictions.csv").read_text() == predictions


def test_same_seed_same_predictions(flow_root, tmp_path):
    a = execute(_cfg(flow_root, tmp_path / "a", epochs=3), progress=False)
    b = execute(_cfg(flow_root, tmp_path / "b", epochs=3), progress=False)
    assert (a / "predictions.csv").read_text() == (b / "predictions.csv").read_text()


def test_oracle_and_inner_val_are_recorded(flow_root, tmp_path):
    oracle = load_result(execute(_cfg(flow_root, tmp_path / "r", epochs=3, selection="oracle"), progress=False))
    assert oracle.oracle is True and all(e is not None for e in oracle.best_epochs)
    inner = load_result(execute(_cfg(flow_root, tmp_path / "r", epochs=3, selection="inner-val"), progress=False))
    assert inner.oracle is False and inner.selection == "inner-val" and inner.fixed_companion is None


class _Leaky(Representation):
    """A 'learned' representation that claims to have seen every subject."""

    kind = "flow_image"
    learned = True

    def fit(self, samples, y=None):
        self.trained_on_ = {s.subject for s in samples} | {"casme2/sub01"}
        return self

    def transform(self, samples):
        return np.zeros((len(samples), 3, 28, 28), np.float32)


if "test-leaky" not in REPRESENTATIONS:
    REPRESENTATIONS.register("test-leaky")(_Leaky)


def test_contamination_is_refused_or_marked(flow_root, tmp_path):
    with pytest.raises(ContaminationError, match="casme2/sub01"):
        execute(_cfg(flow_root, tmp_path / "r", rep="test-leaky", epochs=1), progress=False)
    m = load_result(execute(_cfg(flow_root, tmp_path / "r", rep="test-leaky", epochs=1,
                                 allow_contamination=True), progress=False))
    assert m.contaminated == ("casme2/sub01",)


def test_cli_errors_are_one_clear_line(flow_root, tmp_path, capsys):
    assert main(["run", "--rep", "precomputed", "--model", "ststnet", "--protocol", "cde",
                 "--data-root", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["run", "--rep", "precomputd", "--model", "ststnet", "--protocol", "cde",
                 "--data-root", str(flow_root)]) == 2
    assert "did you mean precomputed" in capsys.readouterr().err


def test_unknown_config_keys_are_errors(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rep: precomputed\nmodel: ststnet\nprotocol: cde\ndata: synthetic\nepoch: 3\n")
    with pytest.raises(ConfigError, match="unknown config keys: epoch"):
        resolve({}, cfg)
    with pytest.raises(ConfigError, match="selection"):
        resolve({"rep": "a", "model": "b", "protocol": "c", "data": "synthetic", "selection": "best"})


def test_parallel_workers_give_the_same_predictions(flow_root, tmp_path):
    seq = execute(_cfg(flow_root, tmp_path / "a", epochs=2), progress=False)
    par = execute(_cfg(flow_root, tmp_path / "b", epochs=2, workers=2), progress=False)
    a = __import__("pandas").read_csv(seq / "predictions.csv")
    b = __import__("pandas").read_csv(par / "predictions.csv")
    assert (a.prediction == b.prediction).mean() >= 0.95  # 1 vs 2 torch threads: float noise only


def test_an_oracle_run_writes_the_fixed_run_it_trained(flow_root, tmp_path):
    """Same training, two rows: the oracle run's companion equals a direct fixed run byte for byte."""
    oracle = execute(_cfg(flow_root, tmp_path / "o", epochs=4, selection="oracle"), progress=False)
    fixed = execute(_cfg(flow_root, tmp_path / "f", epochs=4), progress=False)
    twin = tmp_path / "o" / fixed.name
    assert twin.is_dir() and json.loads((twin / "config.json").read_text())["derived_from"] == oracle.name
    assert (twin / "predictions.csv").read_text() == (fixed / "predictions.csv").read_text()
    assert load_result(twin).derived_from == oracle.name
    note = load_result(oracle).fixed_companion
    assert note.derived_folds == 9 and note.run_id == fixed.name
    gap = load_result(oracle).metrics.overall.uf1.mean - load_result(twin).metrics.overall.uf1.mean
    d = note.oracle_minus_fixed.uf1
    assert d.difference == pytest.approx(gap) and d.low <= d.difference <= d.high
    # the oracle's own predictions are its best epochs', which differ from the last epoch somewhere
    assert (oracle / "predictions.csv").read_text() != (twin / "predictions.csv").read_text()


def test_an_oracle_run_beside_a_finished_fixed_run_only_compares(flow_root, tmp_path):
    fixed = execute(_cfg(flow_root, tmp_path / "r", epochs=3), progress=False)
    before = (fixed / "metrics.json").read_text()
    oracle = execute(_cfg(flow_root, tmp_path / "r", epochs=3, selection="oracle"), progress=False)
    note = load_result(oracle).fixed_companion
    assert note.direct_folds == 9 and note.derived_folds == 0
    assert note.direct_predictions_agreeing == "54/54" and note.oracle_minus_fixed is not None
    assert (fixed / "metrics.json").read_text() == before


def _children(pid):
    import os

    out = []
    for d in os.listdir("/proc"):
        try:
            stat = open(f"/proc/{d}/stat").read()
        except (OSError, ValueError):
            continue
        if d.isdigit() and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(d))
    return out


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_killing_a_run_ends_its_worker_processes(flow_root, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "benchmark", "run", "--rep", "precomputed", "--model", "ststnet",
                             "--protocol", "cde", "--data-root", str(flow_root), "--epochs", "100000",
                             "--workers", "2", "--out", str(tmp_path / "runs"), "--quiet"],
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    workers = []
    while len(workers) < 2 and time.time() < deadline:  # the two fold workers (+ resource tracker)
        time.sleep(0.5)
        workers = [c for c in _children(proc.pid) if b"multiprocessing.spawn" in open(f"/proc/{c}/cmdline", "rb").read()]
    assert len(workers) == 2, "the run did not start its workers"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while any(os.path.exists(f"/proc/{w}") and b"Z" not in open(f"/proc/{w}/stat", "rb").read().split(b")")[1][:3]
              for w in workers) and time.time() < deadline:
        time.sleep(0.2)
    alive = [w for w in workers if os.path.exists(f"/proc/{w}")
             and open(f"/proc/{w}/stat", "rb").read().split(b")")[1].split()[0] != b"Z"]
    assert not alive, f"workers {alive} outlived their run"


def test_refinalize_repools_a_finished_run_and_keeps_its_config(flow_root, tmp_path):
    from benchmark.runner import refinalize

    fixed = execute(_cfg(flow_root, tmp_path / "r", epochs=2), progress=False)
    oracle = execute(_cfg(flow_root, tmp_path / "r", epochs=2, selection="oracle"), progress=False)
    config, m = (oracle / "config.json").read_text(), load_result(oracle)
    for f in (oracle / "folds" / "seed0").glob("*.json"):  # as an oracle run made before last-epoch predictions
        _as_version_1(f)
    old = {k: v for k, v in m.to_json().items() if k not in ("fixed_companion", "schema_version")}
    (oracle / "metrics.json").write_text(json.dumps(old))  # and before metrics.json had a version
    assert main(["refinalize", str(oracle)]) == 0
    again = load_result(oracle)
    assert (oracle / "config.json").read_text() == config and again.wall_s == m.wall_s
    assert again.fixed_companion.oracle_minus_fixed == m.fixed_companion.oracle_minus_fixed
    assert again.fixed_companion.direct_folds == 9
    next((fixed / "folds" / "seed0").glob("*.json")).unlink()
    with pytest.raises(RuntimeError, match="not finished"):
        refinalize(fixed)


def test_workers_auto_uses_the_cores_for_torch_models_on_the_cpu_only(flow_root, tmp_path):
    import os

    from benchmark.runner import plan, worker_count

    torch_run = plan(_cfg(flow_root, tmp_path, device="cpu"))
    assert torch_run.cfg.workers == "auto"  # the default
    assert worker_count(torch_run) == min(os.cpu_count(), len(torch_run.folds))
    assert worker_count(plan(_cfg(flow_root, tmp_path, model="logreg", epochs=None, model_params={}))) == 1
    assert worker_count(plan(_cfg(flow_root, tmp_path, workers=1))) == 1
    with pytest.raises(ConfigError, match="workers must be 'auto' or an integer"):
        _cfg(flow_root, tmp_path, workers="two")


def test_replay_restores_the_per_sample_files_only_when_the_metrics_come_out_equal(flow_root, tmp_path):
    from benchmark.runner import replay

    run = execute(_cfg(flow_root, tmp_path / "r", epochs=2), progress=False)
    predictions = (run / "predictions.csv").read_text()
    committed = {f: (run / f).read_text() for f in ("config.json", "metrics.json")}
    shutil.rmtree(run / "folds")
    (run / "predictions.csv").unlink()  # as on a fresh checkout: per-sample files are not committed
    assert main(["replay", str(run), "--scratch", str(tmp_path / "s1")]) == 0
    assert (run / "predictions.csv").read_text() == predictions
    assert {f: (run / f).read_text() for f in committed} == committed
    assert len(list((run / "folds" / "seed0").glob("*.json"))) == 9
    # a committed figure the code no longer produces: refused, nothing written into the run folder
    shutil.rmtree(run / "folds")
    (run / "predictions.csv").unlink()
    m = json.loads(committed["metrics.json"])
    m["metrics"]["overall"]["per_seed"][0]["confusion"][0][0] += 1
    (run / "metrics.json").write_text(json.dumps(m))
    with pytest.raises(RuntimeError, match="confusion"):
        replay(run, tmp_path / "s2")
    assert not (run / "predictions.csv").exists() and not (run / "folds").exists()
    assert main(["replay", str(run), "--scratch", str(tmp_path / "s3")]) == 1
