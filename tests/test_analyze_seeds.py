"""The seed-distribution analysis (benchmark/analyze/seeds.py) on the committed STSTNet runs."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmark.analyze import seeds

RUNS = Path(__file__).resolve().parents[1] / "results" / "runs"
FIRST = "cde_precomputed_ststnet_fixed_real_a0fbbb51"  # seeds 0, 1, 2 of the public recipe


def test_percentile_counts_ties_half():
    assert seeds.percentile([0.1, 0.2, 0.3, 0.4], 0.35) == 75.0
    assert seeds.percentile([0.1, 0.2, 0.3, 0.4], 0.2) == 37.5
    assert seeds.percentile([0.1, 0.2], 0.9) == 100.0


def test_the_recipe_collects_the_public_script_seeds_and_no_other_run(tmp_path):
    rows = seeds.collect(RUNS)
    assert {r["seed"] for r in rows} >= {0, 1, 2}
    assert {r["run"] for r in rows if r["seed"] < 3} == {FIRST}
    # the default-batch-order run of the same model and protocol is another recipe
    assert "cde_precomputed_ststnet_fixed_real_5a10759a" not in {r["run"] for r in rows}
    s = seeds.summary(rows)
    assert s["published"]["uf1"] == 0.7209 and 0 <= s["published"]["uf1_percentile"] <= 100
    seeds.histogram(rows, tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 0


def test_a_seed_in_two_run_folders_is_an_error(tmp_path):
    for name in (FIRST, FIRST + "_copy"):
        shutil.copytree(RUNS / FIRST, tmp_path / name, ignore=shutil.ignore_patterns("folds", "predictions.csv"))
    with pytest.raises(ValueError, match="seed 0 is in two run folders"):
        seeds.collect(tmp_path)
