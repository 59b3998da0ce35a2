"""The run folder's files: config.json, fold records (atomic, for resume), metrics.json,
predictions.csv, the MEGC2019-style log, rep_report.json and a confusion-matrix PNG.

Reading and writing only: what goes into the files is computed by ``benchmark.scoring``
and typed by ``benchmark.results``.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from benchmark.provenance import check_same_inputs, portable_paths, read_json
from benchmark.results import FoldRecord, RunResult, load_fold_record


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write via a temp file + rename so an interrupted run never leaves half a file; the file
    gets the mode the umask gives a new file (mkstemp's 0600 would hide shared results)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    os.fchmod(fd, 0o666 & ~_umask())
    with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold the run folder for one process: a second ``benchmark run`` of the same config would
    train every fold again beside the first. The sweep's units of one run do not take it (the
    sweep schedules each fold once)."""
    import fcntl

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)  # the runner takes it after planning: bad input leaves no folder
    with open(out / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise RuntimeError(f"{out} is in use by {holder}: wait for that run to finish (it writes the same "
                               "folds), or pass another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def prepare(out: Path, header: dict) -> Path:
    """Create (or reopen for resume) a run folder; a different config there is an error."""
    old = read_header(out)
    if old is not None:
        check_same_inputs(out, old, header)
    write_atomic(out / "config.json", json.dumps(header, indent=2, default=str))
    return out


def read_header(out: Path) -> dict | None:
    """The run folder's config.json, or None when there is none."""
    path = Path(out) / "config.json"
    return read_json(path, "remove the run folder to start the run again") if path.exists() else None


def fold_path(out: Path, seed: int, fold: str) -> Path:
    return Path(out) / "folds" / f"seed{seed}" / (re.sub(r"[^A-Za-z0-9._-]", "_", fold) + ".json")


def has_fold(out: Path, seed: int, fold: str) -> bool:
    return fold_path(out, seed, fold).exists()


def load_fold(out: Path, seed: int, fold: str, samples: Sequence | None = None,
              y: Sequence | None = None) -> FoldRecord | None:
    """A fold record, or None when the fold has not finished; ``samples``/``y`` (the run's
    planned samples and labels) are needed to read a version-1 record (indices only)."""
    path = fold_path(out, seed, fold)
    if not path.exists():
        return None
    return load_fold_record(read_json(path, "delete it to train that fold again"), samples, y)


def save_fold(out: Path, rec: FoldRecord) -> None:
    write_atomic(fold_path(out, rec.seed, rec.fold), json.dumps(rec.to_json()))


def write_rep_report(out: Path, recipe: dict, events: list[dict], cache_stats: dict | None) -> None:
    """Fallbacks a representation recorded (nearest frame, no face found, spotted apex...)."""
    report = {"recipe": recipe, "counts": dict(Counter(e.get("kind", "?") for e in events)),
              "cache": cache_stats, "events": events}
    write_atomic(Path(out) / "rep_report.json", json.dumps(portable_paths(report), indent=1, default=str))


def write_run(out: Path, result: RunResult, records: Sequence[FoldRecord]) -> None:
    """metrics.json, predictions.csv, megc2019_log.txt and confusion.png of a scored run."""
    write_atomic(out / "metrics.json", json.dumps(result.to_json(), indent=2))
    _write_predictions(out, result.classes, records)
    _write_megc_log(out, result, records)
    _plot_confusion(out, result.metrics.overall.per_seed[0].confusion, result)


def _write_predictions(out: Path, classes: Sequence[str], records: Sequence[FoldRecord]) -> None:
    lines = ["sample,subject,database,clip,truth,prediction,fold,seed," + ",".join(f"p_{c}" for c in classes)]
    for r in records:
        for key, subject, db, clip, truth, pred, proba in zip(r.keys, r.subjects, r.databases, r.clips, r.truth,
                                                              r.pred, r.proba):
            lines.append(",".join([key, subject, db, clip, classes[truth], classes[pred], r.fold, str(r.seed)]
                                  + [f"{v:.6f}" for v in proba]))
    write_atomic(out / "predictions.csv", "\n".join(lines) + "\n")


def _write_megc_log(out: Path, result: RunResult, records: Sequence[FoldRecord]) -> None:
    """Per-subject lines in the style of the MEGC2019 evaluation log, then pooled scores."""
    lines = [f"# {result.run_id}  selection={result.selection}  classes={','.join(result.classes)}"]
    for r in records:
        lines.append(f"seed {r.seed} subject {r.fold}: predicted {list(r.pred)} ground truth {list(r.truth)}")
    o = result.metrics.overall
    lines.append(f"UF1 {o.uf1.mean:.4f}  UAR {o.uar.mean:.4f}  (pooled over all folds)")
    write_atomic(out / "megc2019_log.txt", "\n".join(lines) + "\n")


def _plot_confusion(out: Path, cm, result: RunResult) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm, classes = np.array(cm), result.classes
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2, 1.2 * len(classes) + 1.5))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title(f"{result.rep} + {result.model} ({result.protocol}, seed {result.seeds[0]})", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    write_atomic(out / "confusion.png", buf.getvalue())
