"""`benchmark compare`: paired bootstrap of two runs on the same samples."""
import pytest

from benchmark.cli import main
from benchmark.compare import compare
from benchmark.results import load_result
from benchmark.runner import execute
from tests.test_runner import _cfg, write_flow_root


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cmp")
    root = write_flow_root(tmp / "data", n_sub=3, n_per=6, signal=6)
    out = tmp / "runs"
    oracle = execute(_cfg(root, out, epochs=4, selection="oracle"), progress=False)
    fixed = out / load_result(oracle).fixed_companion.run_id
    two_seeds = execute(_cfg(root, out, epochs=4, seeds=[1, 2]), progress=False)
    casme = execute(_cfg(root, out, epochs=2, dataset="casme2"), progress=False)
    return oracle, fixed, two_seeds, casme


def test_difference_is_that_of_the_two_runs_metrics(runs):
    oracle, fixed, two_seeds, _ = runs
    res = compare(oracle, fixed, n_boot=200)
    for name in ("uf1", "uar", "accuracy"):
        m = res["metrics"][name]
        want = load_result(oracle).metrics.overall.metric(name).mean - load_result(fixed).metrics.overall.metric(name).mean
        assert m["difference"] == pytest.approx(want)
        assert m["low"] <= m["difference"] <= m["high"]
    assert res["unit"] == "subject" and res["n"] == 54 and 0 < res["predictions_differing"] < 1
    assert compare(fixed, fixed, n_boot=50)["metrics"]["uf1"]["difference"] == 0
    multi = compare(two_seeds, fixed, n_boot=50)["metrics"]["uf1"]
    assert multi["a"] == pytest.approx(load_result(two_seeds).metrics.overall.uf1.mean)
    assert compare(two_seeds, two_seeds, n_boot=20)["predictions_differing"] == 0


def test_runs_on_other_samples_or_without_predictions_are_clear_errors(runs, tmp_path, capsys):
    oracle, fixed, _, casme = runs
    with pytest.raises(ValueError, match="different samples"):
        compare(fixed, casme)
    with pytest.raises(FileNotFoundError, match="finished run folder"):
        compare(fixed, tmp_path)
    assert main(["compare", str(oracle), str(fixed), "--n-boot", "50"]) == 0
    assert "| UF1 |" in capsys.readouterr().out
