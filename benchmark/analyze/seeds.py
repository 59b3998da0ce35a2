"""The seed distribution of one recipe: every finished run folder of the same configuration
(all settings but the seeds), pooled UF1/UAR per seed, a histogram, and where a published
figure falls in it (``python -m benchmark analyze seeds``).

Default recipe: the public STSTNet script on the published CDE flows (800 epochs, batch order
by class, last epoch), the question of results/FINDINGS.md section 1.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmark.results import load_result

RECIPE = {"rep": "precomputed", "model": "ststnet", "protocol": "cde", "dataset": None, "data": "real",
          "epochs": 800, "selection": "fixed", "rep_params": {}, "model_params": {"batch_order": "by-class"},
          "weights": None, "split_seed": 0}
PUBLISHED = {"published run (STSTNet log, reproduced from its weights)": (0.7209, 0.7250)}
DB_NAMES = {"casme2": "CASME II", "samm": "SAMM", "smic": "SMIC"}
CONTEXT = {"MEB re-run, 500 epochs, fixed (tvaranka/meb)": 0.713}


def matches(config: dict, recipe: dict) -> bool:
    return all(config.get(k) == v for k, v in recipe.items())


def _finished(runs_dir: Path):
    """(config, result) of every finished run folder under ``runs_dir``, in name order."""
    for cfg_path in sorted(Path(runs_dir).glob("*/config.json")):
        if (cfg_path.parent / "metrics.json").exists():
            yield json.loads(cfg_path.read_text())["config"], cfg_path.parent / "metrics.json"


def _per_database_uf1(result, i: int) -> dict[str, float]:
    return {db: m.per_seed[i].uf1 for db, m in sorted(result.metrics.per_database.items())}


def collect(runs_dir: Path, recipe: dict = RECIPE) -> list[dict]:
    """One row per (seed, run): the pooled figures of every finished run of ``recipe``."""
    rows, seen = [], set()
    for config, metrics in _finished(runs_dir):
        if not matches(config, recipe):
            continue
        r = load_result(metrics)
        for i, (seed, s) in enumerate(zip(r.seeds, r.metrics.overall.per_seed)):
            if seed in seen:
                raise ValueError(f"seed {seed} is in two run folders of the recipe ({r.run_id})")
            seen.add(seed)
            rows.append({"seed": seed, "uf1": s.uf1, "uar": s.uar, "per_database_uf1": _per_database_uf1(r, i),
                         "run": r.run_id})
    return sorted(rows, key=lambda x: x["seed"])


def published_per_database(runs_dir: Path, recipe: dict = RECIPE) -> dict[str, float]:
    """Per-database UF1 of the published weights re-scored by the suite (``benchmark evaluate``), if that
    run folder is there: the published run's own figures, measured rather than typed in."""
    keys = ("rep", "model", "protocol", "dataset", "data")
    for config, metrics in _finished(runs_dir):
        if config.get("selection") == "published-weights" and all(config.get(k) == recipe[k] for k in keys):
            return _per_database_uf1(load_result(metrics), 0)
    return {}


def percentile(values, x: float) -> float:
    """Share of seeds scoring below ``x`` (ties count half), in percent."""
    v = np.asarray(values)
    return float(100 * ((v < x).mean() + 0.5 * (v == x).mean()))


def _spread(v) -> dict:
    v = np.asarray(v, dtype=float)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max())}


def summary(rows: list[dict], published_db: dict[str, float] | None = None) -> dict:
    out = {"n_seeds": len(rows)}
    for m in ("uf1", "uar"):
        out[m] = _spread([r[m] for r in rows])
    out["per_database_uf1"] = {}
    for db in rows[0]["per_database_uf1"]:
        v = [r["per_database_uf1"][db] for r in rows]
        out["per_database_uf1"][db] = _spread(v)
        if db in (published_db or {}):
            out["per_database_uf1"][db].update(published=published_db[db], percentile=percentile(v, published_db[db]))
    for name, (uf1, uar) in PUBLISHED.items():
        sd = out["uf1"]["sd"]
        out["published"] = {"name": name, "uf1": uf1, "uar": uar,
                            "uf1_percentile": percentile([r["uf1"] for r in rows], uf1),
                            "uar_percentile": percentile([r["uar"] for r in rows], uar),
                            "uf1_z": (uf1 - out["uf1"]["mean"]) / sd if sd else None}
    return out


