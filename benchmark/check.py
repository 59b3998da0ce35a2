"""``benchmark check``: the regression check CI runs.

1. Re-runs each small fixed-seed configuration in ``results/baselines.json``
   (synthetic data) and compares UF1/UAR with the recorded values.
2. Verifies that ``results/LEADERBOARD.md`` is what the committed run folders
   generate (tables are never hand-edited).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from benchmark.config import resolve
from benchmark.leaderboard import collect, render
from benchmark.runner import execute, load_metrics


def _check_runs(baselines: dict, update: bool) -> list[str]:
    failures, tol = [], baselines.get("tolerance", 0.02)
    with tempfile.TemporaryDirectory() as tmp:
        for entry in baselines["runs"]:
            cfg = resolve({**entry["config"], "out": tmp})
            m = load_metrics(execute(cfg, progress=False))["metrics"]["overall"]
            got = {k: round(m[k]["mean"], 4) for k in ("uf1", "uar")}
            name = cfg.run_id()
            if update:
                entry["metrics"] = got
                print(f"updated {name}: {got}")
                continue
            for k, want in entry["metrics"].items():
                status = "ok" if abs(got[k] - want) <= tol else "FAIL"
                print(f"{status:<4} {name} {k}: {got[k]:.4f} (baseline {want:.4f}, tolerance {tol})")
                if status == "FAIL":
                    failures.append(f"{name} {k} {got[k]:.4f} vs {want:.4f}")
    return failures


def _check_leaderboard(results: Path) -> list[str]:
    board = results / "LEADERBOARD.md"
    if not board.exists():
        return []
    fresh = render(collect([results / "runs"]))
    if board.read_text() != fresh:
        return [f"{board} is stale: run `python -m benchmark leaderboard`"]
    print(f"ok   {board} matches the committed run folders")
    return []


def run_check(path: Path, update: bool = False) -> int:
    baselines = json.loads(path.read_text())
    failures = _check_runs(baselines, update) + _check_leaderboard(path.parent)
    if update:
        path.write_text(json.dumps(baselines, indent=2) + "\n")
    for f in failures:
        print(f"regression: {f}")
    print(f"check: {'FAILED' if failures else 'passed'}")
    return 1 if failures else 0
