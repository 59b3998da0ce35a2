"""`benchmark comparisons` (benchmark/comparisons.py): paired deltas of every arena cell against its
reference, on a 2 x 2 arena of real run folders (tiny synthetic dataset, cheap models)."""
from __future__ import annotations

import json
import shutil

import pytest
import yaml

from benchmark.arenas import load_arena
from benchmark.cli import main
from benchmark.comparisons import ablation_comparisons, arena_comparisons, holm, load_comparisons, problems, \
    write_comparisons
from benchmark.index import Ablation, Index, canonical_runs
from benchmark.runner import execute

REF = "precomputed | linear probe"


@pytest.fixture(scope="module")
def arena_runs(synthetic_tiny, tmp_path_factory):
    """(arena, runs folder with every cell and the chance cell run)."""
    tmp = tmp_path_factory.mktemp("comparisons")
    spec = {"arena": "toy", "protocol": "cde", "data_root": str(synthetic_tiny), "out": str(tmp / "runs"),
            "n_boot": 20, "seeds": [0],
            "rows": [{"precomputed": {"rep": "precomputed"}},
                     {"precomputed · rgb": {"rep": "precomputed", "rep_params": {"channel_order": "rgb"}}}],
            "columns": [{"linear probe": {"model": "logreg"}}, {"dummy": {"model": "dummy", "seeds": [0, 1]}}],
            "chance": {"rep": "precomputed", "model": "dummy", "seeds": [0, 1, 2]},
            "reference": {"row": "precomputed", "column": "linear probe"}}
    (tmp / "toy.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    arena = load_arena(tmp / "toy.yaml")
    for cell in arena.runnable():
        execute(cell.cfg, progress=False)
    return arena, tmp / "runs"


def _copy(runs, tmp_path):
    shutil.copytree(runs, tmp_path / "runs")
    return tmp_path / "runs"


def test_holm_step_down_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> raised to 0.06 (monotone)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0] and holm([]) == []


def test_every_finished_cell_against_the_reference(arena_runs):
    arena, runs = arena_runs
    res = arena_comparisons(arena, Index(), runs, n_boot=200)
    canon = canonical_runs(arena, Index(), runs)
    assert res["reference"] == {"cell": REF, "run": canon[REF]} and res["unit"] == "subject"
    cells = {c["cell"]: c for c in res["comparisons"]}
    assert set(cells) == {"precomputed | dummy", "precomputed · rgb | linear probe", "precomputed · rgb | dummy"}
    assert not res["missing"]  # the chance cell is never compared, nor the reference with itself
    dummy = cells["precomputed | dummy"]
    assert dummy["uf1"]["delta"] < 0 and dummy["uf1"]["low"] <= dummy["uf1"]["delta"] <= dummy["uf1"]["high"]
    assert dummy["excludes_zero"] == (dummy["uf1"]["high"] < 0)
    assert all(c["p_holm"] >= c["uf1"]["p"] and c["holm_significant"] == (c["p_holm"] <= 0.05)
               for c in cells.values())
    lp = [b for b in res["best_vs_second"] if b["column"] == "linear probe"][0]
    assert {lp["best"], lp["second"]} == {REF, "precomputed · rgb | linear probe"} and lp["uf1"]["delta"] >= 0


def test_cells_without_predictions_are_missing_with_the_reason(arena_runs, tmp_path):
    arena, runs = arena_runs
    runs = _copy(runs, tmp_path)
    canon = canonical_runs(arena, Index(), runs)
    (runs / canon["precomputed | dummy"] / "predictions.csv").unlink()
    res = arena_comparisons(arena, Index(), runs, n_boot=50)
    assert [m["cell"] for m in res["missing"]] == ["precomputed | dummy"]
    assert "no predictions.csv" in res["missing"][0]["why"] and len(res["comparisons"]) == 2
    (runs / canon[REF] / "predictions.csv").unlink()
    res = arena_comparisons(arena, Index(), runs, n_boot=50)
    assert not res["comparisons"] and len(res["missing"]) == 3
    assert all(m["why"].startswith(f"the reference run {canon[REF]} has no predictions.csv") for m in res["missing"])


