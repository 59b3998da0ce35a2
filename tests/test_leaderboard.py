"""Leaderboard rendering: golden file of a tiny fixed-seed run; grouping rules."""
import json
import os
from dataclasses import replace
from pathlib import Path

from benchmark.leaderboard import collect, render
from benchmark.results import load_result
from benchmark.runner import execute
from tests.test_runner import _cfg, write_flow_root

GOLDEN = Path(__file__).parent / "golden" / "leaderboard_tiny.md"
HISTORIC = Path(__file__).parent / "historic_results"


def _normalised(entries):
    """Drop what legitimately differs between machines/paths (times, tmp path hash)."""
    return [replace(e, result=replace(e.result, wall_s=0, fold_seconds=0),
                    folder=f"{e.result.protocol}_{e.result.rep}_{e.result.model}_{e.result.selection}")
            for e in entries]


def test_golden_leaderboard_of_a_tiny_fixed_seed_run(tmp_path):
    root = write_flow_root(tmp_path / "data", n_sub=2, n_per=3, signal=12)
    for selection in ("fixed", "oracle"):
        execute(_cfg(root, tmp_path / "runs", epochs=3, selection=selection), progress=False)
    text = render(_normalised(collect([tmp_path / "runs"])))
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_real_synthetic_and_oracle_rows_never_share_a_table(tmp_path):
    root = write_flow_root(tmp_path / "data", n_sub=2, n_per=3)
    execute(_cfg(root, tmp_path / "runs", epochs=1), progress=False)
    execute(_cfg(root, tmp_path / "runs", epochs=1, selection="oracle"), progress=False)
    runs = collect([tmp_path / "runs"])
    fake = replace(runs[0], result=replace(runs[0].result, data="synthetic"), folder="syn")
    text = render(runs + [fake])
    sections = [s for s in text.split("## ")[1:]]
    assert len(sections) == 3
    assert sum("ORACLE" in s.splitlines()[0] for s in sections) == 1
    assert sum("synthetic data" in s.splitlines()[0] for s in sections) == 1


def test_published_weights_are_listed_apart_and_never_ranked_with_trained_runs(tmp_path):
    trained = load_result(next(HISTORIC.glob("v1_training-weights-per-database__*.json")))
    better = replace(trained.metrics.overall, uf1=replace(trained.metrics.overall.uf1, mean=0.99))
    published = replace(trained, selection="published-weights", run_id="cde_precomputed_ststnet_published-weights_x",
                        metrics=replace(trained.metrics, overall=better))
    for r in (trained, published):  # run folders holding only a metrics.json
        (tmp_path / r.run_id).mkdir()
        (tmp_path / r.run_id / "metrics.json").write_text(json.dumps(r.to_json()))
    sections = render(collect([tmp_path])).split("\n## ")[1:]
    assert [s.splitlines()[0] for s in sections] == [
        "CDE (MEGC2019 composite, LOSO) — real data",
        "CDE (MEGC2019 composite, LOSO) — real data — PUBLISHED WEIGHTS re-scored (no training; not ranked with "
        "trained runs)"]
    assert trained.run_id in sections[0] and published.run_id not in sections[0]  # its higher UF1 ranks nothing
    assert published.run_id in sections[1] and "nothing was trained" in sections[1]


def _one_run(tmp_path, name, header=None):
    """A run folder holding a committed-shape metrics.json (and a config.json if given)."""
    r = load_result(next(HISTORIC.glob("v1_training-weights-per-database__*.json")))
    r = replace(r, run_id=name)
    (tmp_path / name).mkdir(parents=True)
    (tmp_path / name / "metrics.json").write_text(json.dumps(r.to_json()))
    if header is not None:
        (tmp_path / name / "config.json").write_text(json.dumps(header))
    return r


def test_a_modified_list_and_blank_inputs_are_marked_in_the_row(tmp_path):
    """Before: a run on a list with one row removed, or on blank inputs, was ranked beside clean
    ones with no marker."""
    official = {"protocol": {"source": "megc2019"}, "n_samples": 442, "n_subjects": 68, "dataset_defects": []}
    _one_run(tmp_path, "cde_a_clean", official)
    _one_run(tmp_path, "cde_b_short", {**official, "n_samples": 441})  # made before the list was checked
    _one_run(tmp_path, "cde_c_flagged", {**official, "dataset_defects": [{"kind": "differs_from_official"}],
                                         "inputs": {"blank": 3, "dropped": 0}})
    rows = {line.split("`")[-2]: line for line in render(collect([tmp_path])).splitlines() if line.count("`") >= 2}
    assert "official list" in rows["cde_a_clean"] and "MODIFIED" not in rows["cde_a_clean"]
    assert "MODIFIED list" in rows["cde_b_short"]
    assert "MODIFIED list" in rows["cde_c_flagged"] and "3 blank" in rows["cde_c_flagged"]
    assert "1 defects" in rows["cde_c_flagged"]


def test_a_run_in_two_runs_folders_is_listed_once(tmp_path):
    _one_run(tmp_path / "a", "cde_same_run")
    _one_run(tmp_path / "b", "cde_same_run")
    assert len(collect([tmp_path / "a", tmp_path / "b"])) == 1


def test_a_missing_or_empty_runs_folder_never_overwrites_the_leaderboard(tmp_path):
    from benchmark.cli import main

    board = tmp_path / "LEADERBOARD.md"
    board.write_text("committed")
    (tmp_path / "empty").mkdir()
    assert main(["leaderboard", "--runs", str(tmp_path / "typo"), "--out", str(board)]) == 2
    assert main(["leaderboard", "--runs", str(tmp_path / "empty"), "--out", str(board)]) == 2
    assert board.read_text() == "committed"
    assert main(["leaderboard", "--runs", str(tmp_path / "empty"), "--out", str(board), "--allow-empty"]) == 0
    assert "No runs yet." in board.read_text()
