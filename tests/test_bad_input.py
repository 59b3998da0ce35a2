"""Bad input is one clear line, before any work, and never a wrong number with exit code 0
(issue 15). Tiny generated folders; see tests/test_runner.py for the flow-image fixture."""
from __future__ import annotations

import json

import pytest

from benchmark.cli import main
from benchmark.config import ConfigError, resolve
from tests.test_runner import write_flow_root


@pytest.fixture
def flow_root(tmp_path):
    return write_flow_root(tmp_path / "data")


def _run(capsys, *args) -> tuple[int, str]:
    rc = main(["run", "--quiet", *args])
    err = capsys.readouterr().err.strip()
    return rc, err


# ---------------------------------------------------------------- 5. numeric settings


@pytest.mark.parametrize("values, message", [
    ({"epochs": -1}, "epochs must be >= 1"),
    ({"epochs": 0}, "epochs must be >= 1"),
    ({"n_boot": 0}, "n_boot must be >= 1"),
    ({"seeds": [0, 0]}, "seeds must be distinct"),
    ({"allow_contamination": "no"}, "allow_contamination must be true or false"),
    ({"epochs": "abc"}, "epochs must be an integer or null"),
    ({"seeds": 5}, "seeds must be a list of integers"),
    ({"seeds": ["1"]}, "seeds must be a list of integers"),
    ({"workers": "two"}, "workers must be 'auto' or an integer"),
    ({"n_boot": "100"}, "n_boot must be an integer"),
    ({"model_params": [1, 2]}, "model_params must be a mapping"),
    ({"epochs": True}, "epochs must be an integer or null"),
])
def test_every_setting_is_type_and_range_checked(values, message):
    with pytest.raises(ConfigError, match=message):
        resolve({"rep": "precomputed", "model": "ststnet", "protocol": "cde", "data": "synthetic", **values})


def test_bad_settings_fail_before_any_data_is_read(tmp_path, capsys, monkeypatch):
    import benchmark.plan as runner  # where planning reads the dataset

    def no_reading(*a, **k):
        raise AssertionError("data was read")

    monkeypatch.setattr(runner, "read_dataset", no_reading)
    root = str(tmp_path / "nodata")
    (tmp_path / "nodata").mkdir()
    common = ["--rep", "precomputed", "--protocol", "cde", "--data-root", root, "--out", str(tmp_path / "r")]
    cases = [
        (["--model", "ststnet", "--epochs", "-1"], "epochs must be >= 1"),
        (["--model", "ststnet", "--n-boot", "0"], "n_boot must be >= 1"),
        (["--model", "ststnet", "--seeds", "0,0"], "seeds must be distinct"),
        (["--model", "ststnet", "--seeds", "abc"], "--seeds 'abc'"),
        (["--model", "logreg", "--epochs", "2"], "--epochs: model 'logreg' is not trained in epochs"),
        (["--model", "ststnet", "--model-param", "lrr=0.1"], "--model-param lrr: model 'ststnet' has no such parameter"),
        (["--model", "ststnet", "--rep-param", "chanel_order=rgb"], "--rep-param chanel_order"),
    ]
    for extra, message in cases:
        rc, err = _run(capsys, *common, *extra)
        assert rc == 2 and err.startswith("error: ") and message in err and "\n" not in err, (extra, err)


def test_yaml_syntax_and_type_errors_name_the_file_or_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1, 2\nseeds: [0]\n")
    rc, err = _run(capsys, "--rep", "precomputed", "--model", "ststnet", "--protocol", "cde", "--config", str(bad))
    assert rc == 2 and str(bad) in err and "YAML syntax error" in err and "\n" not in err
    typed = tmp_path / "typed.yaml"
    typed.write_text('epochs: "abc"\n')
    rc, err = _run(capsys, "--rep", "precomputed", "--model", "ststnet", "--protocol", "cde", "--config", str(typed))
    assert rc == 2 and "epochs must be an integer" in err