def test_rewriting_without_predictions_keeps_the_committed_aggregates_of_unchanged_runs(arena_runs, tmp_path):
    """A fresh clone has no per-sample predictions of the committed runs: rewriting the file must keep
    their comparisons (same two runs, same resamples), not turn them into 'missing'."""
    arena, runs = arena_runs
    out = tmp_path / "comparisons"
    before = json.loads(write_comparisons([arena], Index(), runs, out, n_boot=50)[0].read_text())
    bare = _copy(runs, tmp_path)
    for f in bare.glob("*/predictions.csv"):
        f.unlink()
    after = json.loads(write_comparisons([arena], Index(), bare, out, n_boot=50)[0].read_text())
    assert not after["missing"] and all(e.pop("kept") for e in after["comparisons"] + after["best_vs_second"])
    assert after == before
    assert problems([arena], Index(), bare, out) == []
    # other resamples (n_boot) are another comparison: nothing is kept, every cell says why
    other = arena_comparisons(arena, Index(), bare, n_boot=60, previous=before)
    assert not other["comparisons"] and len(other["missing"]) == 3
    # a cell whose run changed is not kept either
    before["comparisons"][0]["run"] = "an_older_run"
    changed = arena_comparisons(arena, Index(), bare, n_boot=50, previous=before)
    assert [m["cell"] for m in changed["missing"]] == [before["comparisons"][0]["cell"]]


def test_files_are_deterministic_relative_and_stale_when_a_run_changes(arena_runs, tmp_path, capsys):
    arena, runs = arena_runs
    out = tmp_path / "comparisons"
    assert problems([arena], Index(), runs, out) == [
        f"{out}/toy.json: no comparisons file, though arena toy has a finished reference; "
        "rerun `python -m benchmark comparisons`"]
    first = write_comparisons([arena], Index(), runs, out, n_boot=50)[0].read_text()
    assert write_comparisons([arena], Index(), runs, out, n_boot=50)[0].read_text() == first
    assert str(tmp_path) not in first and str(runs) not in first
    assert load_comparisons(out, "toy") == json.loads(first) and load_comparisons(out, "other") is None
    assert problems([arena], Index(), runs, out) == []
    data = json.loads(first)
    data["comparisons"][0]["run"] = "an_older_run"
    (out / "toy.json").write_text(json.dumps(data))
    assert "stale" in problems([arena], Index(), runs, out)[0]
    # a cell finished after the file was written also makes it stale
    write_comparisons([arena], Index(), runs, out, n_boot=50)
    moved = _copy(runs, tmp_path)
    shutil.rmtree(moved / canonical_runs(arena, Index(), runs)["precomputed · rgb | dummy"])
    write_comparisons([arena], Index(), moved, out, n_boot=50)
    assert "stale" in problems([arena], Index(), runs, out)[0]
    # no finished reference, no file: nothing to report
    shutil.rmtree(moved / canonical_runs(arena, Index(), runs)[REF])
    assert problems([arena], Index(), moved, tmp_path / "none") == []


def test_ablations_against_their_base(arena_runs, tmp_path):
    arena, runs = arena_runs
    canon = canonical_runs(arena, Index(), runs)
    index = Index(ablations=(Ablation("rgb", canon[REF], (canon["precomputed · rgb | linear probe"], "gone")),))
    res = ablation_comparisons(index, runs, n_boot=50)["ablations"][0]
    assert res["title"] == "rgb" and res["base"] == canon[REF]
    assert [c["run"] for c in res["comparisons"]] == [canon["precomputed · rgb | linear probe"]]
    assert res["missing"] == [{"run": "gone", "why": "the ablation run gone has no finished run folder"}]
    # without predictions (a fresh clone) the committed aggregate of the same pair is kept
    first = ablation_comparisons(index, runs, n_boot=50)
    bare = _copy(runs, tmp_path)
    for f in bare.glob("*/predictions.csv"):
        f.unlink()
    kept = ablation_comparisons(index, bare, n_boot=50, previous=first)["ablations"][0]
    assert kept["comparisons"][0].pop("kept") and kept["comparisons"] == res["comparisons"]


def test_cli_writes_every_arena_file(arena_runs, tmp_path, monkeypatch, capsys):
    arena, runs = arena_runs
    monkeypatch.setattr("benchmark.arenas.load_arenas", lambda: [arena])
    monkeypatch.chdir(tmp_path)  # no results/index.yaml here: an empty index
    assert main(["comparisons", "--runs", str(runs), "--out", "cmp", "--n-boot", "20"]) == 0
    assert "3 compared, 0 missing" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir()) == ["ablations.json", "toy.json"]
    assert main(["comparisons", "--arena", "nope"]) == 2