def histogram(rows: list[dict], path: Path, published_db: dict[str, float] | None = None) -> None:
    """Pooled UF1 and UAR histograms, and each database's UF1 per seed beside the published run's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), gridspec_kw={"width_ratios": [1, 1, 0.9]})
    for ax, m, label in zip(axes, ("uf1", "uar"), ("UF1", "UAR")):
        v = [r[m] for r in rows]
        lo, hi = min(v + [0.68]), max(v + [0.73])
        counts, _, _ = ax.hist(v, bins=np.linspace(lo - 0.002, hi + 0.002, 16), color="tab:blue", alpha=0.8,
                               label=f"our seeds (n = {len(v)})")
        for name, figs in PUBLISHED.items():
            ax.axvline(figs[0 if m == "uf1" else 1], color="tab:red", ls="--", label="published run")
        if m == "uf1":
            for name, x in CONTEXT.items():
                ax.axvline(x, color="tab:grey", ls=":", label="MEB re-run (500 epochs)")
        ax.set_xlabel(f"pooled {label}, CDE (442 samples)")
        ax.set_ylabel("seeds")
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.set_ylim(0, counts.max() * 1.6)  # headroom: the legend sits above the bars, never on a seed
        ax.legend(fontsize=8, loc="upper left", ncol=2)
    ax = axes[2]
    dbs = list(rows[0]["per_database_uf1"])
    for i, db in enumerate(dbs):
        v = [r["per_database_uf1"][db] for r in rows]
        ax.scatter(np.full(len(v), i) + np.linspace(-0.12, 0.12, len(v)), v, s=14, color="tab:blue",
                   label="our seeds" if i == 0 else None)
        if db in (published_db or {}):
            ax.scatter([i], [published_db[db]], marker="_", s=900, linewidths=2, color="tab:red",
                       label="published run" if i == 0 else None)
    ax.set_xticks(range(len(dbs)), [DB_NAMES.get(db, db) for db in dbs])
    ax.set_xlim(-0.5, len(dbs) - 0.5)
    ax.set_ylabel("UF1 of the database's samples")
    ax.legend(fontsize=8, loc="center", markerscale=0.5)  # mid-height: above SAMM, below CASME II
    fig.suptitle("STSTNet, public recipe (800 epochs, class-ordered batches, last epoch) on 2 CPU cores", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmark analyze seeds", description=__doc__)
    ap.add_argument("--runs", default="results/runs")
    ap.add_argument("--plot", default="results/plots/ststnet_seeds.png")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = collect(Path(args.runs))
    if not rows:
        print(f"no finished run of the recipe under {args.runs}")
        return 1
    published_db = published_per_database(Path(args.runs))
    s = summary(rows, published_db)
    histogram(rows, Path(args.plot), published_db)
    if args.json:
        print(json.dumps({"seeds": rows, "summary": s}, indent=2))
        return 0
    dbs = list(s["per_database_uf1"])
    print(f"| seed | UF1 | UAR | UF1 {' / '.join(dbs)} | run |\n|---|---|---|---|---|")
    for r in rows:
        per_db = " / ".join(f"{r['per_database_uf1'][db]:.3f}" for db in dbs)
        print(f"| {r['seed']} | {r['uf1']:.4f} | {r['uar']:.4f} | {per_db} | `{r['run']}` |")
    u, a, p = s["uf1"], s["uar"], s["published"]
    print(f"\n{s['n_seeds']} seeds: UF1 {u['mean']:.4f} ± {u['sd']:.4f} (min {u['min']:.4f}, max {u['max']:.4f}); "
          f"UAR {a['mean']:.4f} ± {a['sd']:.4f} (min {a['min']:.4f}, max {a['max']:.4f})")
    z = f", {p['uf1_z']:+.1f} sd from the mean" if p["uf1_z"] is not None else ""
    print(f"{p['name']}: UF1 {p['uf1']} at percentile {p['uf1_percentile']:.0f}{z}; "
          f"UAR {p['uar']} at percentile {p['uar_percentile']:.0f}")
    for db, d in s["per_database_uf1"].items():
        pub = f"; published {d['published']:.3f} at percentile {d['percentile']:.0f}" if "published" in d else ""
        print(f"{db}: UF1 {d['mean']:.3f} ± {d['sd']:.3f} ({d['min']:.3f}-{d['max']:.3f}){pub}")
    print(f"histogram: {args.plot}")
    return 0