def test_a_shared_epochs_in_a_sweep_applies_only_to_models_that_take_it(tmp_path, capsys):
    from benchmark.sweep import expand, load_spec

    sweep = expand(dict(reps=["precomputed"], models=["logreg", "ststnet"], protocols=["cde"], data="synthetic",
                        epochs=3, model_params={"lr": 0.01}, out=str(tmp_path)))
    by_model = {c.model: c for c in sweep.configs}
    assert by_model["ststnet"].epochs == 3 and by_model["logreg"].epochs is None
    assert by_model["ststnet"].model_params == {"lr": 0.01}
    assert any("epochs not applied to logreg" in n for n in sweep.notes)
    with pytest.raises(ConfigError, match="--epochs: model 'logreg'"):  # an entry's own setting is checked
        expand(dict(reps=["precomputed"], models=[{"logreg": {"epochs": 3}}], protocols=["cde"], data="synthetic"))
    bad = tmp_path / "spec.yaml"
    bad.write_text("reps: [precomputed\n")
    with pytest.raises(ConfigError, match="YAML syntax error"):
        load_spec(bad)


# ---------------------------------------------------------------- 4. the MEGC2019 list


def _gt_lines(root):
    return (root / "megc2019" / "combined_3class_gt.csv").read_text().splitlines()


