"""Paired comparisons in every arena cell, stored as committed aggregates (``benchmark comparisons``).

Per arena, ``results/comparisons/<arena>.json`` holds each finished cell's paired-bootstrap
difference against the arena's reference cell (cell minus reference, seed-mean UF1 and UAR,
``benchmark.compare``'s definition) and, per column, the best row against the second best.
The per-sample predictions behind them are git-ignored (they restate licensed labels), so
these aggregates are what a clone without the data can read.

Every comparison uses the same seed, hence the same resamples of the same samples. The
p-value is two-sided: ``min(1, 2 * min(share of resampled deltas <= 0, share >= 0))``
(``benchmark.core.bootstrap.paired_bootstrap``; 0 means below ``1 / n_boot``). The family of an
arena's comparisons with its reference (UF1) is corrected with Holm-Bonferroni at ``ALPHA``;
best-vs-second pairs are reported uncorrected. A cell that cannot be compared (no
``predictions.csv`` here, other samples) is listed under ``missing`` with the reason, unless
the file being rewritten already holds its comparison of the very same two runs at the same
``n_boot`` and seed: that aggregate is kept (``"kept": true``), so a fresh clone, which has the
predictions of its new runs only, adds cells without losing the committed ones.
``ablations.json`` does the same for the index's ablations (each run against its base).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from benchmark.compare import load_predictions, paired
from benchmark.index import Index, canonical_runs
from benchmark.results import load_result

COMPARISONS = Path("results/comparisons")
ABLATIONS = "ablations.json"
ALPHA = 0.05
LEVEL = 0.95  # paired_bootstrap's percentile interval
METRICS = ("uf1", "uar")
RERUN = "rerun `python -m benchmark comparisons`"


def holm(p: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values, in the input order (reject where <= alpha)."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))  # monotone: a step-down stops at the first keep
        out[i] = running
    return out


class _Runs:
    """Run folders read once each: id -> result and predictions, or why they cannot be compared."""

    def __init__(self, runs_dir: Path):
        self.dir, self._pred, self._result = Path(runs_dir), {}, {}

    def result(self, run: str):
        if run not in self._result:
            self._result[run] = load_result(self.dir / run / "metrics.json")
        return self._result[run]

    def predictions(self, run: str):
        if run not in self._pred:
            folder = self.dir / run
            if not (folder / "metrics.json").exists():
                self._pred[run] = f"{run} has no finished run folder"
            elif not (folder / "predictions.csv").exists():
                self._pred[run] = f"{run} has no predictions.csv (per-sample predictions are not committed)"
            else:
                self._pred[run] = load_predictions(folder)
        return self._pred[run]


DIFF_KEYS = (*METRICS, "excludes_zero")


def _diff(runs: _Runs, a: str, b: str, roles: tuple[str, str], n_boot: int, seed: int,
          kept: dict | None = None) -> dict:
    """``a - b`` per metric and whether the UF1 interval excludes zero, or ``{"why": reason}``;
    ``kept``: this pair's aggregate from the file being rewritten, used when predictions are absent."""
    pa, pb = runs.predictions(a), runs.predictions(b)
    for p, role in reversed(list(zip((pa, pb), roles))):  # a reference without predictions: every cell says so
        if isinstance(p, str):
            if kept and all(k in kept for k in DIFF_KEYS):
                return {**{k: kept[k] for k in DIFF_KEYS}, "kept": True}
            return {"why": f"the {role} run {p}"}
    try:
        res = paired(pa, pb, n_boot, seed)
    except ValueError as exc:  # other protocol, classes or samples: reported, not fatal
        return {"why": str(exc)}
    out = {m: {"delta": res["metrics"][m]["difference"], "low": res["metrics"][m]["low"],
               "high": res["metrics"][m]["high"], "p": res["metrics"][m]["p_value"]} for m in METRICS}
    return {**out, "excludes_zero": out["uf1"]["low"] > 0 or out["uf1"]["high"] < 0}


def _split(entries: list[dict], key: tuple[str, ...]) -> tuple[list[dict], list[dict]]:
    """(compared entries, Holm-corrected on UF1; missing ones as {key, run, why})."""
    done = [e for e in entries if "why" not in e]
    for e, q in zip(done, holm([e["uf1"]["p"] for e in done])):
        e.update(p_holm=q, holm_significant=q <= ALPHA)
    return done, [{k: e[k] for k in (*key, "run", "why")} for e in entries if "why" in e]


def _header(n_boot: int, seed: int) -> dict:
    return {"n_boot": n_boot, "seed": seed, "level": LEVEL, "alpha": ALPHA}


def _expected(arena, canon: dict) -> tuple[str | None, dict[str, str]]:
    """(reference run, cell key -> run of every other finished cell); the chance cell is never compared."""
    ref = arena.reference_cell.key
    return canon[ref], {c.key: canon[c.key] for c in arena.cells if canon[c.key] and c.key != ref}


def _same_header(previous: dict | None, n_boot: int, seed: int) -> bool:
    return previous is not None and all(previous.get(k) == v for k, v in _header(n_boot, seed).items())


