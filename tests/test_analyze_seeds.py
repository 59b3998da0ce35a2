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


def test_per_database_spread_and_the_published_run_per_database():
    rows = seeds.collect(RUNS)
    seed0 = next(r for r in rows if r["seed"] == 0)
    assert round(seed0["per_database_uf1"]["casme2"], 3) == 0.833  # FINDINGS §1, seed 0
    pub = seeds.published_per_database(RUNS)  # from the re-scored published weights, not typed in
    assert {db: round(v, 3) for db, v in pub.items()} == {"casme2": 0.830, "samm": 0.599, "smic": 0.687}
    s = seeds.summary(rows, pub)
    for db, d in s["per_database_uf1"].items():
        assert d["min"] <= d["mean"] <= d["max"] and 0 <= d["percentile"] <= 100
        assert d["percentile"] == seeds.percentile([r["per_database_uf1"][db] for r in rows], pub[db])