def _write_gt(root, lines):
    (root / "megc2019" / "combined_3class_gt.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())


def test_a_list_that_is_not_the_official_composite_is_a_defect(shared_data, tmp_path):
    from benchmark.datasets import megc2019

    root = tmp_path / "megc2019"
    root.mkdir()
    src = (shared_data / "megc2019" / megc2019.GT_FILE).read_text().splitlines()
    (root / megc2019.GT_FILE).write_text("\r\n".join(src) + "\r\n")  # the real list (tmp copy)
    assert not [d for d in megc2019.read(root, join_frames=False).defects if d.kind == "differs_from_official"]
    (root / megc2019.GT_FILE).write_text("\r\n".join(src[1:]) + "\r\n")  # one row removed
    d = [d for d in megc2019.read(root, join_frames=False).defects if d.kind == "differs_from_official"]
    assert len(d) == 1 and "441 samples (official 442)" in d[0].detail


def test_the_synthetic_composite_is_checked_against_its_own_count(synthetic_tiny, tmp_path):
    import shutil

    from benchmark.datasets import megc2019

    assert not [d for d in megc2019.read(synthetic_tiny / "megc2019").defects if d.kind == "differs_from_official"]
    root = tmp_path / "syn"
    shutil.copytree(synthetic_tiny, root, symlinks=True)
    _write_gt(root, _gt_lines(root)[1:])
    d = [d for d in megc2019.read(root / "megc2019").defects if d.kind == "differs_from_official"]
    assert len(d) == 1 and "the synthetic composite has 36" in d[0].detail


def test_a_duplicate_with_another_label_is_an_error(flow_root, tmp_path, capsys):
    lines = _gt_lines(flow_root)
    db, sub, clip, label = lines[0].split(",")
    _write_gt(flow_root, lines + [f"{db},{sub},{clip},{(int(label) + 1) % 3}"])
    rc, err = _run(capsys, "--rep", "precomputed", "--model", "logreg", "--protocol", "cde",
                   "--data-root", str(flow_root), "--out", str(tmp_path / "runs"))
    assert rc == 2 and "listed twice with different labels" in err and "line 1" in err and "\n" not in err


# ---------------------------------------------------------------- 1. changed inputs


def _replace_keeping_stat(path, data: bytes):
    import os

    st = os.stat(path)
    assert len(data) == st.st_size
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same name, size and time stamp


def test_a_changed_input_file_is_never_read_back_from_old_folds(flow_root, tmp_path, capsys):
    import cv2

    flow = sorted((flow_root / "megc2019" / "STSNet_whole_norm_u_v_os").iterdir())[0]
    img = cv2.imread(str(flow))
    uncompressed = [cv2.IMWRITE_PNG_COMPRESSION, 0]  # the file size does not depend on the pixels
    cv2.imwrite(str(flow), img, uncompressed)
    args = ["--rep", "precomputed", "--model", "logreg", "--protocol", "cde", "--data-root", str(flow_root),
            "--out", str(tmp_path / "runs"), "--n-boot", "20"]
    rc, err = _run(capsys, *args)
    assert rc == 0, err
    _replace_keeping_stat(flow, cv2.imencode(".png", 255 - img, uncompressed)[1].tobytes())
    rc, err = _run(capsys, *args)
    assert rc == 2 and "input files (frames or flow images) changed" in err and "\n" not in err


def test_the_representation_cache_tells_a_replaced_frame_apart(tmp_path):
    from representations._cache import cache_key

    frame = tmp_path / "img1.jpg"
    frame.write_bytes(b"a" * 100)
    key = cache_key({"rep": "tvl1"}, [frame])
    _replace_keeping_stat(frame, b"b" * 100)
    assert cache_key({"rep": "tvl1"}, [frame]) != key


# ---------------------------------------------------------------- 2. blank inputs, dropped samples


@pytest.fixture
def syn_copy(synthetic_tiny, tmp_path, rep_cache):
    """A private copy of the tiny synthetic root (it is modified), with a private rep cache."""
    import shutil

    root = tmp_path / "syn"
    shutil.copytree(synthetic_tiny, root)
    return root


def _frames_run(capsys, root, tmp_path, *extra):
    return _run(capsys, "--rep", "framediff", "--model", "logreg", "--protocol", "cde", "--dataset", "casme2",
                "--data-root", str(root), "--out", str(tmp_path / "runs"), "--n-boot", "20", *extra)


def test_an_unreadable_sibling_database_is_fatal_for_frame_representations(syn_copy, tmp_path, capsys):
    sheet = next((syn_copy / "casme2").glob("*.xlsx"))
    sheet.unlink()  # every CASME II sample now "has no frames"
    for extra in ([], ["--rep-param", "on_missing=blank"], ["--rep-param", "on_missing=drop"]):
        rc, err = _frames_run(capsys, syn_copy, tmp_path, *extra)
        assert rc == 2 and "cannot be read" in err and "casme2" in err and "sheet" in err.lower(), (extra, err)
        assert "\n" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def _remove_clip_folders(root, n):
    import shutil

    clips = sorted(p for p in (root / "casme2" / "Cropped").glob("sub*/*") if p.is_dir())[:n]
    for c in clips:
        shutil.rmtree(c)
    return [f"casme2/{c.parent.name}/{c.name}" for c in clips]


def test_blank_inputs_are_capped(syn_copy, tmp_path, capsys):
    _remove_clip_folders(syn_copy, 3)  # 3 of 12 CASME II samples: far above the cap
    rc, err = _frames_run(capsys, syn_copy, tmp_path, "--rep-param", "on_missing=blank")
    assert rc == 2 and "have no frames; on_missing=blank is allowed for at most 5 %" in err
    rc, err = _frames_run(capsys, syn_copy, tmp_path)  # the default names the way out, and not --dataset
    assert rc == 2 and "on_missing=drop" in err and "--dataset casme2" not in err


def test_samples_without_frames_can_be_dropped_and_the_run_says_so(syn_copy, tmp_path, capsys):
    gone = _remove_clip_folders(syn_copy, 2)
    rc = main(["run", "--quiet", "--rep", "framediff", "--model", "logreg", "--protocol", "cde", "--dataset",
               "casme2", "--data-root", str(syn_copy), "--out", str(tmp_path / "runs"), "--n-boot", "20",
               "--rep-param", "on_missing=drop"])
    out = capsys.readouterr().out
    assert rc == 0
    run = next((tmp_path / "runs").iterdir())
    header = json.loads((run / "config.json").read_text())
    evaluated = {line.split(",")[0] for line in (run / "predictions.csv").read_text().splitlines()[1:]}
    kept = [g for g in gone if g in header["inputs"]["dropped_samples"]]
    assert kept and not set(kept) & evaluated
    assert header["inputs"]["dropped"] == len(kept) and header["inputs"]["blank"] == 0
    assert f"{len(kept)} sample(s) without frames left out (on_missing=drop)" in out


# ---------------------------------------------------------------- 3. broken images


def _cut(path, keep: float = 0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_a_truncated_frame_is_an_error_naming_it(syn_copy, tmp_path, capsys):
    from benchmark.datasets import read_dataset

    s = next(s for s in read_dataset("casme2", syn_copy / "casme2").samples if s.frames)
    apex, _ = s.frame_path(s.apex)
    _cut(apex)
    rc, err = _frames_run(capsys, syn_copy, tmp_path)
    assert rc == 2 and str(apex) in err and "truncated" in err and "\n" not in err


def test_a_grayscale_or_odd_sized_flow_image_is_an_error_naming_it(flow_root, tmp_path, capsys):
    import cv2

    flows = sorted((flow_root / "megc2019" / "STSNet_whole_norm_u_v_os").iterdir())
    args = ["--rep", "precomputed", "--model", "logreg", "--protocol", "cde", "--data-root", str(flow_root),
            "--out", str(tmp_path / "runs"), "--n-boot", "20"]
    img = cv2.imread(str(flows[1]))
    cv2.imwrite(str(flows[1]), img[:, :, 0])  # one channel
    rc, err = _run(capsys, *args)
    assert rc == 2 and str(flows[1]) in err and "1 channel(s), expected 3" in err
    cv2.imwrite(str(flows[1]), cv2.resize(img, (32, 32)))
    rc, err = _run(capsys, *args)
    assert rc == 2 and str(flows[1]) in err and "32x32" in err


def test_data_check_opens_every_image_a_run_reads(flow_root, capsys):
    import cv2

    meg = flow_root / "megc2019"
    flows = sorted((meg / "STSNet_whole_norm_u_v_os").iterdir())
    flows[0].write_bytes(b"")  # zero bytes
    _cut(flows[1])
    cv2.imwrite(str(flows[2]), cv2.imread(str(flows[2]))[:, :, 0])
    rc = main(["data", "check", "--dataset", "megc2019", "--root", str(meg)])
    out = capsys.readouterr().out
    assert rc == 1 and "3 unreadable" in out
    assert f"{flows[0]}: empty file" in out and f"image {flows[1]} is truncated" in out
    assert f"{flows[2]}: flow image has 1 channel(s)" in out
    assert main(["data", "check", "--dataset", "megc2019", "--root", str(meg), "--images", "none"]) == 0


def test_data_check_summarises_missing_frames_per_subject(syn_copy, capsys):
    import shutil

    for sub in sorted((syn_copy / "casme2" / "Cropped").iterdir())[:2]:
        shutil.rmtree(sub)
    assert main(["data", "check", "--dataset", "casme2", "--root", str(syn_copy / "casme2")]) == 0
    out = capsys.readouterr().out
    assert "2 subject(s) have no frame folders: casme2/sub01, casme2/sub02" in out
    assert out.count("no frame folder ") == 0  # not one line per clip


# ---------------------------------------------------------------- one line naming the file


def test_damaged_run_files_are_named_on_resume_and_in_the_leaderboard(flow_root, tmp_path, capsys):
    args = ["--rep", "precomputed", "--model", "logreg", "--protocol", "cde", "--data-root", str(flow_root),
            "--out", str(tmp_path / "runs"), "--n-boot", "20"]
    assert _run(capsys, *args)[0] == 0
    run = next((tmp_path / "runs").iterdir())
    fold = next((run / "folds").rglob("*.json"))
    fold.write_text(fold.read_text()[:20])
    rc, err = _run(capsys, *args)
    assert rc == 2 and str(fold) in err and "not valid JSON" in err and "delete it" in err and "\n" not in err
    (run / "metrics.json").write_text('{"run_id": ')
    rc = main(["leaderboard", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "LB.md")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and str(run / "metrics.json") in err and "\n" not in err
    (run / "metrics.json").write_text('{"run_id": "x"}')
    rc = main(["leaderboard", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "LB.md")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and str(run) in err and "\n" not in err
    (run / "config.json").write_text("{")
    rc, err = _run(capsys, *args)
    assert rc == 2 and str(run / "config.json") in err and "\n" not in err


def test_a_data_root_that_is_a_file_says_so(tmp_path, capsys):
    f = tmp_path / "data.zip"
    f.write_bytes(b"PK")
    rc, err = _run(capsys, "--rep", "precomputed", "--model", "logreg", "--protocol", "cde", "--data-root", str(f))
    assert rc == 2 and "is a file, not a folder" in err


def test_a_baselines_file_with_a_metric_typo_is_one_line(tmp_path, capsys):
    path = tmp_path / "baselines.json"
    path.write_text(json.dumps({"runs": [{"config": {"rep": "precomputed", "model": "logreg", "protocol": "cde",
                                                     "data": "synthetic"}, "metrics": {"uf": 0.5}}]}))
    rc = main(["check", "--baselines", str(path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "runs[0].metrics: unknown metric 'uf'" in err and "\n" not in err


# ---------------------------------------------------------------- hygiene of recorded paths


def test_rep_report_names_the_cache_relative_to_its_root(synthetic_tiny, tmp_path, rep_cache, capsys):
    rc, err = _frames_run(capsys, synthetic_tiny, tmp_path)
    assert rc == 0, err
    text = (next(p for p in (tmp_path / "runs").iterdir() if p.is_dir()) / "rep_report.json").read_text()
    assert str(tmp_path) not in text and '"$MER_BENCHMARK_CACHE/reps"' in text


def test_checkpoints_are_recorded_by_content(tmp_path):
    import hashlib

    from benchmark.provenance import checkpoint_records
    from sklearn.base import BaseEstimator

    class WithCheckpoint(BaseEstimator):
        def __init__(self, checkpoint=None):
            self.checkpoint = checkpoint

    ck = tmp_path / "tok.pt"
    ck.write_bytes(b"weights")
    rec = checkpoint_records(WithCheckpoint(str(ck)))
    assert rec["checkpoint"]["sha256"] == hashlib.sha256(b"weights").hexdigest() and rec["checkpoint"]["bytes"] == 7


def test_benchmark_check_fails_on_an_absolute_path_in_results(tmp_path):
    from benchmark.check import _check_paths

    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "rep_report.json").write_text('{"cache": {"dir": "$MER_BENCHMARK_CACHE/reps"}}')
    (tmp_path / "LEADERBOARD.md").write_text("| `r1` | ../shared/data |\n")
    assert _check_paths(tmp_path) == []
    (run / "config.json").write_text('{"rep_params": {"checkpoint": "/tmp/dfe/dfe.npz"}}')
    (run / "folds").mkdir()
    (run / "folds" / "x.json").write_text('"/home/me/y"')  # per-sample files are not committed
    failures = _check_paths(tmp_path)
    assert len(failures) == 1 and "config.json names the absolute path /tmp/dfe/dfe.npz" in failures[0]


def test_an_apex_read_from_frames_obeys_on_missing(tmp_path):
    """Per-database LOSO reads the apex from the frames: a clip with no frames (CASME II
    sub12/EP09_02 on the shared copy) failed every fold with exit code 1 instead of getting the
    arena's recorded policy (blank, drop, or the one-line error before any work)."""
    from types import SimpleNamespace

    import cv2
    import numpy as np

    from benchmark.datasets import DatasetError
    from representations.base import RepresentationError
    from benchmark.core.samples import Sample
    from benchmark.inputs import apply_frames_policy
    from protocols.base import LabelledSet
    from representations import REPRESENTATIONS

    frame = tmp_path / "f.jpg"
    cv2.imwrite(str(frame), np.full((40, 30, 3), 200, np.uint8))
    full = [Sample("casme2", f"casme2/s{i}", f"c{i}", "happiness", 1, 2, 3, frames={1: frame, 2: frame, 3: frame})
            for i in range(30)]
    empty = Sample("casme2", "casme2/s99", "c99", "happiness", 1, 2, 3)
    sel = LabelledSet([*full, empty], np.zeros(31, int), ("happiness",))
    report = SimpleNamespace(defects=[], name="casme2")
    cfg = lambda policy: resolve({"rep": "apex", "model": "logreg", "protocol": "loso", "dataset": "casme2",
                                  "data_root": str(tmp_path), "rep_params": {"on_missing": policy}})
    with pytest.raises(DatasetError, match="1 of 31 samples have no frames"):
        apply_frames_policy(cfg("error"), report, sel)
    kept, _ = apply_frames_policy(cfg("drop"), report, sel)
    assert len(kept.samples) == 30
    same, params = apply_frames_policy(cfg("blank"), report, sel)
    assert len(same.samples) == 31
    x = REPRESENTATIONS.get("apex")(**params).transform(same.samples)
    assert x.shape == (31, 3, 28, 28) and not x[-1].any() and x[0].any()
    with pytest.raises(RepresentationError, match="neither an apex crop nor frames"):
        REPRESENTATIONS.get("apex")().transform([empty])
    crop = Sample("samm", "samm/s1", "c1", "happiness", extras={"apex_image": frame})
    assert REPRESENTATIONS.get("apex")().has_inputs(crop) and not REPRESENTATIONS.get("apex")().has_inputs(empty)