def arena_comparisons(arena, index: Index, runs_dir: str | Path, n_boot: int = 1000, seed: int = 0,
                      previous: dict | None = None) -> dict:
    """The comparisons file of one arena (see the module docstring); ``previous``: the file it replaces."""
    runs, canon = _Runs(runs_dir), canonical_runs(arena, index, runs_dir)
    ref, cells = _expected(arena, canon)
    if not (_same_header(previous, n_boot, seed) and previous["reference"]["run"] == ref):
        previous = None
    old = {e["cell"]: e for e in previous["comparisons"]} if previous else {}
    old_runs = {**{e["cell"]: e["run"] for e in old.values()}, arena.reference_cell.key: ref}
    old_best = {b["column"]: b for b in previous["best_vs_second"]} if previous else {}
    entries = []
    for key, run in cells.items():
        kept = old.get(key) if old.get(key, {}).get("run") == run else None
        d = (_diff(runs, run, ref, ("cell", "reference"), n_boot, seed, kept) if ref
             else {"why": "the reference cell has no finished run"})
        entries.append({"cell": key, "run": run, **d})
    comparisons, missing = _split(entries, ("cell",))
    best_vs_second = []
    for column in arena.columns:
        # highest seed-mean UF1 first; ties keep table order
        ranked = sorted((c.key for c in arena.cells if c.column == column and canon[c.key]),
                        key=lambda k: -runs.result(canon[k]).metrics.overall.uf1.mean)
        if len(ranked) >= 2:
            best, second = ranked[:2]
            b = old_best.get(column)
            kept = b if b and (b["best"], b["second"]) == (best, second) and all(
                old_runs.get(k) == canon[k] for k in (best, second)) else None
            d = _diff(runs, canon[best], canon[second], ("best", "second"), n_boot, seed, kept)
            best_vs_second.append({"column": column, "best": best, "second": second, **d})
    return {"arena": arena.name, "reference": {"cell": arena.reference_cell.key, "run": ref},
            "unit": runs.result(ref).bootstrap_unit if ref else None, **_header(n_boot, seed),
            "comparisons": comparisons, "best_vs_second": best_vs_second, "missing": missing}


def ablation_comparisons(index: Index, runs_dir: str | Path, n_boot: int = 1000, seed: int = 0,
                         previous: dict | None = None) -> dict:
    """``ablations.json``: per ablation of the index, each run against its base (Holm within the ablation)."""
    runs, out = _Runs(runs_dir), []
    old = ({(a["base"], e["run"]): e for a in previous["ablations"] for e in a["comparisons"]}
           if _same_header(previous, n_boot, seed) else {})
    for ab in index.ablations:
        entries = [{"run": run, **_diff(runs, run, ab.base, ("ablation", "base"), n_boot, seed,
                                        old.get((ab.base, run)))} for run in ab.runs]
        comparisons, missing = _split(entries, ())
        out.append({"title": ab.title, "base": ab.base, "comparisons": comparisons, "missing": missing})
    return {**_header(n_boot, seed), "ablations": out}


def _rounded(x):
    """Six decimals: far below the bootstrap's resolution, and stable diffs of the committed files."""
    if isinstance(x, float):
        return round(x, 6)
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    return [_rounded(v) for v in x] if isinstance(x, list) else x


def _write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_rounded(data), indent=2, ensure_ascii=False) + "\n")
    return path


def write_comparisons(arenas, index: Index, runs_dir: str | Path = "results/runs", out: str | Path = COMPARISONS,
                      n_boot: int = 1000, seed: int = 0, ablations: bool = True) -> list[Path]:
    """Write ``<arena>.json`` for each arena (and ``ablations.json``); the paths written."""
    out = Path(out)
    paths = [_write(out / f"{a.name}.json",
                    arena_comparisons(a, index, runs_dir, n_boot, seed, load_comparisons(out, a.name))) for a in arenas]
    if ablations:
        paths.append(_write(out / ABLATIONS, ablation_comparisons(index, runs_dir, n_boot, seed,
                                                                  load_comparisons(out, "ablations"))))
    return paths


def load_comparisons(folder: str | Path, arena_name: str) -> dict | None:
    """An arena's comparisons file (``ablations`` for ``ablations.json``), or None when there is none."""
    path = Path(folder) / (ABLATIONS if arena_name == "ablations" else f"{arena_name}.json")
    return json.loads(path.read_text()) if path.exists() else None


def problems(arenas, index: Index, runs_dir: str | Path, folder: str | Path = COMPARISONS) -> list[str]:
    """Comparisons files whose runs are no longer the canonical ones, and missing files where
    the reference has a finished run. Reads run ids only (no bootstrap)."""
    folder, out = Path(folder), []
    for arena in arenas:
        path, data = folder / f"{arena.name}.json", load_comparisons(folder, arena.name)
        ref, want = _expected(arena, canonical_runs(arena, index, runs_dir))
        if data is None:
            if ref:
                out.append(f"{path}: no comparisons file, though arena {arena.name} has a finished reference; {RERUN}")
            continue
        have = {e["cell"]: e["run"] for e in data["comparisons"] + data["missing"]}
        changed = ([arena.reference_cell.key] if data["reference"]["run"] != ref else []) + sorted(
            k for k in set(have) | set(want) if have.get(k) != want.get(k))
        if changed:
            out.append(f"{path}: stale, the canonical run of {len(changed)} cell(s) changed since it was written "
                       f"(e.g. {changed[0]!r}); {RERUN}")
    data = load_comparisons(folder, "ablations")
    want = [(a.title, a.base, sorted(a.runs)) for a in index.ablations]
    if data is None and want:
        out.append(f"{folder / ABLATIONS}: no file, though the index lists ablations; {RERUN}")
    elif data is not None and want != [(a["title"], a["base"], sorted(e["run"] for e in a["comparisons"] + a["missing"]))
                                       for a in data["ablations"]]:
        out.append(f"{folder / ABLATIONS}: stale, the index's ablations changed since it was written; {RERUN}")
    return out
