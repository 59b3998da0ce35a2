"""The run folder: config, per-fold records (atomic, for resume), predictions,
MEGC2019 log, metrics.json and a confusion-matrix PNG."""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from benchmark.core.bootstrap import bootstrap_ci
from benchmark.core.metrics import FAST_METRICS, summarize
from benchmark.provenance import now


def write_atomic(path: Path, text: str) -> None:
    """Write via a temp file + rename so an interrupted run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def prepare(out: Path, header: dict) -> Path:
    """Create (or reopen for resume) a run folder; a different config there is an error."""
    cfg_path = out / "config.json"
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if old.get("data_fingerprint") != header["data_fingerprint"]:
            raise RuntimeError(f"{out}: existing run was made on other data; remove it or choose another --out")
    write_atomic(cfg_path, json.dumps(header, indent=2, default=str))
    return out


def _fold_path(out: Path, seed: int, fold: str) -> Path:
    return out / "folds" / f"seed{seed}" / (re.sub(r"[^A-Za-z0-9._-]", "_", fold) + ".json")


def load_fold(out: Path, seed: int, fold: str) -> dict | None:
    path = _fold_path(out, seed, fold)
    return json.loads(path.read_text()) if path.exists() else None


def save_fold(out: Path, rec: dict) -> None:
    write_atomic(_fold_path(out, rec["seed"], rec["fold"]), json.dumps(rec))


def pool_predictions(p, records) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Predictions (seeds, n_test) aligned on the evaluated sample indices."""
    seeds = list(p.cfg.seeds)
    test = sorted({i for r in records if r["seed"] == seeds[0] for i in r["test"]})
    pos = {i: k for k, i in enumerate(test)}
    pred = np.full((len(seeds), len(test)), -1)
    for r in records:
        pred[seeds.index(r["seed"]), [pos[i] for i in r["test"]]] = r["pred"]
    return np.array(test), pred, seeds


def _block(y, pred, groups, n_classes, unit, n_boot) -> dict:
    """Point metrics per seed, their mean/std, and bootstrap CIs of the seed mean."""
    per_seed = [summarize(y, row, n_classes) for row in pred]
    out = {"per_seed": per_seed}
    for name, fn in FAST_METRICS.items():
        vals = np.array([s[name] for s in per_seed])
        ci_s = bootstrap_ci(fn, y, pred, n_boot=n_boot, seed=0).as_dict()
        ci_g = bootstrap_ci(fn, y, pred, groups=groups, n_boot=n_boot, seed=0).as_dict() if len(set(groups)) > 1 else None
        out[name] = {"mean": float(vals.mean()), "std": float(vals.std()), "min": float(vals.min()),
                     "max": float(vals.max()), "ci_sample": ci_s, "ci_subject": ci_g,
                     "ci": ci_g if unit == "subject" and ci_g else ci_s}
    out["n"] = int(len(y))
    return out


def finalize(out: Path, p, records: list[dict], wall_s: float, companion: dict | None = None) -> dict:
    test, pred, seeds = pool_predictions(p, records)
    y = p.sel.y[test]
    samples = [p.sel.samples[i] for i in test]
    groups = np.array([s.subject for s in samples])
    k, unit, n_boot = len(p.sel.classes), p.protocol.bootstrap_unit, p.cfg.n_boot
    metrics = {"overall": _block(y, pred, groups, k, unit, n_boot), "per_database": {}}
    dbs = np.array([s.dataset for s in samples])
    if len(set(dbs)) > 1:
        for db in sorted(set(dbs)):
            m = dbs == db
            metrics["per_database"][db] = _block(y[m], pred[:, m], groups[m], k, unit, n_boot)
    summary = {
        "run_id": p.cfg.run_id(), "rep": p.cfg.rep, "model": p.cfg.model, "protocol": p.cfg.protocol,
        "dataset": p.cfg.dataset, "data": p.cfg.data, "selection": p.cfg.selection,
        "oracle": p.cfg.selection == "oracle", "seeds": seeds, "epochs": p.model.get_params().get("epochs"),
        "label": p.cfg.label, "classes": list(p.sel.classes), "bootstrap_unit": unit,
        "contaminated": sorted({s for r in records for s in r["contaminated_subjects"]}),
        "weights": sorted({r.get("weights_source") or "scratch" for r in records}),
        "folds_missing_classes": sorted({r["fold"] for r in records if r["missing_train_classes"]}),
        "best_epochs": [r["best_epoch"] for r in records] if p.cfg.selection != "fixed" else None,
        "training": sorted({r.get("training", "sequential") for r in records}),
        "wall_s": round(wall_s, 1), "fold_seconds": round(sum(r["seconds"] for r in records), 1),
        "finished": now(), "metrics": metrics,
    }
    if companion:  # an oracle run's fixed twin (runner.fixed_companion)
        summary["fixed_companion"] = companion
    derived = json.loads((out / "config.json").read_text()).get("derived_from") if (out / "config.json").exists() else None
    if derived:
        summary["derived_from"] = derived
    write_atomic(out / "metrics.json", json.dumps(summary, indent=2))
    _write_predictions(out, p, records)
    _write_megc_log(out, p, records, summary)
    _plot_confusion(out, metrics["overall"]["per_seed"][0]["confusion"], p.sel.classes, summary)
    return summary


def _write_predictions(out: Path, p, records) -> None:
    lines = ["sample,subject,database,clip,truth,prediction,fold,seed," + ",".join(f"p_{c}" for c in p.sel.classes)]
    for r in records:
        for i, pred, proba in zip(r["test"], r["pred"], r["proba"]):
            s = p.sel.samples[i]
            lines.append(",".join([s.key, s.subject, s.dataset, s.clip, p.sel.classes[p.sel.y[i]],
                                   p.sel.classes[pred], r["fold"], str(r["seed"])] + [f"{v:.6f}" for v in proba]))
    write_atomic(out / "predictions.csv", "\n".join(lines) + "\n")


def _write_megc_log(out: Path, p, records, summary) -> None:
    """Per-subject lines in the style of the MEGC2019 evaluation log, then pooled scores."""
    lines = [f"# {summary['run_id']}  selection={summary['selection']}  classes={','.join(p.sel.classes)}"]
    for r in records:
        truth = [int(p.sel.y[i]) for i in r["test"]]
        lines.append(f"seed {r['seed']} subject {r['fold']}: predicted {r['pred']} ground truth {truth}")
    o = summary["metrics"]["overall"]
    lines.append(f"UF1 {o['uf1']['mean']:.4f}  UAR {o['uar']['mean']:.4f}  (pooled over all folds)")
    write_atomic(out / "megc2019_log.txt", "\n".join(lines) + "\n")


def _plot_confusion(out: Path, cm, classes, summary) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.array(cm)
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2, 1.2 * len(classes) + 1.5))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title(f"{summary['rep']} + {summary['model']} ({summary['protocol']}, seed {summary['seeds'][0]})", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=100)
    plt.close(fig)
