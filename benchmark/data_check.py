"""``data check``: what a dataset reader finds in a folder, as a summary.

``check(name, root)`` reads the dataset with its registered reader and returns
a JSON-serialisable dict; ``format_text(summary)`` renders it for people.
Reader errors (wrong root, missing or malformed sheet) propagate as
:class:`~benchmark.datasets.DatasetError` with their message.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from benchmark.datasets import read_dataset
from benchmark.core.samples import DatasetReport


def _counts(values) -> dict[str, int]:
    """Counts sorted by decreasing count, then name."""
    c = Counter(values)
    return dict(sorted(c.items(), key=lambda kv: (-kv[1], str(kv[0]))))


def summarize(report: DatasetReport) -> dict:
    """Summary of an already-read :class:`DatasetReport`."""
    samples = report.samples
    per_db: dict[str, dict] = {}
    for db in sorted({s.dataset for s in samples}):
        mine = [s for s in samples if s.dataset == db]
        per_db[db] = {
            "samples": len(mine),
            "subjects": len({s.subject for s in mine}),
            "classes": _counts(s.emotion for s in mine),
        }
    extras = Counter(k for s in samples for k in s.extras)
    return {
        "dataset": report.name,
        "root": str(report.root),
        "files": [str(p) for p in report.files],
        "n_samples": len(samples),
        "n_subjects": len(report.subjects),
        "emotions": _counts(s.emotion for s in samples),
        "per_database": per_db,
        "frames": {
            "with_frames": sum(1 for s in samples if s.frames),
            "without_frames": sum(1 for s in samples if not s.frames),
        },
        "extras": dict(sorted(extras.items())),
        "fps": sorted({s.fps for s in samples if s.fps is not None}),
        "defects": [
            {"sample": d.sample, "kind": d.kind, "detail": d.detail, "action": d.action} for d in report.defects
        ],
        "defect_counts": _counts(d.kind for d in report.defects),
    }


def check(name: str, root: str | Path, **options) -> dict:
    """Read dataset ``name`` from ``root`` and summarise it (see :func:`summarize`)."""
    return summarize(read_dataset(name, Path(root), **options))


def format_text(summary: dict, max_defects: int | None = None) -> str:
    """Human-readable rendering of :func:`check`'s summary.

    ``max_defects`` limits the listed defects per kind (None: all).
    """
    s = summary
    lines = [
        f"dataset   {s['dataset']}",
        f"root      {s['root']}",
    ]
    for f in s.get("files", []):
        lines.append(f"file      {f}")
    lines.append(f"samples   {s['n_samples']}   subjects {s['n_subjects']}")
    if s.get("fps"):
        lines.append("fps       " + ", ".join(f"{x:g}" for x in s["fps"]))
    fr = s.get("frames", {})
    if fr:
        lines.append(f"frames    {fr.get('with_frames', 0)} samples with frames, "
                     f"{fr.get('without_frames', 0)} without")
    if s.get("extras"):
        lines.append("extras    " + ", ".join(f"{k} {v}" for k, v in s["extras"].items()))
    lines.append("emotions  " + ", ".join(f"{k} {v}" for k, v in s["emotions"].items()))
    per_db = s.get("per_database", {})
    if len(per_db) > 1:
        lines.append("per database:")
        width = max(len(k) for k in per_db)
        for db, d in per_db.items():
            classes = "/".join(str(v) for v in d["classes"].values())
            names = "/".join(d["classes"])
            lines.append(f"  {db:<{width}}  {d['samples']:>4} samples  {d['subjects']:>3} subjects  "
                         f"{names} {classes}")
    defects = s.get("defects", [])
    if not defects:
        lines.append("defects   none")
        return "\n".join(lines)
    lines.append(f"defects   {len(defects)}: " + ", ".join(f"{k} {v}" for k, v in s["defect_counts"].items()))
    for kind in s["defect_counts"]:
        mine = [d for d in defects if d["kind"] == kind]
        lines.append(f"  [{kind}]")
        shown = mine if max_defects is None else mine[:max_defects]
        for d in shown:
            lines.append(f"    {d['sample']}: {d['detail']}")
            lines.append(f"      -> {d['action']}")
        if len(shown) < len(mine):
            lines.append(f"    ... {len(mine) - len(shown)} more")
    return "\n".join(lines)
