"""``benchmark check``: the regression check CI runs.

1. Re-runs each small fixed-seed configuration in ``results/baselines.json``
   (synthetic data) and compares UF1/UAR with the recorded values.
2. Verifies that ``results/LEADERBOARD.md`` and the README's results-at-a-glance block are
   what the committed run folders generate (tables are never hand-edited).
3. Verifies that every committed run folder is a matrix cell or named in ``results/index.yaml``,
   that every index entry has its folder, and that ``results/comparisons/`` is current.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from benchmark import glance
from benchmark.config import resolve
from benchmark.leaderboard import build_board, render
from benchmark.results import load_result
from benchmark.runner import execute


def _check_runs(baselines: dict, update: bool) -> list[str]:
    failures, tol = [], baselines.get("tolerance", 0.02)
    with tempfile.TemporaryDirectory() as tmp:
        for entry in baselines["runs"]:
            cfg = resolve({**entry["config"], "out": tmp})
            overall = load_result(execute(cfg, progress=False)).metrics.overall
            got = {k: round(overall.metric(k).mean, 4) for k in CHECKED_METRICS}
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
    """LEADERBOARD.md and the README's results-at-a-glance block are what the run folders generate."""
    board, readme = results / "LEADERBOARD.md", results.parent / "README.md"
    if not board.exists():
        return []
    fresh = build_board([results / "runs"])
    failures = [] if board.read_text() == render(fresh) else [f"{board} is stale: run `python -m benchmark leaderboard`"]
    if readme.exists() and glance.current_block(readme.read_text(), readme) != glance.render(fresh.matrices):
        failures.append(f"{readme}: the results-at-a-glance block is stale: run `python -m benchmark leaderboard`")
    if not failures:
        print(f"ok   {board} and the block of {readme.name} match the committed run folders")
    return failures


CHECKED_METRICS = ("uf1", "uar")


def load_baselines(path: Path) -> dict:
    """The baselines file, checked before any run: every metric name known, every config valid."""
    from benchmark.config import ConfigError
    from benchmark.provenance import read_json

    baselines = read_json(path)
    runs = baselines.get("runs") if isinstance(baselines, dict) else None
    if not isinstance(runs, list):
        raise ValueError(f"{path}: expected {{\"runs\": [...]}}")
    for i, entry in enumerate(runs):
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise ValueError(f"{path}: runs[{i}] needs a \"config\" mapping")
        unknown = sorted(set(entry.get("metrics") or {}) - set(CHECKED_METRICS))
        if unknown:
            raise ValueError(f"{path}: runs[{i}].metrics: unknown metric {unknown[0]!r} "
                             f"(known: {', '.join(CHECKED_METRICS)})")
        try:
            resolve({**entry["config"], "out": "."})
        except ConfigError as exc:
            raise ValueError(f"{path}: runs[{i}].config: {exc}") from None
    return baselines


def _check_paths(results: Path) -> list[str]:
    """Committed results must name no machine's folders (cache, home, temporary files)."""
    from benchmark.provenance import absolute_paths

    failures = []
    for f in sorted(results.rglob("*")):
        if f.suffix not in (".json", ".md") or "folds" in f.parts or not f.is_file():  # per-sample files are not committed
            continue
        found = absolute_paths(f.read_text(errors="replace"))
        if found:
            failures.append(f"{f} names the absolute path {found[0]}"
                            + (f" (and {len(found) - 1} more)" if len(found) > 1 else ""))
    if not failures:
        print(f"ok   no absolute paths under {results}")
    return failures


def _check_index(results: Path) -> list[str]:
    """Every committed run folder has a role (a matrix cell or an index entry), every index entry
    a folder, and the committed paired comparisons name the current canonical runs."""
    from benchmark.arenas import load_arenas
    from benchmark.comparisons import problems as stale_comparisons
    from benchmark.index import load_index, problems

    arenas, index = load_arenas(), load_index(results / "index.yaml")
    found = problems(arenas, index, results / "runs") + stale_comparisons(
        arenas, index, results / "runs", results / "comparisons")
    if not found:
        print(f"ok   {results / 'index.yaml'}: every run folder has a role; comparisons are current")
    return found


def run_check(path: Path, update: bool = False) -> int:
    baselines = load_baselines(path)
    failures = (_check_paths(path.parent) + _check_index(path.parent) + _check_runs(baselines, update)
                + _check_leaderboard(path.parent))
    if update:
        path.write_text(json.dumps(baselines, indent=2) + "\n")
    for f in failures:
        print(f"regression: {f}")
    print(f"check: {'FAILED' if failures else 'passed'}")
    return 1 if failures else 0
