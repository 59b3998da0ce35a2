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
