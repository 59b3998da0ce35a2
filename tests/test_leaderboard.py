"""Leaderboard rendering: golden file of a tiny fixed-seed run; grouping rules."""
import copy
import os
from pathlib import Path

from benchmark.leaderboard import collect, render
from benchmark.runner import execute
from tests.test_runner import _cfg, write_flow_root

GOLDEN = Path(__file__).parent / "golden" / "leaderboard_tiny.md"


def _normalised(runs):
    """Drop what legitimately differs between machines/paths (times, tmp path hash)."""
    out = []
    for r in runs:
        r = copy.deepcopy(r)
        r["wall_s"] = r["fold_seconds"] = 0
        r["_dir"] = f"{r['protocol']}_{r['rep']}_{r['model']}_{r['selection']}"
        out.append(r)
    return out


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
    fake = copy.deepcopy(runs[0])
    fake["data"], fake["_dir"] = "synthetic", "syn"
    text = render(runs + [fake])
    sections = [s for s in text.split("## ")[1:]]
    assert len(sections) == 3
    assert sum("ORACLE" in s.splitlines()[0] for s in sections) == 1
    assert sum("synthetic data" in s.splitlines()[0] for s in sections) == 1
