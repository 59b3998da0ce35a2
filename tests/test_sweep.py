"""Sweeps (benchmark/sweep.py): spec validation, the local executor and a two-config sweep on
local Ray, each checked against `benchmark run` on the tiny synthetic dataset."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from benchmark import rundir
from benchmark.cli import main
from benchmark.config import ConfigError
from benchmark.runner import execute
from benchmark.sweep import expand, load_spec, run_sweep

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["logreg", "svm"]  # deterministic, so a sweep must give `benchmark run`'s predictions exactly


def _spec(root, tmp_path, **kw) -> dict:
    spec = dict(reps=["precomputed"], models=MODELS, protocols=["cde"], data_root=str(root),
                out=str(tmp_path / "runs"), n_boot=20, folds_per_unit=6, leaderboard=str(tmp_path / "LB.md"))
    spec.update(kw)
    return spec


@pytest.fixture(scope="module")
def reference(synthetic_tiny, tmp_path_factory) -> dict:
    """What `benchmark run` writes for each config of the spec (see ``_outputs``)."""
    out = tmp_path_factory.mktemp("reference")
    return _outputs([execute(cfg, progress=False) for cfg in expand(_spec(synthetic_tiny, out)).configs])


def _outputs(runs) -> dict:
    """run id -> predictions, metrics and config.json, less what differs between any two runs
    (times, output folder)."""
    out = {}
    for run in runs:
        m = json.loads((run / "metrics.json").read_text())
        h = json.loads((run / "config.json").read_text())
        h["config"].pop("out")
        out[run.name] = ((run / "predictions.csv").read_text(), m["metrics"],
                         {k: v for k, v in h.items() if k != "started"})
    return out


@pytest.mark.parametrize("change, message", [
    ({"epoch": 3}, "unknown key 'epoch'"),
    ({"model": "svm"}, "key 'model' is not a sweep key; list values under 'models'"),
    ({"models": []}, "key 'models' must be a non-empty list"),
    ({"reps": ["frames"], "models": ["ststnet"]}, "frames + ststnet + cde: representation 'frames' produces"),
    ({"models": ["logreg", "svn"]}, "did you mean svm"),
    ({"protocols": ["cdf"]}, "did you mean cde"),
    ({"folds_per_unit": 0}, "key 'folds_per_unit' must be an integer >= 1"),
    ({"seeds": "0,1"}, "key 'seeds' must be a non-empty list of integers"),
    ({"selection": "best"}, "selection must be one of"),
    ({"models": ["logreg", {"svm": {"epoch": 1}}]}, "models: svm: unknown key 'epoch'"),
    ({"models": [["svm"]]}, "key 'models': each entry is a name or {name: {settings}}"),
])
def test_bad_specs_are_one_line_errors_naming_the_key(tmp_path, change, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        expand(_spec(tmp_path, tmp_path, **change))


def test_spec_expands_to_the_run_configs_of_benchmark_run(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("reps: precomputed\nmodels: [logreg, svm, ststnet: {epochs: 3, model_params: {lr: 0.1}}, svm]\n"
                    "protocols: [cde, loso]\nseeds: [1, 2]\nmodel_params: {batch_size: 8}\n")
    sweep = load_spec(path)
    assert [(c.model, c.protocol) for c in sweep.configs] == [
        ("logreg", "cde"), ("logreg", "loso"), ("svm", "cde"), ("svm", "loso"), ("ststnet", "cde"), ("ststnet", "loso")]
    assert all(c.data == "synthetic" and c.seeds == (1, 2) for c in sweep.configs)
    assert sweep.configs[-1].epochs == 3 and sweep.configs[-1].model_params == {"batch_size": 8, "lr": 0.1}
    assert sweep.configs[0].epochs is None
    assert sweep.folds_per_unit == 8 and sweep.leaderboard.name == "LEADERBOARD.md"


def test_local_sweep_matches_benchmark_run_and_restarts_with_nothing_to_do(synthetic_tiny, tmp_path, reference,
                                                                           capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_spec(synthetic_tiny, tmp_path)))
    assert main(["sweep", str(path), "--quiet"]) == 0
    assert "2 runs, 6 units: 6 scheduled, 0 already done, 0 failed" in capsys.readouterr().out
    assert load_spec(ROOT / "benchmark" / "examples" / "sweep.yaml").configs  # the example stays valid
    sweep = load_spec(path)
    res = run_sweep(sweep, progress=False)
    assert res.units == 6 and res.ran == [] and res.finalized == []
    assert _outputs(res.runs) == reference
    board = (tmp_path / "LB.md").read_text()
    assert all(f"`{r.name}`" in board for r in res.runs)


def test_two_config_sweep_on_local_ray(synthetic_tiny, tmp_path, reference, rep_cache):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[sweep]'): Ray sweep untested")
    from benchmark.sweep import start_local_ray

    sweep = expand(_spec(synthetic_tiny, tmp_path))
    start_local_ray(num_cpus=2)
    try:
        res = run_sweep(sweep, executor="ray", progress=False)
        assert not res.failed and len(res.ran) == 6 and sorted(res.finalized) == sorted(res.runs)
        assert _outputs(res.runs) == reference
        for run in res.runs:
            assert {"config.json", "metrics.json", "predictions.csv", "megc2019_log.txt"} <= {
                p.name for p in run.iterdir()}

        assert run_sweep(sweep, executor="ray", progress=False).ran == []  # restart: nothing scheduled

        unit = [u for u in res.ran if u.cfg.model == "svm"][1]  # interrupt: two folds of one unit lost
        svm = Path(unit.cfg.out) / unit.cfg.run_id()
        lost = [rundir.fold_path(svm, 0, name) for name in unit.folds[2:4]]
        kept = {p: p.stat().st_mtime_ns for p in (svm / "folds" / "seed0").glob("*.json") if p not in lost}
        for p in lost:
            p.unlink()
        (svm / "metrics.json").unlink()
        again = run_sweep(sweep, executor="ray", progress=False)
        assert again.ran == [unit] and len(kept) == 16
        assert again.finalized == [svm] and all(p.stat().st_mtime_ns == t for p, t in kept.items())
        assert _outputs(again.runs) == reference
        cache = ray.get(ray.remote(lambda: os.environ.get("MER_BENCHMARK_CACHE")).remote())
        assert cache == str(rep_cache.parent)  # workers see the driver's cache folder
    finally:
        ray.shutdown()


def test_a_failed_unit_is_reported_and_the_other_runs_finish(synthetic_tiny, tmp_path, monkeypatch):
    import benchmark.sweep as sweep_mod

    original = sweep_mod.run_unit

    def flaky(unit):
        if unit.cfg.model == "logreg" and unit.folds[0] == "casme2/sub01":
            raise RuntimeError("disk full")
        return original(unit)

    monkeypatch.setattr(sweep_mod, "run_unit", flaky)
    sweep = expand(_spec(synthetic_tiny, tmp_path, dataset="casme2", folds_per_unit=3))  # 2 units a run
    res = run_sweep(sweep, progress=False)
    assert [(u.cfg.model, e) for u, e in res.failed] == [("logreg", "RuntimeError: disk full")]
    assert [r.name for r in res.finalized] == [r.name for r in res.runs if "_svm_" in r.name]
    monkeypatch.setattr(sweep_mod, "run_unit", original)
    again = run_sweep(sweep, progress=False)  # the restart does the rest
    assert [u.cfg.model for u in again.ran] == ["logreg"] and not again.failed and len(again.finalized) == 1


def test_units_reserve_a_gpu_only_for_torch_models_on_cuda(tmp_path):
    from benchmark.sweep import Unit, _gpus_per_unit

    units = [Unit(c, 0, ("a",)) for c in expand(_spec(tmp_path, tmp_path, models=["logreg", "ststnet"])).configs]
    assert list(_gpus_per_unit(units, cluster_gpus=0).values()) == [0, 0]
    assert list(_gpus_per_unit(units, cluster_gpus=2).values()) == [0, 1]
    cuda = [Unit(c, 0, ("a",)) for c in expand(_spec(tmp_path, tmp_path, device="cuda")).configs]
    with pytest.raises(ConfigError, match="device cuda, but the Ray cluster has no GPU"):
        _gpus_per_unit(cuda, cluster_gpus=0)
